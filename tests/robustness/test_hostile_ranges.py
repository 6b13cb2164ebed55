"""Host ranges and huge inventories are refused by counting, before anything is built."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from fleetcheck.inventory.sources.base import range_size as count_range
from robustness.cli_helpers import cli


def test_count_range_is_arithmetic() -> None:
    assert count_range("web[0:99999999]") == 100_000_000
    assert count_range("w[0:9999]x[0:999]") == 10_000_000
    assert count_range("db[a:f]-[1:9:2]") == 6 * 5
    assert count_range("plain") == 1


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pattern", ["web[0:99999999]", "w[0:9999]x[0:999]"])
def test_huge_range_is_refused_fast_with_its_line(tmp_path: Path, pattern: str) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text(f"all:\n  hosts:\n    ok1:\n    {pattern}:\n", encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    code, out = cli("inventory", str(inv))
    assert time.monotonic() - started < 2.0
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 50
    assert code == 2 and "line 4" in out and "the limit is" in out, out


@pytest.mark.timeout(60)
def test_an_inventory_over_the_host_limit_is_refused_fast(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    ranges = "".join(f"    {letter}[0:9999]:\n" for letter in "abcdefghijklmnopqrstu")  # 21 x 10,000
    inv.write_text("all:\n  vars: {ansible_connection: winrm}\n  hosts:\n" + ranges, encoding="utf-8")
    started = time.monotonic()
    code, out = cli("inventory", str(inv))
    assert code == 2 and "200000" in out, out
    assert time.monotonic() - started < 10.0


@pytest.mark.timeout(120)
def test_a_100001_host_native_inventory_is_refused(tmp_path: Path) -> None:
    inv = tmp_path / "big.yml"
    inv.write_text("hosts:\n" + "".join(f"  h{i}:\n" for i in range(100_001)), encoding="utf-8")
    started = time.monotonic()
    code, out = cli("inventory", str(inv))
    elapsed = time.monotonic() - started
    assert code == 2 and "100000" in out, out
    assert elapsed < 30.0, elapsed  # 3-5 s here with libyaml composing, 7-9 s with the Python composer
