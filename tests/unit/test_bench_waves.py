"""bench/waves.py: the per-wave summary of a traced run (pure arithmetic, no lab)."""

from __future__ import annotations

import bench_modules
import pytest

waves_mod = bench_modules.load("waves")


def _host(
    address: str, start: float, *, create: float = 0.06, poll: float = 0.02, remote: float = 2.0
) -> list[tuple[str, str, float, float]]:
    """One host's requests as the native client sends them, each `poll` long after a `create`."""
    rows = []
    t = start
    for action, length in (
        ("Create", create),
        ("Receive", poll),
        ("Command", poll),
        ("Receive", remote),
        ("Delete", poll),
    ):
        rows.append((address, action, t, t + length))
        t += length + 0.001  # the client's own time between a reply and the next request
    return rows


def test_hosts_are_cut_into_waves_in_the_order_they_started() -> None:
    rows = _host("b", 0.2, create=0.5) + _host("a", 0.1) + _host("c", 2.5) + _host("d", 2.6)
    result = waves_mod.waves(rows, forks=2)
    assert [w.hosts for w in result] == [2, 2]
    assert result[0].first_start == pytest.approx(0.1)
    assert result[0].last_start == pytest.approx(0.2)
    # the slow Create of host b weighs on wave 0 only: mean of 0.06 and 0.5, worst 0.5
    assert result[0].steps["Create"] == pytest.approx((0.28, 0.5))
    assert result[1].steps["Create"] == pytest.approx((0.06, 0.06))


def test_a_receive_is_the_pools_before_the_command_and_the_pipelines_after() -> None:
    (wave,) = waves_mod.waves(_host("a", 0.0, remote=2.0), forks=10)
    assert wave.steps["Receive (pool)"] == pytest.approx((0.02, 0.02))
    assert wave.steps["Receive (pipeline)"] == pytest.approx((2.0, 2.0))
    assert wave.client_gaps[0] == pytest.approx(0.004)
    assert wave.host_s[0] == pytest.approx(0.06 + 0.02 * 3 + 2.0 + 0.004)


def test_several_polls_of_one_step_are_summed_per_host() -> None:
    rows = [
        ("a", "Create", 0.0, 0.06),
        ("a", "Command", 0.07, 0.09),
        ("a", "Receive", 0.1, 1.1),
        ("a", "Receive", 1.1, 2.1),
    ]
    (wave,) = waves_mod.waves(rows, forks=1)
    assert wave.steps["Receive (pipeline)"] == pytest.approx((2.0, 2.0))
    assert "Receive (pool)" not in wave.steps


def test_the_table_gives_each_wave_against_the_ideal_host_time() -> None:
    rows = _host("a", 0.0) + _host("b", 2.2, create=0.16)
    text = waves_mod.table(waves_mod.waves(rows, forks=1), latency_s=0.02, remote_s=2.0)
    lines = text.splitlines()
    assert lines[0].startswith("| wave | hosts | started s | Create |")
    # ideal host time: 7 delayed requests x 20 ms + 2 s = 2.14 s; wave 1's Create took 100 ms more
    assert lines[2].endswith("| -16 |")
    assert lines[3].endswith("| +84 |")


def test_forks_must_be_positive() -> None:
    with pytest.raises(ValueError):
        waves_mod.waves([], forks=0)


def test_the_trace_clock_starts_with_the_process() -> None:
    import time

    first = waves_mod._process_age()
    time.sleep(0.05)
    second = waves_mod._process_age()
    assert first > 0
    assert 0.03 < second - first < 0.5
