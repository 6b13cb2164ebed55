"""`csv` report: one row per host x check (a host we could not check gets one row, no check)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fleetcheck.reports.base import ReportContext, plain, sorted_hosts, write_atomic
from fleetcheck.results import HostResult, RunResult

COLUMNS = [
    "run_id",
    "host",
    "address",
    "transport",
    "groups",
    "host_status",
    "host_message",
    "check_id",
    "check_status",
    "severity",
    "message",
    "observed",
    "expected",
    "waiver",
    "remediation",
]


def _safe(value: str) -> str:
    """Defuse spreadsheet formulas (CSV injection) coming from remote facts."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _host_cells(run_id: str, host: HostResult) -> list[str]:
    return [run_id, host.host, host.address, host.transport, ";".join(host.groups), host.status.value, host.message]


def render(result: RunResult, context: ReportContext | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for host in sorted_hosts(result):
        base = _host_cells(result.run_id, host)
        if not host.checks:
            writer.writerow([_safe(v) for v in [*base, "", "", "", "", "", "", "", ""]])
        for check in host.checks:
            row = [
                *base,
                check.check_id,
                check.status.value,
                check.severity,
                check.message,
                plain(check.observed),
                plain(check.expected),
                check.waiver or "",
                check.remediation,
            ]
            writer.writerow([_safe(v) for v in row])
    return buffer.getvalue()


def write(result: RunResult, path: Path, context: ReportContext) -> None:
    write_atomic(path, render(result, context))
