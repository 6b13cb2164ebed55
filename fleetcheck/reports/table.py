"""The terminal compliance table: hosts x checks, worst first, then per-check failures, then a summary.

Pure text from plain data, so the same output lands on a TTY, in a cron mail and in tests.
Large fleets stay readable: compliant rows collapse, host lists per check are cut short,
messages are truncated; `wide=True` shows everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tabulate import tabulate

from fleetcheck.reports.base import (
    check_ids,
    hosts_with,
    sorted_hosts,
    summary_line,
)
from fleetcheck.reports.sanitize import sanitize_result
from fleetcheck.results import FAILING, UNCHECKED_STATUSES, CheckStatus, HostResult, HostStatus, RunResult

View = Literal["full", "hosts", "checks", "summary"]

UNICODE_SYMBOLS: dict[CheckStatus, str] = {
    CheckStatus.PASS: "✓",
    CheckStatus.FAIL: "✗",
    CheckStatus.WARN: "!",
    CheckStatus.ERROR: "E",
    CheckStatus.UNKNOWN: "?",
    CheckStatus.SKIP: "-",
    CheckStatus.WAIVED: "w",
}
ASCII_SYMBOLS: dict[CheckStatus, str] = {**UNICODE_SYMBOLS, CheckStatus.PASS: ".", CheckStatus.FAIL: "X"}


@dataclass
class TableOptions:
    view: View = "full"
    wide: bool = False
    ascii: bool = False
    max_rows: int = 40  # beyond this, compliant hosts collapse into one line
    max_hosts_per_check: int = 5
    message_width: int = 60
    strip_above: int = 10  # more checks than this: one compact column "✓✓✗✓✓ ✓E✓✓✓" instead of one each


def _cut(text: str, width: int, wide: bool) -> str:
    text = " ".join(text.split())
    return text if wide or len(text) <= width else text[: width - 1] + "…"


def _host_message(host: HostResult) -> str:
    if host.status in UNCHECKED_STATUSES or not host.checks:
        return host.message
    bad = [c for c in host.checks if c.status in FAILING]
    if not bad:
        return host.message
    first = bad[0]
    more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{first.check_id}: {first.message}{more}"


def legend(symbols: dict[CheckStatus, str]) -> str:
    return "Legend: " + "  ".join(f"{symbols[s]} {s.value}" for s in UNICODE_SYMBOLS)


def _strip(cells: list[str]) -> str:
    return " ".join("".join(cells[i : i + 5]).ljust(5) for i in range(0, len(cells), 5)).rstrip()


def _strip_header(count: int) -> str:
    """Position ruler for the compact column: each group of five is labelled with its first number."""
    return "".join(str(i + 1).ljust(6) for i in range(0, count, 5)).rstrip()


def render_hosts(result: RunResult, opts: TableOptions) -> str:
    """One row per host, one column per check (numbered; ids as headers with --wide)."""
    symbols = ASCII_SYMBOLS if opts.ascii else UNICODE_SYMBOLS
    ids = check_ids(result)
    hosts = sorted_hosts(result)
    hidden_compliant = 0
    hidden_other = 0
    if not opts.wide and len(hosts) > opts.max_rows:
        shown = [h for h in hosts if h.status != HostStatus.COMPLIANT]
        hidden_compliant = len(hosts) - len(shown)
        if len(shown) > opts.max_rows:
            hidden_other = len(shown) - opts.max_rows
            shown = shown[: opts.max_rows]
        hosts = shown
    strip = not opts.wide and len(ids) > opts.strip_above
    if strip:
        check_headers = [_strip_header(len(ids))]
    else:
        check_headers = ids if opts.wide else [str(i + 1) for i in range(len(ids))]
    headers = ["Host", "Status", *check_headers, "Message"]
    rows = []
    for host in hosts:
        by_id = {c.check_id: c for c in host.checks}
        cells = [symbols[by_id[i].status] if i in by_id else ("" if not strip else " ") for i in ids]
        if strip:
            cells = [_strip(cells) if host.checks else ""]
        rows.append([host.host, host.status.value, *cells, _cut(_host_message(host), opts.message_width, opts.wide)])
    lines = [tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)] if rows else []
    if hidden_other:
        lines.append(f"... {hidden_other} more hosts with problems not shown (--wide shows all)")
    if hidden_compliant:
        lines.append(f"... {hidden_compliant} compliant hosts not shown (--wide shows all)")
    lines.append(legend(symbols))
    if opts.view == "hosts" and not opts.wide and ids:
        lines.append("Checks: " + ", ".join(f"{n} {cid}" for n, cid in enumerate(ids, start=1)))
    return "\n".join(lines)


def render_checks(result: RunResult, opts: TableOptions) -> str:
    """Per check: how many hosts pass, fail or could not be evaluated, and which hosts fail.

    Checks that passed on every host they ran on fold into one line unless `wide`.
    """
    rows = []
    clean: list[str] = []
    for number, check_id in enumerate(check_ids(result), start=1):
        statuses = [c.status for h in result.hosts for c in h.checks if c.check_id == check_id]
        if not opts.wide and statuses and all(s == CheckStatus.PASS for s in statuses):
            clean.append(f"{number} {check_id}")
            continue
        failing = hosts_with(result, check_id, frozenset({CheckStatus.FAIL}))
        errors = sum(1 for s in statuses if s in (CheckStatus.ERROR, CheckStatus.UNKNOWN))
        limit = len(failing) if opts.wide else opts.max_hosts_per_check
        names = ", ".join(failing[:limit]) + (f" +{len(failing) - limit} more" if len(failing) > limit else "")
        rows.append(
            [
                number,
                check_id,
                statuses.count(CheckStatus.PASS),
                len(failing),
                statuses.count(CheckStatus.WARN),
                errors,
                statuses.count(CheckStatus.SKIP) + statuses.count(CheckStatus.WAIVED),
                names,
            ]
        )
    if not rows and not clean:
        return "No check was evaluated."
    headers = ["#", "Check", "Pass", "Fail", "Warn", "Err/?", "Skip/Waived", "Failing hosts"]
    parts = [tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)] if rows else []
    if clean:
        parts.append(_wrap_items("Passed on every checked host: ", clean))
    return "\n".join(parts)


def _wrap_items(prefix: str, items: list[str], width: int = 100) -> str:
    """Comma-separated items, wrapped between items only (never inside '12 check-id')."""
    lines = [prefix]
    for index, item in enumerate(items):
        piece = item + ("," if index < len(items) - 1 else "")
        if len(lines[-1]) + len(piece) + 1 > width and lines[-1].strip():
            lines.append("  ")
        lines[-1] += piece if lines[-1].endswith((" ", ": ")) else " " + piece
    return "\n".join(line.rstrip() for line in lines)


def render_table(result: RunResult, opts: TableOptions | None = None) -> str:
    """The whole terminal report for the chosen view."""
    opts = opts or TableOptions()
    result = sanitize_result(result)
    parts: list[str] = []
    if opts.view in ("full", "hosts"):
        parts.append(render_hosts(result, opts))
    if opts.view in ("full", "checks"):
        parts.append(render_checks(result, opts))
    parts.append(summary_line(result))
    return "\n\n".join(parts) + "\n"
