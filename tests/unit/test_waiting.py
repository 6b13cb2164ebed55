"""Progress text: outcome classes and, in the tail of a run, the hosts still running and for how long."""

from __future__ import annotations

from fleetcheck.results import HostResult, HostStatus
from fleetcheck.waiting import RunningHosts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counts_by_class_and_the_hosts_still_running() -> None:
    clock = Clock()
    hosts = [f"LAB-{i:04d}" for i in range(10)]
    state = RunningHosts(total=10, timeouts={h: 30.0 for h in hosts}, clock=clock)
    for h in hosts:
        state.started(h)
    assert state.waiting_text() == ""  # nothing done yet: no names
    statuses = [HostStatus.COMPLIANT] * 6 + [HostStatus.NONCOMPLIANT, HostStatus.TIMEOUT, HostStatus.AUTH_FAILED]
    for h, s in zip(hosts[:9], statuses, strict=False):
        clock.now += 1
        state.finished(HostResult(host=h, status=s))
    assert state.counts_text() == "6 compliant · 1 noncompliant · 2 could not check"
    clock.now += 5
    assert state.waiting_text() == "waiting for 1 host: LAB-0009 (14 s of 30)"
    clock.now += 15.8
    assert state.waiting_text() == "waiting for 1 host: LAB-0009 (29 s of 30)"  # 29.8 s: not rounded up to the limit
    clock.now += 1.2  # past the deadline: the host is timed out and being closed, never "31 s of 30"
    assert state.waiting_text() == "waiting for 1 host: LAB-0009 (31 s, past its 30 s deadline, closing)"


def test_many_running_are_cut_and_log_lines_are_rate_limited() -> None:
    clock = Clock()
    state = RunningHosts(total=5, clock=clock)
    for i in range(5):
        state.started(f"h{i}")
        clock.now += 1
    state.finished(HostResult(host="h0", status=HostStatus.COMPLIANT))
    state.finished(HostResult(host="h1", status=HostStatus.COMPLIANT))  # 3 left: the tail
    assert state.waiting_text(max_names=2) == "waiting for 3 hosts: h2 (3 s), h3 (2 s) +1 more"
    assert state.log_due() is True
    clock.now += 5
    assert state.log_due() is False
    clock.now += 5
    assert state.log_due() is True
