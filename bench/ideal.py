"""The arithmetic of the benchmark: the ideal run, efficiency, extrapolation, verdicts.

Pure functions over plain numbers so they are unit-tested without a lab. The ideal is
what the network allows: hosts go in waves of `forks`, and each session costs its
requests times the added latency plus the remote run time:

    ideal = ceil(hosts / forks) * (requests_per_session * latency + remote_run_time)

The requests per session come from the lab's own counters, never from a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def requests_per_session(requests: int, sessions: int) -> float:
    """Mean lab requests per session (shell) during one run."""
    if sessions <= 0:
        raise ValueError("the lab counted no session: nothing reached it")
    if requests < 0:
        raise ValueError("negative request count")
    return requests / sessions


def ideal_seconds(hosts: int, forks: int, req_per_session: float, latency_s: float, remote_s: float) -> float:
    """Least wall time the hosts allow with `forks` sessions at once."""
    if hosts <= 0 or forks <= 0:
        raise ValueError("hosts and forks must be positive")
    waves = math.ceil(hosts / min(forks, hosts))
    return waves * (req_per_session * latency_s + remote_s)


def efficiency(ideal_s: float, measured_s: float) -> float:
    """ideal / measured: 1.0 means the run was bound by the hosts alone."""
    if measured_s <= 0:
        raise ValueError("measured wall time must be positive")
    return ideal_s / measured_s


def per_host_ms(seconds: float, hosts: int) -> float:
    """Seconds spent over a fleet, as milliseconds per host."""
    if hosts <= 0:
        raise ValueError("hosts must be positive")
    return seconds * 1000.0 / hosts


def extrapolate_wall(measured_s: float, startup_s: float, hosts_measured: int, hosts_target: int) -> float:
    """A one-host-after-another loop: startup once, then the measured per-host time N times."""
    if hosts_measured <= 0:
        raise ValueError("hosts_measured must be positive")
    per_host = max(measured_s - startup_s, 0.0) / hosts_measured
    return startup_s + per_host * hosts_target


def machine_utilisation(cpu_s: float, wall_s: float, cores: int) -> float:
    """Share of the machine's CPU capacity used during a run (ours plus the lab's)."""
    if wall_s <= 0 or cores <= 0:
        raise ValueError("wall time and cores must be positive")
    return cpu_s / (wall_s * cores)


def cpu_bound_seconds(cpu_s: float, cores: int) -> float:
    """Least wall time the machine allows for this much CPU work spread over every core."""
    if cores <= 0:
        raise ValueError("cores must be positive")
    return cpu_s / cores


@dataclass(frozen=True)
class Limit:
    """What bounded a run, in one word plus why."""

    name: str  # hosts | machine | tool
    reason: str


def classify_limit(
    eff: float, utilisation: float, *, tool_cores: float = 0.0, host_bound: float = 0.9, busy: float = 0.85
) -> Limit:
    """Hosts when near the ideal; machine when every core was busy; `gil` when the tool kept
    about one core busy (one Python process, one interpreter lock); otherwise the tool itself."""
    if eff >= host_bound:
        return Limit("hosts", f"efficiency {eff:.2f} >= {host_bound}")
    if utilisation >= busy:
        return Limit("machine", f"CPU {utilisation:.0%} of all cores busy")
    if busy <= tool_cores < 1.0 + (1.0 - busy):
        return Limit("gil", f"the tool used {tool_cores:.2f} cores: one Python interpreter's worth")
    return Limit("tool", f"efficiency {eff:.2f} with CPU only {utilisation:.0%} busy")


def speedup(peer_wall_s: float, ours_wall_s: float) -> float:
    """How many times faster we were than a peer on the same hosts."""
    if ours_wall_s <= 0:
        raise ValueError("our wall time must be positive")
    return peer_wall_s / ours_wall_s
