"""The terminal table fits the terminal: widths, full messages when there is room, folding, severity order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rich.cells import cell_len

from fleetcheck.checks.registry import CHECK_ORDER, CHECKS
from fleetcheck.reports.base import sorted_hosts, summary_line
from fleetcheck.reports.table import TableOptions, render_table
from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
AUTH = "credentials rejected (Negotiate/NTLM) - check username form DOMAIN\\user or user@REALM and the password"


def _check(cid: str, status: CheckStatus, message: str = "") -> CheckResult:
    return CheckResult(check_id=cid, status=status, message=message or f"{CHECKS[cid].title}", severity=CHECKS[cid].severity)


def _run(hosts: list[HostResult]) -> RunResult:
    return RunResult(
        run_id="r", started_at=T0, finished_at=T0 + timedelta(seconds=61), inventory="prod.yml",
        check_ids=list(CHECK_ORDER), hosts=hosts,
    )


def _fleet(n: int) -> RunResult:
    """Real check ids and severities, FQDN host names, long messages, every kind of outcome."""
    hosts = []
    for i in range(n):
        name = f"ber-fs{i:03d}.corp.example.com"
        if i % 50 == 3:
            hosts.append(HostResult(host=name, status=HostStatus.AUTH_FAILED, message=AUTH))
            continue
        if i % 50 == 7:
            hosts.append(HostResult(host=name, status=HostStatus.TIMEOUT, message="no answer within 30 s"))
            continue
        checks = []
        for j, cid in enumerate(CHECK_ORDER):
            status = CheckStatus.FAIL if (i + j) % 37 == 0 else CheckStatus.PASS
            msg = f"{CHECKS[cid].title}: observed a value that does not meet the playbook's expectation on host {i}"
            checks.append(_check(cid, status, msg))
        failing = any(c.status == CheckStatus.FAIL for c in checks)
        hosts.append(
            HostResult(host=name, status=HostStatus.NONCOMPLIANT if failing else HostStatus.COMPLIANT, checks=checks)
        )
    return _run(hosts)


@pytest.mark.parametrize("width", [80, 200])
@pytest.mark.parametrize("view", ["full", "hosts", "checks"])
@pytest.mark.parametrize("wide", [False, True])
def test_no_line_exceeds_the_terminal(width: int, view: str, wide: bool) -> None:
    text = render_table(_fleet(120), TableOptions(width=width, view=view, wide=wide))  # type: ignore[arg-type]
    too_long = [line for line in text.splitlines() if cell_len(line) > width]
    assert too_long == []
    if wide and view != "checks":
        assert sum(1 for line in text.splitlines() if line.startswith("ber-fs")) == 120


def test_full_message_when_room_cut_when_not() -> None:
    run = _fleet(60)
    at_200 = render_table(run, TableOptions(width=200, view="hosts"))
    row = next(line for line in at_200.splitlines() if line.startswith("ber-fs003"))
    assert AUTH in row  # the useful end of the message is there
    at_80 = render_table(run, TableOptions(width=80, view="hosts"))
    row = next(line for line in at_80.splitlines() if line.startswith("ber-fs003"))
    assert row.endswith("…") and "credentials" in row and cell_len(row) <= 80


def test_wide_wraps_messages_inside_the_terminal() -> None:
    text = render_table(_fleet(10), TableOptions(width=100, view="hosts", wide=True))
    assert max(cell_len(line) for line in text.splitlines()) <= 100
    joined = " ".join(line.strip() for line in text.splitlines())
    assert "user@REALM and the password" in joined and "…" not in joined


def test_every_host_unchecked_folds_the_check_rows_and_says_one_host() -> None:
    run = _run([HostResult(host="LAB-0001", status=HostStatus.UNREACHABLE, message="connection refused")])
    text = render_table(run, TableOptions(width=80))
    assert f"{len(CHECK_ORDER)} checks not evaluated: no host reachable" in text
    assert "Pass" not in text  # no table of zeros
    assert summary_line(run).startswith("1 host: 1 unreachable; 0 failed checks")


def test_most_severe_failing_check_sorts_first_then_count() -> None:
    medium = [cid for cid in CHECK_ORDER if CHECKS[cid].severity == "medium"][:3]
    critical = next(cid for cid in CHECK_ORDER if CHECKS[cid].severity == "critical")
    high = next(cid for cid in CHECK_ORDER if CHECKS[cid].severity == "high")
    hosts = [
        HostResult(host="three-medium", status=HostStatus.NONCOMPLIANT, checks=[_check(c, CheckStatus.FAIL) for c in medium]),
        HostResult(host="one-high", status=HostStatus.NONCOMPLIANT, checks=[_check(high, CheckStatus.FAIL)]),
        HostResult(host="one-critical", status=HostStatus.NONCOMPLIANT, checks=[_check(critical, CheckStatus.FAIL)]),
        HostResult(
            host="two-high", status=HostStatus.NONCOMPLIANT,
            checks=[_check(high, CheckStatus.FAIL), _check("service-vss", CheckStatus.FAIL)],
        ),
        HostResult(host="down", status=HostStatus.TIMEOUT, message="no answer"),
        HostResult(host="fine", status=HostStatus.COMPLIANT, checks=[_check(critical, CheckStatus.PASS)]),
    ]
    run = _run(hosts)
    assert [h.host for h in sorted_hosts(run)] == ["down", "one-critical", "two-high", "one-high", "three-medium", "fine"]
    text = render_table(run, TableOptions(width=120, view="hosts"))
    row = next(line for line in text.splitlines() if line.startswith("one-critical"))
    assert row.split()[2] == "C"
    checks = render_table(run, TableOptions(width=120, view="checks")).splitlines()
    rows = [line.split() for line in checks if line[:1].isdigit() and "hosts" not in line]
    assert [r[1] for r in rows][:2] == ["C", "H"] and rows[0][2] == critical
