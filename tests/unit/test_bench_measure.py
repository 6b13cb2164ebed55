"""The benchmark's process-tree walk: the same tree psutil finds, at a fraction of its cost."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import bench_modules
import psutil
import pytest

measure = bench_modules.load("measure")


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """A shell with two sleeping children and a grandchild holding 40 MB."""
    script = (
        'sleep 30 & sleep 30 & python3 -c "import time; x = bytearray(40_000_000); time.sleep(30)" & wait'
    )
    proc = subprocess.Popen(["bash", "-c", script])
    deadline = time.monotonic() + 10
    while len(psutil.Process(proc.pid).children(recursive=True)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the grandchild's bytearray is allocated
    yield proc
    for child in psutil.Process(proc.pid).children(recursive=True):
        child.kill()
    proc.kill()
    proc.wait()


def test_tree_pids_finds_every_descendant_psutil_finds(tree: subprocess.Popen[bytes]) -> None:
    expected = {tree.pid, *(c.pid for c in psutil.Process(tree.pid).children(recursive=True))}
    assert len(expected) == 4
    assert set(measure.tree_pids(tree.pid)) == expected


def test_without_the_kernels_lists_psutil_walks_the_same_tree(
    tree: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = set(measure.tree_pids(tree.pid))
    monkeypatch.setattr(measure, "_KERNEL_CHILDREN", False)
    assert set(measure.tree_pids(tree.pid)) == expected


def test_tree_rss_counts_the_grandchild(tree: subprocess.Popen[bytes]) -> None:
    assert measure.tree_rss_mb(tree.pid) > 40


def test_a_process_that_is_gone_has_no_tree() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert measure.tree_pids(proc.pid) == []
    assert measure.tree_rss_mb(proc.pid) == 0


def test_the_sampler_costs_little_cpu(tree: subprocess.Popen[bytes]) -> None:
    """What the tool measured shares two cores with the sampler: it must stay out of the way."""
    sampler = measure._TreeSampler(tree.pid)
    before = time.thread_time()
    start = time.process_time()
    sampler.start()
    time.sleep(1.0)
    sampler.stop()
    sampler.join()
    assert sampler.peak > 40 * 2**20
    assert time.process_time() - start - (time.thread_time() - before) < 0.06  # psutil's walk: ~0.1 s
