"""bench/idle.py: the wake-up penalty probe's arithmetic, on a fake clock and a fake nap."""

from __future__ import annotations

import bench_modules
import pytest

idle = bench_modules.load("idle")


class _FakeMachine:
    """Work costs 3 CPU units the first time after a nap, 1 unit otherwise (a cold cache)."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.napped = False
        self.naps: list[float] = []
        self.calls = 0

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.napped = True

    def work(self) -> None:
        self.calls += 1
        self.cpu += 3.0 if self.napped else 1.0
        self.napped = False

    def clock(self) -> float:
        return self.cpu


def test_the_penalty_is_the_after_nap_median_over_the_back_to_back_median() -> None:
    m = _FakeMachine()
    got = idle.measure(m.work, pairs=7, nap_s=0.02, sleep=m.sleep, cpu_clock=m.clock)
    assert m.naps == [0.02] * 7
    assert m.calls == 1 + 2 * 7  # one warm-up call, then the pairs
    assert (got.after_nap_ms, got.back_to_back_ms) == (3000.0, 1000.0)
    assert got.ratio == pytest.approx(3.0)
    assert got.as_dict()["ratio"] == 3.0 and got.as_dict()["pairs"] == 7
    assert "3.00x after 20 ms asleep" in got.describe()


def test_a_machine_without_a_penalty_reads_one() -> None:
    cpu = [0.0]

    def work() -> None:
        cpu[0] += 2.0

    got = idle.measure(work, pairs=5, nap_s=0.0, sleep=lambda _s: None, cpu_clock=lambda: cpu[0])
    assert got.ratio == pytest.approx(1.0)
