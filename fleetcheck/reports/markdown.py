"""`markdown` report for tickets and wikis: what needs doing, not the whole fleet.

Hosts we could not check and noncompliant hosts are listed (worst first); compliant hosts fold
into a count. Then one section per failing check (most severe first) with its title, the fix and
the hosts, which is what a ticket for the team owning that check needs. A 1,000-host run with a
few dozen problems stays a few dozen lines.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from fleetcheck.reports.base import ReportContext, plural, summary_line, write_atomic
from fleetcheck.reports.ordering import (
    FAILING_STATUSES,
    check_severities,
    check_titles,
    failing_checks,
    severity_rank,
    sorted_hosts,
    worst_severity,
)
from fleetcheck.results import UNCHECKED_STATUSES, CheckResult, CheckStatus, HostStatus, RunResult

#: Host names listed per failing check before "and N more".
HOSTS_PER_CHECK = 50


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _hosts_section(result: RunResult) -> list[str]:
    hosts = sorted_hosts(result)
    unchecked = [h for h in hosts if h.status in UNCHECKED_STATUSES]
    noncompliant = [h for h in hosts if h.status == HostStatus.NONCOMPLIANT]
    compliant = [h for h in hosts if h.status == HostStatus.COMPLIANT]
    warned = sum(1 for h in compliant if any(c.status == CheckStatus.WARN for c in h.checks))
    lines: list[str] = []
    if unchecked:
        lines += [f"## Could not check ({len(unchecked)})", "", "| Host | Status | Message |", "|---|---|---|"]
        lines += [f"| {_cell(h.host)} | {h.status.value} | {_cell(h.message)} |" for h in unchecked]
        lines.append("")
    if noncompliant:
        lines += [
            f"## Noncompliant ({len(noncompliant)})",
            "",
            "| Host | Severity | Failing checks | First problem |",
            "|---|---|---|---|",
        ]
        for h in noncompliant:
            bad = failing_checks(h)
            first = bad[0].message if bad else h.message
            lines.append(
                f"| {_cell(h.host)} | {worst_severity(bad) or ''} | {_cell(', '.join(c.check_id for c in bad))} "
                f"| {_cell(first)} |"
            )
        lines.append("")
    if compliant:
        note = f" ({warned} with warnings)" if warned else ""
        lines += [f"{plural(len(compliant), 'compliant host')}{note} not listed.", ""]
    return lines


def _checks_section(result: RunResult) -> list[str]:
    by_check: dict[str, list[tuple[str, CheckResult]]] = defaultdict(list)
    for host in sorted_hosts(result):
        for check in host.checks:
            if check.status in FAILING_STATUSES:
                by_check[check.check_id].append((host.host, check))
    if not by_check:
        return []
    severities = check_severities(result)
    titles = check_titles(by_check)
    order = sorted(by_check, key=lambda cid: (-severity_rank(severities.get(cid, "medium")), -len(by_check[cid]), cid))
    lines = ["## Failing checks", ""]
    for cid in order:
        entries = by_check[cid]
        names = [_cell(host) for host, _ in entries[:HOSTS_PER_CHECK]]
        more = f" and {len(entries) - HOSTS_PER_CHECK} more" if len(entries) > HOSTS_PER_CHECK else ""
        remediation = next((c.remediation for _, c in entries if c.remediation), "")
        lines += [
            f"### `{cid}`{': ' + _cell(titles[cid]) if titles[cid] != cid else ''} "
            f"({severities.get(cid, 'medium')}, {plural(len(entries), 'host')})",
            "",
            f"Example: {_cell(entries[0][1].message)}",
        ]
        if remediation:
            lines.append(f"Fix: {_cell(remediation)}")
        lines += ["", f"Hosts: {', '.join(names)}{more}", ""]
    return lines


def render(result: RunResult, context: ReportContext | None = None) -> str:
    lines = [
        f"# fleetcheck run {result.run_id}",
        "",
        f"Inventory `{result.inventory}`, playbooks {', '.join(result.playbooks) or '-'}, "
        f"started {result.started_at.isoformat(timespec='seconds')}.",
        "",
        f"**{_cell(summary_line(result))}**",
        "",
    ]
    lines += _hosts_section(result)
    lines += _checks_section(result)
    return "\n".join(lines).rstrip("\n") + "\n"


def write(result: RunResult, path: Path, context: ReportContext) -> None:
    write_atomic(path, render(result, context))
