"""`markdown` report: a summary, the host table and the failing checks, for tickets and wikis."""

from __future__ import annotations

from pathlib import Path

from fleetcheck.reports.base import (
    ReportContext,
    check_ids,
    hosts_with,
    sorted_hosts,
    summary_line,
    write_atomic,
)
from fleetcheck.results import FAILING, CheckStatus, RunResult


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(result: RunResult, context: ReportContext | None = None) -> str:
    lines = [
        f"# fleetcheck run {result.run_id}",
        "",
        f"Inventory `{result.inventory}`, playbooks {', '.join(result.playbooks) or '-'}, "
        f"started {result.started_at.isoformat(timespec='seconds')}.",
        "",
        f"**{_cell(summary_line(result))}**",
        "",
        "## Hosts",
        "",
        "| Host | Status | Failing checks | Message |",
        "|---|---|---|---|",
    ]
    for host in sorted_hosts(result):
        failing = [c.check_id for c in host.checks if c.status in FAILING]
        lines.append(
            f"| {_cell(host.host)} | {host.status.value} | {_cell(', '.join(failing))} | {_cell(host.message)} |"
        )
    lines += ["", "## Checks", "", "| Check | Failing hosts | Hosts |", "|---|---|---|"]
    for check_id in check_ids(result):
        failing = hosts_with(result, check_id, frozenset({CheckStatus.FAIL}))
        lines.append(f"| {_cell(check_id)} | {len(failing)} | {_cell(', '.join(failing))} |")
    return "\n".join(lines) + "\n"


def write(result: RunResult, path: Path, context: ReportContext) -> None:
    write_atomic(path, render(result, context))
