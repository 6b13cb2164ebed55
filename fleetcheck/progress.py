"""The run's progress on the terminal: a rich bar on a TTY, one plain line per host otherwise (cron).

It implements `fleetcheck.api.ProgressSink`; the library itself never draws anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Literal

import typer

from fleetcheck.results import HostResult, HostStatus, RunResult

Mode = Literal["bar", "lines", "quiet"]


class Progress:
    """Counts hosts as they finish and shows how many of `total` are done and failing."""

    def __init__(self, mode: Mode) -> None:
        self.total = 0
        self.mode = mode
        self.done = 0
        self.failures = 0
        self._bar: object | None = None
        self._task: object | None = None

    def __enter__(self) -> Progress:
        return self

    def run_started(self, total: int) -> None:
        self.total = total
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            bar = RichProgress(
                TextColumn("checking"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("hosts · {task.fields[failures]} failing/unreachable"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            bar.__enter__()
            self._task = bar.add_task("run", total=self.total, failures=0)
            self._bar = bar

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Remove the bar before the table is printed."""
        from rich.progress import Progress as RichProgress

        if isinstance(self._bar, RichProgress):
            self._bar.__exit__(None, None, None)
        self._bar = None

    def run_finished(self, result: RunResult, total: int) -> None:
        self.close()
        if result.interrupted:
            typer.echo(f"fleetcheck: interrupted; {len(result.hosts)} of {total} hosts finished", err=True)

    def host_done(self, host: HostResult) -> None:
        from rich.progress import Progress as RichProgress
        from rich.progress import TaskID

        self.done += 1
        if host.status is not HostStatus.COMPLIANT:
            self.failures += 1
        if isinstance(self._bar, RichProgress) and isinstance(self._task, int):
            self._bar.update(TaskID(self._task), completed=self.done, failures=self.failures)
        elif self.mode == "lines":
            detail = f" - {host.message}" if host.message and host.status != HostStatus.COMPLIANT else ""
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            typer.echo(f"{stamp} [{self.done}/{self.total}] {host.host}: {host.status.value}{detail}", err=True)
