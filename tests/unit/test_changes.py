"""Change sets between runs, the terminal summary and `fleetcheck diff`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_history import make_run

from fleetcheck.changes import compute_changes, diff_runs, format_change_summary
from fleetcheck.history import History, HistoryError
from fleetcheck.results import CheckStatus, HostStatus

P, F, E, W = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.WAIVED

NIGHT1 = make_run(
    "n1",
    0,
    {
        "web1": {"a": F, "b": P},
        "web2": {"a": F, "b": F},
        "web3": {"a": P, "b": P},
        "old1": {"a": P, "b": F},
        "dc1": {"a": F, "b": P},
        "dead1": HostStatus.UNREACHABLE,
    },
)
NIGHT2 = make_run(
    "n2",
    1,
    {
        "web1": {"a": F, "b": F},  # a still failing, b new
        "web2": {"a": P, "b": W},  # a fixed, b now waived (not failing any more)
        "web3": {"a": P, "b": E},  # b new (error counts as failing)
        "new1": {"a": F, "b": P},  # appeared, its failure is new
        "dc1": HostStatus.TIMEOUT,  # became unchecked: its failure is neither fixed nor still failing
        "dead1": {"a": P, "b": P},  # reachable again
    },
)


def keys(items: list) -> list[tuple[str, str]]:
    return [(c.host, c.check_id) for c in items]


def test_compute_changes_lists() -> None:
    since = {("web1", "a"): datetime(2026, 10, 30, 2, 0, tzinfo=UTC)}
    ch = compute_changes(NIGHT1, NIGHT2, since)
    assert keys(ch.new_failures) == [("new1", "a"), ("web1", "b"), ("web3", "b")]
    assert keys(ch.fixed) == [("web2", "a"), ("web2", "b")]
    assert [c.status for c in ch.fixed] == ["pass", "waived"]
    assert keys(ch.still_failing) == [("web1", "a")]
    assert ch.still_failing[0].since == since[("web1", "a")]
    assert ch.new_failures[0].since == NIGHT2.started_at  # a new failure started tonight
    assert [h.host for h in ch.hosts_appeared] == ["new1"]
    assert [h.host for h in ch.hosts_disappeared] == ["old1"]
    assert [(h.host, h.status, h.previous_status) for h in ch.hosts_unreachable] == [("dc1", "timeout", "noncompliant")]
    assert [h.host for h in ch.hosts_back] == ["dead1"]
    assert ch.changed and not ch.first_run


def test_first_failed_accepts_a_callable() -> None:
    ch = compute_changes(NIGHT1, NIGHT2, lambda host, check: datetime(2026, 1, 1, tzinfo=UTC))
    assert ch.still_failing[0].since == datetime(2026, 1, 1, tzinfo=UTC)


def test_same_run_twice_has_no_changes() -> None:
    ch = compute_changes(NIGHT2, NIGHT2.model_copy(update={"run_id": "n3"}))
    assert not ch.changed
    assert keys(ch.still_failing) == [("new1", "a"), ("web1", "a"), ("web1", "b"), ("web3", "b")]
    assert ch.new_failures == [] and ch.fixed == []


def test_first_run() -> None:
    ch = compute_changes(None, NIGHT1)
    assert ch.first_run
    assert len(ch.new_failures) == 5
    text = format_change_summary(ch)
    assert text.startswith("First recorded run (n1)")


def test_summary_starts_with_counts_and_lists_items() -> None:
    since = {("web1", "a"): datetime(2026, 10, 30, 2, 0, tzinfo=UTC)}
    ch = compute_changes(NIGHT1, NIGHT2, since)
    ch.notes.append("waiver x expired on 2026-11-01 and no longer applies.")
    text = format_change_summary(ch)
    first = text.splitlines()[0]
    assert first == (
        "Since 2026-11-01 02:00 UTC (run n1): 3 new failures, 2 fixed, 1 still failing, "
        "1 host became unreachable, 1 host appeared, 1 host disappeared, 1 host reachable again."
    )
    assert "  web1  a  failing since 2026-10-30" in text
    assert "  web3  b  error: b: error" in text
    assert "  web2  b  now waived" in text
    assert "  dc1  timeout: connection refused" in text
    assert "Notes (1):" in text


def test_summary_caps_long_lists() -> None:
    many = make_run("m", 2, {f"h{i:03d}": {"a": F} for i in range(30)})
    none = make_run("z", 1, {f"h{i:03d}": {"a": P} for i in range(30)})
    text = format_change_summary(compute_changes(none, many), max_items=5)
    assert "New failures (30):" in text and "... and 25 more" in text


def test_diff_runs_from_history(tmp_path: Path) -> None:
    with History(tmp_path / "h.sqlite3") as h:
        h.record(make_run("n0", -1, {"web1": {"a": F, "b": P}}))
        h.record(NIGHT1)
        h.record(NIGHT2)
        text = diff_runs(h)  # default: last vs the one before
        assert text.startswith("Since 2026-11-01 02:00 UTC (run n1): 3 new failures, 2 fixed, 1 still failing")
        # web1/a has failed since n0 (the night before n1): history knows the streak.
        assert "web1  a  failing since 2026-10-31" in text
        text = diff_runs(h, "n0", "n1")
        assert text.startswith("Since 2026-10-31 02:00 UTC (run n0): 4 new failures, 0 fixed, 1 still failing")
        with pytest.raises(HistoryError, match="nothing to compare"):
            diff_runs(h, None, "n0")
        with pytest.raises(HistoryError, match="no run matches"):
            diff_runs(h, "zzz", None)


def test_diff_defaults_to_the_same_inventory_and_limit_and_says_which(tmp_path: Path) -> None:
    other = NIGHT1.model_copy(update={"run_id": "lab-1", "inventory": "/srv/lab.yml"})
    night1 = NIGHT1.model_copy(update={"inventory": "/srv/prod.yml --limit dc-*"})
    night2 = NIGHT2.model_copy(update={"inventory": "/srv/prod.yml --limit dc-*"})
    later_other = other.model_copy(
        update={"run_id": "lab-2", "started_at": NIGHT2.started_at.replace(minute=30)}
    )
    with History(tmp_path / "h.sqlite3") as h:
        h.record(night1)
        h.record(other)  # another inventory recorded between the two prod runs
        h.record(night2)
        text = diff_runs(h)
        assert text.startswith("Since 2026-11-01 02:00 UTC (run n1):")
        assert text.splitlines()[-1] == (
            "Compared run n1 (2026-11-01 02:00 UTC, /srv/prod.yml --limit dc-*) "
            "with run n2 (2026-11-02 02:00 UTC, /srv/prod.yml --limit dc-*)."
        )
        h.record(later_other)
        assert "Compared run lab-1 " in diff_runs(h).splitlines()[-1]  # lab-2 against lab-1, not n2
        with pytest.raises(HistoryError, match=r"oldest run of /srv/prod\.yml --limit dc-\* in history"):
            diff_runs(h, None, "n1")


def test_status_not_repeated_when_message_starts_with_it() -> None:
    prev = make_run("p", 0, {"old": {"a": P}})
    cur = make_run("c", 1, {"old": HostStatus.UNSUPPORTED})
    cur.hosts[0].message = "unsupported: PowerShell 2.0"
    text = format_change_summary(compute_changes(prev, cur))
    assert "  old  unsupported: PowerShell 2.0" in text


def test_unknown_counts_as_failing_like_the_runner() -> None:
    prev = make_run("p", 0, {"web1": {"a": P}})
    cur = make_run("c", 1, {"web1": {"a": CheckStatus.UNKNOWN}})
    ch = compute_changes(prev, cur)
    assert keys(ch.new_failures) == [("web1", "a")] and ch.new_failures[0].status == "unknown"
