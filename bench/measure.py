"""Run one command and measure it as an operator's `time` would, plus peak memory.

CPU comes from `wait4` (user + system of the process and every descendant it reaped),
so worker processes and Ansible's forks are counted. Peak RSS is sampled over the whole
process tree (sum of RSS), because a tool that forks 50 workers uses 50 processes' memory.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Measured:
    """One command's cost."""

    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float  # user + sys, children included
    peak_rss_mb: float  # sampled sum over the process tree
    maxrss_mb: float  # wait4 ru_maxrss (includes the bench's own pre-exec size: information only)
    stdout_path: str
    stderr_tail: str = ""
    timed_out: bool = False
    extra: dict[str, float] = field(default_factory=dict)


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree until stopped."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            total = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600.0,
    out_dir: Path,
    label: str,
) -> Measured:
    """Run `argv` to completion (killed after `timeout`) and return its cost."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stdout_path = out_dir / f"{label}.out"
    stderr_path = out_dir / f"{label}.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        sampler = _TreeSampler(proc.pid)
        sampler.start()
        timed_out = False
        killer = threading.Timer(timeout, _kill_tree, args=(proc.pid,))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        sampler.stop()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        timed_out = wall >= timeout
    tail = stderr_path.read_text(errors="replace")[-2000:]
    return Measured(
        argv=argv,
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        # Not ru_maxrss: Linux carries the pre-exec high-water mark of the forked parent
        # (this bench process) into it, so every small tool would read as big as the bench.
        peak_rss_mb=sampler.peak / 2**20,
        maxrss_mb=usage.ru_maxrss / 1024,
        stdout_path=str(stdout_path),
        stderr_tail=tail,
        timed_out=timed_out,
    )


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            continue


def system_cpu_seconds() -> float:
    """Non-idle CPU seconds of the whole machine so far (every process, ours or not)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a live process and its live descendants (the lab)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def tree_rss_mb(pid: int) -> float:
    """Current summed RSS of a live process tree, in MiB."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20
