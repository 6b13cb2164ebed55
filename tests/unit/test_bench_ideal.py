"""The benchmark's arithmetic: ideal wall time, efficiency, extrapolation and verdicts."""

from __future__ import annotations

import math

import bench_modules
import pytest

ideal = bench_modules.load("ideal")

classify_limit = ideal.classify_limit
cpu_bound_seconds = ideal.cpu_bound_seconds
efficiency = ideal.efficiency
extrapolate_wall = ideal.extrapolate_wall
ideal_seconds = ideal.ideal_seconds
machine_utilisation = ideal.machine_utilisation
per_host_ms = ideal.per_host_ms
requests_per_session = ideal.requests_per_session
speedup = ideal.speedup


def test_requests_per_session_is_the_lab_mean() -> None:
    assert requests_per_session(9000, 1000) == 9.0
    assert requests_per_session(1001, 100) == pytest.approx(10.01)


def test_requests_per_session_rejects_a_run_that_never_reached_the_lab() -> None:
    with pytest.raises(ValueError, match="no session"):
        requests_per_session(10, 0)


def test_ideal_quick_profile_one_wave() -> None:
    # 50 hosts, 50 forks, 9 requests of 50 ms: one wave of 0.45 s.
    assert ideal_seconds(50, 50, 9, 0.05, 0.0) == pytest.approx(0.45)


def test_ideal_counts_partial_waves() -> None:
    # 1,000 hosts with 300 forks is 4 waves, not 3.33.
    assert ideal_seconds(1000, 300, 10, 0.05, 0.0) == pytest.approx(4 * 0.5)


def test_ideal_realistic_profile_adds_remote_run_time_per_wave() -> None:
    # 1,000 hosts, 100 forks, 10 requests of 20 ms + 2 s of remote work: 10 waves of 2.2 s.
    assert ideal_seconds(1000, 100, 10, 0.02, 2.0) == pytest.approx(22.0)


def test_ideal_more_forks_than_hosts_is_one_wave() -> None:
    assert ideal_seconds(10, 500, 8, 0.05, 0.0) == pytest.approx(0.4)


def test_ideal_naive_loop_is_one_host_after_another() -> None:
    assert ideal_seconds(7, 1, 9, 0.05, 2.0) == pytest.approx(7 * 2.45)


@pytest.mark.parametrize(("hosts", "forks"), [(0, 5), (5, 0), (-1, 5)])
def test_ideal_rejects_nonsense(hosts: int, forks: int) -> None:
    with pytest.raises(ValueError):
        ideal_seconds(hosts, forks, 9, 0.05, 0.0)


def test_efficiency_is_ideal_over_measured() -> None:
    assert efficiency(22.0, 24.0) == pytest.approx(0.9166, abs=1e-3)
    assert efficiency(1.0, 0.5) == 2.0  # faster than "ideal" shows a wrong ideal, not clipped away
    with pytest.raises(ValueError):
        efficiency(1.0, 0.0)


def test_per_host_ms() -> None:
    assert per_host_ms(8.0, 1000) == pytest.approx(8.0)
    assert per_host_ms(0.9, 50) == pytest.approx(18.0)


def test_extrapolate_loop_keeps_startup_once() -> None:
    # 10 hosts took 5.3 s of which 0.3 s was start-up: 0.5 s per host.
    assert extrapolate_wall(5.3, 0.3, 10, 200) == pytest.approx(0.3 + 0.5 * 200)
    assert extrapolate_wall(5.3, 0.3, 10, 10) == pytest.approx(5.3)


def test_machine_utilisation_and_cpu_bound() -> None:
    assert machine_utilisation(18.0, 10.0, 2) == pytest.approx(0.9)
    assert cpu_bound_seconds(18.0, 2) == pytest.approx(9.0)
    with pytest.raises(ValueError):
        machine_utilisation(1.0, 0.0, 2)


def test_classify_limit() -> None:
    assert classify_limit(0.95, 0.2).name == "hosts"
    assert classify_limit(0.3, 0.97).name == "machine"
    assert classify_limit(0.3, 0.4).name == "tool"
    assert classify_limit(0.3, 0.6, tool_cores=0.97).name == "gil"
    assert classify_limit(0.3, 0.6, tool_cores=1.6).name == "tool"  # several processes: not one lock
    assert classify_limit(0.95, 0.99, tool_cores=0.97).name == "hosts"


def test_speedup() -> None:
    assert speedup(26.0, 2.0) == 13.0
    assert math.isclose(speedup(3.8, 4.0), 0.95)
    with pytest.raises(ValueError):
        speedup(1.0, 0.0)
