"""The run's progress on the terminal: a rich bar on a TTY, one plain line per host otherwise (cron).

It implements `fleetcheck.api.ProgressSink` (plus `plan` and `host_started`, which the API calls
when present); the library itself never draws anything. Both forms count hosts by class
(compliant, noncompliant, could not check) and, once most hosts are done, name the hosts still
running with their time against their deadline (`fleetcheck.waiting`): on the bar a second line
redrawn ten times a second, in the log one line at most every ten seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

import typer

from fleetcheck.results import HostResult, HostStatus, RunResult
from fleetcheck.waiting import LOG_EVERY_S, RunningHosts

Mode = Literal["bar", "lines", "quiet"]


def _stamp() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


class Progress:
    """Counts hosts as they finish and shows how many of `total` are done, by class."""

    def __init__(self, mode: Mode) -> None:
        self.total = 0
        self.mode = mode
        self.done = 0
        self.failures = 0
        self.state = RunningHosts(total=0)
        self._bar: Any = None
        self._task: Any = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Progress:
        return self

    def run_started(self, total: int) -> None:
        self.total = total
        self.state.total = total
        if self.mode == "bar":
            self._bar = _bar(self.state)
            self._bar.__enter__()
            self._task = self._bar.add_task("run", total=self.total, counts=self.state.counts_text())
        elif self.mode == "lines":
            self._ticker = threading.Thread(target=self._tick, name="fleetcheck-progress", daemon=True)
            self._ticker.start()

    def plan(self, deadlines: dict[str, float]) -> None:
        """Each host's deadline in seconds, for "(14 s of 30)"."""
        self.state.timeouts = dict(deadlines)

    def host_started(self, host: str) -> None:
        with self._lock:
            self.state.started(host)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the bar (and stop the log ticker) before the table is printed."""
        self._stop.set()
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def run_finished(self, result: RunResult, total: int) -> None:
        self.close()
        if result.interrupted:
            typer.echo(f"fleetcheck: interrupted; {len(result.hosts)} of {total} hosts finished", err=True)

    def host_done(self, host: HostResult) -> None:
        with self._lock:
            self.done += 1
            self.state.finished(host)
            if host.status is not HostStatus.COMPLIANT:
                self.failures += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, counts=self.state.counts_text())
        elif self.mode == "lines":
            detail = f" - {host.message}" if host.message and host.status != HostStatus.COMPLIANT else ""
            typer.echo(f"{_stamp()} [{self.done}/{self.total}] {host.host}: {host.status.value}{detail}", err=True)

    def _tick(self) -> None:
        """Log line about the hosts still running, at most every LOG_EVERY_S seconds."""
        while not self._stop.wait(min(1.0, LOG_EVERY_S)):
            with self._lock:
                text = self.state.waiting_text() if self.state.log_due() else ""
                counts = self.state.counts_text()
            if text:
                typer.echo(f"{_stamp()} [{self.done}/{self.total}] {counts}; {text}", err=True)


def _bar(state: RunningHosts) -> Any:
    """A rich progress bar with a second line naming the hosts it waits for (redrawn live)."""
    from rich.console import Console, RenderableType
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class WaitingProgress(RichProgress):
        def get_renderables(self) -> Iterable[RenderableType]:
            yield self.make_tasks_table(self.tasks)
            waiting = state.waiting_text()
            if waiting:
                yield Text(waiting, overflow="ellipsis", no_wrap=True)

    return WaitingProgress(
        TextColumn("checking"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("hosts · {task.fields[counts]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
