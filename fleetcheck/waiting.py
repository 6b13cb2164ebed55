"""What a run is waiting for: hosts by outcome class, and the hosts still running with their time.

Sans-IO (a clock is passed in), so the rich bar on a terminal, the plain log lines of a cron run
and the tests all read the same state. The tail of a run is where people wonder: once most hosts
are done, the text names the hosts still running and how long each has run against its deadline
("waiting for 1 host: LAB-0050 (14 s of 30)"). Log lines about it come at a bounded rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fleetcheck.results import UNCHECKED_STATUSES, HostResult, HostStatus

#: Name the running hosts once this share of the run is done, or when this few are left.
TAIL_SHARE = 0.8
TAIL_HOSTS = 3
#: At most this many names in one line (then "+N more").
MAX_NAMES = 3
#: A non-TTY log repeats the waiting line at most this often (seconds).
LOG_EVERY_S = 10.0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass
class RunningHosts:
    """Hosts started and not finished, outcome counts of those finished."""

    total: int
    timeouts: dict[str, float] = field(default_factory=dict)  # host -> its deadline in seconds
    clock: Callable[[], float] = time.monotonic
    compliant: int = 0
    noncompliant: int = 0
    unchecked: int = 0
    _started: dict[str, float] = field(default_factory=dict)
    _last_log: float | None = None

    @property
    def done(self) -> int:
        return self.compliant + self.noncompliant + self.unchecked

    def started(self, host: str) -> None:
        self._started.setdefault(host, self.clock())

    def finished(self, result: HostResult) -> None:
        self._started.pop(result.host, None)
        if result.status == HostStatus.COMPLIANT:
            self.compliant += 1
        elif result.status in UNCHECKED_STATUSES:
            self.unchecked += 1
        else:
            self.noncompliant += 1

    def running(self) -> list[tuple[str, float, float | None]]:
        """(host, seconds running, deadline) for every running host, longest running first."""
        now = self.clock()
        rows = [(host, now - t0, self.timeouts.get(host)) for host, t0 in list(self._started.items())]
        return sorted(rows, key=lambda r: (-r[1], r[0]))

    def counts_text(self) -> str:
        """`12 compliant · 3 noncompliant · 1 could not check`."""
        return f"{self.compliant} compliant · {self.noncompliant} noncompliant · {self.unchecked} could not check"

    def in_tail(self) -> bool:
        left = self.total - self.done
        return len(self._started) > 0 and (self.done >= TAIL_SHARE * self.total or left <= TAIL_HOSTS)

    def waiting_text(self, max_names: int = MAX_NAMES) -> str:
        """`waiting for 2 hosts: LAB-0050 (14 s of 30), LAB-0007 (3 s of 30)`; empty before the tail.

        A host past its deadline has timed out and is closing its connection; it says so rather
        than "31 s of 30".
        """
        if not self.in_tail():
            return ""
        rows = self.running()
        names = []
        for host, elapsed, deadline in rows[:max_names]:
            if deadline and elapsed > deadline:  # timed out, its connection is being closed
                names.append(f"{host} ({math.ceil(elapsed)} s, past its {deadline:g} s deadline, closing)")
            else:  # whole seconds rounded down: 29.6 s of 30 never reads "30 s of 30"
                names.append(f"{host} ({math.floor(elapsed)} s{f' of {deadline:g}' if deadline else ''})")
        more = f" +{len(rows) - max_names} more" if len(rows) > max_names else ""
        return f"waiting for {_plural(len(rows), 'host')}: {', '.join(names)}{more}"

    def log_due(self) -> bool:
        """True at most every LOG_EVERY_S seconds while in the tail (for plain log lines)."""
        if not self.in_tail():
            return False
        now = self.clock()
        if self._last_log is not None and now - self._last_log < LOG_EVERY_S:
            return False
        self._last_log = now
        return True
