"""What changed between two runs: the first thing a nightly reader wants.

Pure functions on `RunResult`s (plus a "failing since" lookup), so the terminal summary,
`fleetcheck diff`, the HTML page and the mail all tell the same story.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fleetcheck.results import FAILING, UNCHECKED_STATUSES, CheckResult, HostResult, RunResult

if TYPE_CHECKING:
    from fleetcheck.history import History

FirstFailed = Callable[[str, str], datetime | None] | Mapping[tuple[str, str], datetime]


@dataclass(frozen=True)
class CheckChange:
    """One (host, check) pair that is interesting in a change set."""

    host: str
    check_id: str
    status: str  # current status (for `fixed`: what it is now, e.g. pass or waived)
    message: str
    since: datetime | None = None  # start of the failing streak (still failing / new failures)
    previous_status: str | None = None


@dataclass(frozen=True)
class HostChange:
    """A host that appeared, disappeared, or could not be checked this time."""

    host: str
    status: str
    message: str = ""
    previous_status: str | None = None


@dataclass
class ChangeSet:
    """Differences between a previous run (None: nothing to compare with) and the current one."""

    current_run_id: str
    current_started_at: datetime
    previous_run_id: str | None = None
    previous_started_at: datetime | None = None
    new_failures: list[CheckChange] = field(default_factory=list)
    fixed: list[CheckChange] = field(default_factory=list)
    still_failing: list[CheckChange] = field(default_factory=list)
    hosts_appeared: list[HostChange] = field(default_factory=list)
    hosts_disappeared: list[HostChange] = field(default_factory=list)
    hosts_unreachable: list[HostChange] = field(default_factory=list)  # newly not checkable
    hosts_back: list[HostChange] = field(default_factory=list)  # checkable again
    notes: list[str] = field(default_factory=list)  # e.g. waivers that expired, shown with the changes

    @property
    def first_run(self) -> bool:
        return self.previous_run_id is None

    @property
    def changed(self) -> bool:
        """True when there is anything new to tell (what decides whether mail goes out)."""
        return bool(
            self.new_failures
            or self.fixed
            or self.hosts_appeared
            or self.hosts_disappeared
            or self.hosts_unreachable
            or self.hosts_back
        )

    def counts(self) -> dict[str, int]:
        return {
            "new_failures": len(self.new_failures),
            "fixed": len(self.fixed),
            "still_failing": len(self.still_failing),
            "hosts_appeared": len(self.hosts_appeared),
            "hosts_disappeared": len(self.hosts_disappeared),
            "hosts_unreachable": len(self.hosts_unreachable),
            "hosts_back": len(self.hosts_back),
        }

    def headline(self) -> str:
        """One line of counts (terminal summary's first line and the mail subject)."""
        c = self.counts()
        parts = [
            f"{c['new_failures']} new {_plural(c['new_failures'], 'failure')}",
            f"{c['fixed']} fixed",
            f"{c['still_failing']} still failing",
        ]
        for key, word in (
            ("hosts_unreachable", "became unreachable"),
            ("hosts_appeared", "appeared"),
            ("hosts_disappeared", "disappeared"),
            ("hosts_back", "reachable again"),
        ):
            if c[key]:
                parts.append(f"{c[key]} {_plural(c[key], 'host')} {word}")
        return ", ".join(parts)


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _failing(run: RunResult | None) -> dict[tuple[str, str], CheckResult]:
    if run is None:
        return {}
    return {(h.host, c.check_id): c for h in run.hosts for c in h.checks if c.status in FAILING}


def _lookup(first_failed: FirstFailed | None, host: str, check_id: str) -> datetime | None:
    if first_failed is None:
        return None
    if isinstance(first_failed, Mapping):
        return first_failed.get((host, check_id))
    return first_failed(host, check_id)


def compute_changes(
    previous: RunResult | None, current: RunResult, first_failed: FirstFailed | None = None
) -> ChangeSet:
    """Compare two runs check by check and host by host.

    A check that vanished because its host could not be checked is not "fixed": the host is
    listed as unreachable instead and its failures stay out of both lists.
    """
    changes = ChangeSet(
        current_run_id=current.run_id,
        current_started_at=current.started_at,
        previous_run_id=previous.run_id if previous else None,
        previous_started_at=previous.started_at if previous else None,
    )
    prev_hosts: dict[str, HostResult] = {h.host: h for h in previous.hosts} if previous else {}
    cur_hosts = {h.host: h for h in current.hosts}
    prev_fail = _failing(previous)
    cur_results = {(h.host, c.check_id): c for h in current.hosts for c in h.checks}

    for host in current.hosts:
        for check in host.checks:
            if check.status not in FAILING:
                continue
            key = (host.host, check.check_id)
            # Without a streak from history: a new failure started now, an old one at least last run.
            since = _lookup(first_failed, *key) or (
                current.started_at if key not in prev_fail else changes.previous_started_at
            )
            item = CheckChange(
                host.host,
                check.check_id,
                check.status.value,
                check.message,
                since,
                prev_fail[key].status.value if key in prev_fail else None,
            )
            (changes.still_failing if key in prev_fail else changes.new_failures).append(item)

    for key, old in prev_fail.items():
        now = cur_results.get(key)
        if now is not None and now.status not in FAILING:
            changes.fixed.append(CheckChange(*key, now.status.value, now.message, None, old.status.value))

    if previous is not None:
        _host_changes(changes, prev_hosts, cur_hosts)
    _sort(changes)
    return changes


def _host_changes(changes: ChangeSet, prev: dict[str, HostResult], cur: dict[str, HostResult]) -> None:
    for name, host in cur.items():
        old = prev.get(name)
        if old is None:
            changes.hosts_appeared.append(HostChange(name, host.status.value, host.message))
        elif host.status in UNCHECKED_STATUSES and old.status not in UNCHECKED_STATUSES:
            changes.hosts_unreachable.append(HostChange(name, host.status.value, host.message, old.status.value))
        elif host.status not in UNCHECKED_STATUSES and old.status in UNCHECKED_STATUSES:
            changes.hosts_back.append(HostChange(name, host.status.value, host.message, old.status.value))
    for name, old in prev.items():
        if name not in cur:
            changes.hosts_disappeared.append(HostChange(name, old.status.value, old.message))


def _sort(changes: ChangeSet) -> None:
    for items in (changes.new_failures, changes.fixed):
        items.sort(key=lambda c: (c.check_id, c.host))
    # Oldest streaks first: those are the ones somebody forgot.
    changes.still_failing.sort(key=lambda c: (c.since or changes.current_started_at, c.check_id, c.host))
    for hosts in (changes.hosts_appeared, changes.hosts_disappeared, changes.hosts_unreachable, changes.hosts_back):
        hosts.sort(key=lambda h: h.host)


def _status_message(h: HostChange) -> str:
    # Transport messages often start with the status already ("unsupported: PowerShell 2.0").
    if not h.message or h.message.startswith(h.status):
        return h.message or h.status
    return f"{h.status}: {h.message}"


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "?"


def _stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "?"


def format_change_summary(changes: ChangeSet, max_items: int = 20) -> str:
    """Plain-text summary for the terminal and the mail body; starts with the counts."""
    if changes.first_run:
        head = f"First recorded run ({changes.current_run_id}): nothing to compare with yet."
        lines = [head, f"{len(changes.new_failures)} failing checks in this run."]
        lines.extend(f"Note: {note}" for note in changes.notes)
        return "\n".join(lines)
    lines = [
        f"Since {_stamp(changes.previous_started_at)} (run {changes.previous_run_id}): {changes.headline()}."
    ]
    sections: list[tuple[str, list[str]]] = [
        ("New failures", [f"{c.host}  {c.check_id}  {c.status}: {c.message}" for c in changes.new_failures]),
        ("Fixed", [f"{c.host}  {c.check_id}  now {c.status}" for c in changes.fixed]),
        (
            "Still failing",
            [f"{c.host}  {c.check_id}  failing since {_day(c.since)}" for c in changes.still_failing],
        ),
        (
            "Became unreachable",
            [f"{h.host}  {_status_message(h)}" for h in changes.hosts_unreachable],
        ),
        ("Reachable again", [f"{h.host}  now {h.status}" for h in changes.hosts_back]),
        ("Appeared", [f"{h.host}  {h.status}" for h in changes.hosts_appeared]),
        ("Disappeared", [f"{h.host}  (was {h.status})" for h in changes.hosts_disappeared]),
    ]
    if changes.notes:
        sections.append(("Notes", list(changes.notes)))
    for title, items in sections:
        if not items:
            continue
        lines.append("")
        lines.append(f"{title} ({len(items)}):")
        lines.extend(f"  {item}" for item in items[:max_items])
        if len(items) > max_items:
            lines.append(f"  ... and {len(items) - max_items} more")
    return "\n".join(lines)


def diff_runs(history: History, run_a: str | None = None, run_b: str | None = None) -> str:
    """Text for `fleetcheck diff [RUN_A] [RUN_B]`.

    Defaults: B is the newest run, A the run before B of the same inventory and `--limit`
    (two cron jobs sharing a history never diff against each other). References accept run
    ids, unique prefixes, `last` and `last~N`. The last line says which runs were compared.
    Raises `HistoryError` with a clear message otherwise.
    """
    from fleetcheck.history import HistoryError

    b_id = history.resolve(run_b or "last")
    b_run = history.get(b_id)
    if run_a is None:
        prev = history.latest(before_run_id=b_id, inventory=b_run.inventory)
        if prev is None:
            raise HistoryError(
                f"run {b_id} is the oldest run of {scope_text(b_run.inventory)} in history: there is nothing "
                "to compare it with (name both runs to compare across inventories; see `fleetcheck diff --list`)."
            )
        a_run = prev
    else:
        a_run = history.get(history.resolve(run_a))
    changes = compute_changes(a_run, b_run, history.failing_since(b_id))
    which = (
        f"Compared run {a_run.run_id} ({_stamp(a_run.started_at)}, {scope_text(a_run.inventory)}) "
        f"with run {b_run.run_id} ({_stamp(b_run.started_at)}, {scope_text(b_run.inventory)})."
    )
    return format_change_summary(changes, max_items=10_000) + "\n\n" + which


def scope_text(inventory: str) -> str:
    """`prod.yml --limit dc-*` from a recorded scope (absolute inventory path, optional limit)."""
    if not inventory:
        return "no inventory recorded"
    path, _, limit = inventory.partition(" --limit ")
    try:
        shown = str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        shown = path
    return f"{shown} --limit {limit}" if limit else shown
