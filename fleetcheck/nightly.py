"""The nightly pipeline after a run: waivers, history, changes, report context, mail.

`fleetcheck.api.run` and `evaluate_saved` use it like this::

    opts = nightly.prepare(NightlyOptions(history_path=..., since="last", waivers_path=..., mail=...))
    with nightly.run_guard(opts):     # RunLockedError when another run holds the history
        run = ...                     # the runner's RunResult
        outcome = nightly.finish_run(run, opts, console)   # prints the change summary first
        # reports are written from outcome.run with outcome.context; the exit code is
        # computed from outcome.run (waived failures no longer count)

`prepare` raises NightlyConfigError (bad waivers, history, since reference) before any
connection. `fleetcheck diff`: `nightly.diff_text(history_path, run_a, run_b)`;
`fleetcheck diff --list`: `nightly.list_runs_text(history_path)`.

Errors that must not lose the run (history disk full, SMTP down) are returned in
`outcome.errors` instead of raised; `finish_run` renders the HTML in memory only for the mail.

Building blocks (all usable alone): `history.History(path)` (record, latest, get, resolve,
list_runs, trend, failing_since, first_failed_since, prune) and `history.run_lock(path)`;
`changes.compute_changes(previous, current, first_failed)`, `format_change_summary`, `diff_runs`;
`waivers.load_waivers(path)`, `apply_waivers(run, waivers, today)`; `mail.send_report(...)`;
writers `reports.html:write` and `reports.prometheus:write`. History keeps the newest
`NightlyOptions.keep_runs` (400) runs.

Exceptions (all with messages meant for the user, no traceback needed):
`NightlyConfigError` (a `ValueError`: bad waivers file, bad mail options), `HistoryError`,
`RunLockedError`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from fleetcheck.changes import ChangeSet, compute_changes, diff_runs, format_change_summary
from fleetcheck.errors import UserError
from fleetcheck.history import (
    History,
    HistoryError,
    RunLockedError,
    RunSummary,
    default_history_path,
    run_lock,
)
from fleetcheck.mail import (
    SMTP_TLS_MODES,
    MailConfigError,
    MailError,
    MailSettings,
    StartTLS,
    parse_mail_to,
    parse_smtp,
    send_report,
    should_send,
)
from fleetcheck.reports.base import ReportContext
from fleetcheck.results import RunResult
from fleetcheck.waivers import Waiver, WaiverFileError, apply_waivers, load_waivers

__all__ = [
    "HistoryError",
    "NightlyConfigError",
    "NightlyOptions",
    "NightlyOutcome",
    "RunLockedError",
    "build_report_context",
    "default_history_path",
    "diff_text",
    "finish_run",
    "list_runs_text",
    "mail_settings",
    "prepare",
    "run_guard",
]


class NightlyConfigError(UserError, ValueError):
    """A nightly option or file is unusable; the message says which and how to fix it."""


class _Console(Protocol):
    def print(self, *objects: Any, **kwargs: Any) -> None: ...


@dataclass
class NightlyOptions:
    """What the nightly features should do for one run (None disables a feature)."""

    history_path: Path | None = None
    since: str | None = "last"
    waivers_path: Path | None = None
    mail: MailSettings | None = None
    trend_runs: int = 30
    keep_runs: int | None = 400  # history retention (about a year of nightly runs); None keeps all
    today: date | None = None  # for waiver expiry; default: today's UTC date
    waivers: list[Waiver] | None = None  # filled by prepare() from waivers_path


@dataclass
class NightlyOutcome:
    """What finish_run did; `run` (waivers applied) is what reports and the exit code use."""

    run: RunResult
    context: ReportContext
    changes: ChangeSet | None = None
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    recorded: bool = False
    mail_sent: bool = False
    errors: list[str] = field(default_factory=list)


def mail_settings(
    mail_to: str | None, smtp: str | None, always: bool = False, smtp_tls: str | None = None
) -> MailSettings | None:
    """Build MailSettings from the CLI strings; None when no --mail-to was given."""
    if not mail_to:
        if smtp:
            raise NightlyConfigError("--smtp was given without --mail-to: say who gets the mail.")
        return None
    if not smtp:
        raise NightlyConfigError("--mail-to needs --smtp HOST[:PORT] (the relay to send through).")
    try:
        host, port = parse_smtp(smtp)
        if smtp_tls is not None and smtp_tls not in SMTP_TLS_MODES:
            raise MailConfigError(f"--smtp-tls {smtp_tls!r}: expected {', '.join(SMTP_TLS_MODES)}")
        tls = cast(StartTLS | None, smtp_tls)
        return MailSettings(to=parse_mail_to(mail_to), smtp_host=host, smtp_port=port, always=always, starttls=tls)
    except MailConfigError as exc:
        raise NightlyConfigError(str(exc)) from None


def prepare(opts: NightlyOptions) -> NightlyOptions:
    """Validate everything before the run starts: waivers file, history database, since reference."""
    if opts.waivers_path is not None and opts.waivers is None:
        try:
            opts.waivers = load_waivers(opts.waivers_path)
        except WaiverFileError as exc:
            raise NightlyConfigError(str(exc)) from None
    if opts.history_path is not None:
        with History(opts.history_path) as history:
            if opts.since not in (None, "last"):
                history.resolve(opts.since)
    return opts


@contextlib.contextmanager
def run_guard(opts: NightlyOptions) -> Iterator[None]:
    """Hold the history lock for the whole run (no-op without history)."""
    if opts.history_path is None:
        yield
        return
    with run_lock(opts.history_path):
        yield


def build_report_context(
    history: History, run: RunResult, since: str | None = "last", trend_runs: int = 30
) -> ReportContext:
    """Changes and trend for an already recorded `run` (also usable to re-render old runs)."""
    changes = _changes(history, run, since)
    trend = history.trend(trend_runs, inventory=run.inventory)
    check_trend = history.check_failures([p.run_id for p in trend])
    return ReportContext(changes=changes, trend=trend, check_trend=check_trend)


def _changes(history: History, run: RunResult, since: str | None) -> ChangeSet | None:
    if since is None:
        return None
    if since == "last":
        previous = history.latest(before_run_id=run.run_id, complete_only=True, inventory=run.inventory)
    else:
        previous = history.get(history.resolve(since))
    return compute_changes(previous, run, history.failing_since(run.run_id))


def finish_run(run: RunResult, opts: NightlyOptions, console: _Console | None = None) -> NightlyOutcome:
    """Apply waivers, record history, compute changes, print the summary and send mail."""
    if opts.waivers_path is not None and opts.waivers is None:
        try:
            opts.waivers = load_waivers(opts.waivers_path)
        except WaiverFileError as exc:
            raise NightlyConfigError(str(exc)) from None
    notes: list[str] = []
    if opts.waivers:
        run, notes = apply_waivers(run, opts.waivers, opts.today or datetime.now(UTC).date())
    outcome = NightlyOutcome(run=run, context=ReportContext(), notes=notes)
    if opts.history_path is not None:
        _with_history(outcome, opts)
    if outcome.changes is not None:
        outcome.changes.notes = list(notes)
        outcome.summary = format_change_summary(outcome.changes)
    else:
        outcome.summary = "\n".join(f"Note: {n}" for n in notes)
    if console is not None and outcome.summary:
        console.print(outcome.summary, markup=False, highlight=False)
    if opts.mail is not None:
        _mail(outcome, opts.mail)
    if console is not None:
        for error in outcome.errors:
            console.print(f"warning: {error}", markup=False, highlight=False)
    return outcome


def _with_history(outcome: NightlyOutcome, opts: NightlyOptions) -> None:
    assert opts.history_path is not None
    try:
        with History(opts.history_path) as history:
            history.record(outcome.run)
            outcome.recorded = True
            if opts.keep_runs is not None:
                history.prune(opts.keep_runs)
            outcome.context = build_report_context(history, outcome.run, opts.since, opts.trend_runs)
            outcome.changes = outcome.context.changes
            previous = history.latest(before_run_id=outcome.run.run_id, complete_only=True, inventory=outcome.run.inventory)
        outcome.context.fixes = fix_notes(opts.history_path, previous.started_at if previous else None)
    except (HistoryError, sqlite3.Error) as exc:
        outcome.errors.append(f"history not updated ({exc}); reports are written without changes.")


def fix_notes(history_path: Path, since: datetime | None) -> dict[str, list[str]]:
    """Host -> what `fleetcheck fix` fixed there since `since` (the previous run), for the report."""
    from fleetcheck.fixlog import fixed_since

    notes: dict[str, list[str]] = {}
    for (host, check_id), rec in sorted(fixed_since(history_path, since).items()):
        notes.setdefault(host, []).append(
            f"{check_id} fixed by fleetcheck fix at {rec.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({rec.who}): {rec.change}"
        )
    return notes


def _mail(outcome: NightlyOutcome, settings: MailSettings) -> None:
    if not should_send(outcome.changes, settings.always):
        return
    from fleetcheck.reports.html import render  # jinja2 only when mail is actually sent
    from fleetcheck.reports.sanitize import sanitize_result

    try:
        html = render(sanitize_result(outcome.run), outcome.context)
        outcome.mail_sent = send_report(outcome.run, outcome.changes, settings, html, outcome.notes)
    except MailError as exc:
        outcome.errors.append(str(exc))


def diff_text(history_path: Path | None, run_a: str | None = None, run_b: str | None = None) -> str:
    """Body of `fleetcheck diff [RUN_A] [RUN_B]` (raises HistoryError with a clear message)."""
    path = history_path or default_history_path()
    if not path.exists():
        raise HistoryError(f"{path}: no history yet; run `fleetcheck run` with history enabled first.")
    with History(path) as history:
        return diff_runs(history, run_a, run_b)


def list_runs_text(history_path: Path | None, limit: int = 20) -> str:
    """The newest recorded runs, one per line (for `fleetcheck diff --list`)."""
    path = history_path or default_history_path()
    if not path.exists():
        return f"{path}: no history yet."
    with History(path) as history:
        runs = history.list_runs(limit)
    return "\n".join(_run_line(r) for r in runs) or "history is empty."


def _run_line(r: RunSummary) -> str:
    from fleetcheck.changes import scope_text

    flag = "  (interrupted)" if r.interrupted else ""
    return (
        f"{r.run_id}  {r.started_at:%Y-%m-%d %H:%M}  {scope_text(r.inventory)}  {r.compliant}/{r.hosts} compliant, "
        f"{r.failing_checks} failing, {r.waived_checks} waived, {r.unchecked} not checked{flag}"
    )
