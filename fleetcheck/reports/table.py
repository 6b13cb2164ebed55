"""The terminal compliance table: hosts x checks, worst first, then per-check failures, then a summary.

Pure text from plain data, so the same output lands on a TTY, in a cron mail and in tests.
Laid out by rich's table engine for a given width: no line is wider than the terminal. Fixed
columns (host, status, severity, check symbols) keep their size and the message column takes
the rest, so messages are shown in full when there is room and cut with "…" when not.
Large fleets stay readable: compliant rows collapse and host lists per check are cut short;
`wide=True` shows every row and wraps long messages instead of cutting them.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rich.cells import cell_len

from fleetcheck.reports.base import check_ids, hosts_with, plural, sorted_hosts, summary_line
from fleetcheck.reports.ordering import (
    FAILING_STATUSES,
    check_severities,
    failing_checks,
    severity_legend,
    severity_letter,
    severity_rank,
    worst_severity,
)
from fleetcheck.reports.sanitize import sanitize_result
from fleetcheck.results import UNCHECKED_STATUSES, CheckStatus, HostResult, HostStatus, RunResult

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

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
#: Narrower than this the table cannot be laid out sensibly; it is rendered at this width.
MIN_WIDTH = 40
#: Width used when stdout is not a terminal and COLUMNS is unset (cron mail, pipes).
PIPE_WIDTH = 120
#: The message column never shrinks below this before the host column gives way.
MIN_MESSAGE = 16
MIN_HOST = 12
#: When the message column would get less than this, columns sit one space apart instead of two.
TIGHT_BELOW = 24


@dataclass
class TableOptions:
    view: View = "full"
    wide: bool = False
    ascii: bool = False
    width: int | None = None  # None: COLUMNS, else the terminal's width, else PIPE_WIDTH
    max_rows: int = 40  # beyond this, compliant hosts collapse into one line
    max_hosts_per_check: int = 5
    strip_above: int = 10  # more checks than this: one compact column "✓✓✗✓✓ ✓E✓✓✓" instead of one each


def terminal_width() -> int:
    """COLUMNS when set, else the terminal's width, else PIPE_WIDTH (output to a file or mail)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    return PIPE_WIDTH


def _width(opts: TableOptions) -> int:
    return max(MIN_WIDTH, opts.width or terminal_width())


def _console(width: int) -> Console:
    from rich.console import Console  # the tables' layout engine; the summary line alone needs none

    return Console(
        file=io.StringIO(), width=width, color_system=None, force_terminal=False, legacy_windows=False,
        emoji=False, highlight=False, markup=False,
    )


def _new_table(gap: int = 2) -> Table:
    """Columns `gap` spaces apart (the box's blank vertical line plus the padding), a rule under the header."""
    from rich import box
    from rich.table import Table

    return Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, gap - 1), collapse_padding=True
    )


def _print(table: Table, width: int) -> list[str]:
    console = _console(width)
    console.print(table)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return [line.rstrip() for line in text.splitlines()]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _host_message(host: HostResult, numbers: dict[str, int] | None = None) -> str:
    """What to read first on the row: the most severe failing check, else the host's message.

    With `numbers` the check is named by its column number (narrow terminals), else by id.
    """
    if host.status in UNCHECKED_STATUSES or not host.checks:
        return host.message
    bad = failing_checks(host)
    if not bad:
        bad = [c for c in host.checks if c.status == CheckStatus.WARN]
        if not bad:
            return host.message
    first = bad[0]
    name = f"#{numbers[first.check_id]}" if numbers and first.check_id in numbers else first.check_id
    more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{name}: {first.message}{more}"


def legend(symbols: dict[CheckStatus, str]) -> str:
    return "Legend: " + "  ".join(f"{symbols[s]} {s.value}" for s in UNICODE_SYMBOLS)


def _strip(cells: list[str]) -> str:
    return " ".join("".join(cells[i : i + 5]).ljust(5) for i in range(0, len(cells), 5)).rstrip()


def _strip_header(count: int) -> str:
    """Position ruler for the compact column: each group of five is labelled with its first number."""
    return "".join(str(i + 1).ljust(6) for i in range(0, count, 5)).rstrip()


def show_auth_column(result: RunResult) -> bool:
    """The Auth column appears once a run involves more than NTLM and Basic (Kerberos, CredSSP,
    certificates), so a domain team sees which hosts fell back to NTLM; NTLM-only runs look as before."""
    return any(h.auth_mechanism not in (None, "ntlm", "basic") for h in result.hosts)


def _fit(rows: list[list[str]], headers: list[str], width: int, wide: bool, shrink_first: int, flexible: int) -> list[str]:
    """Render `rows` so that no line exceeds `width`.

    The `flexible` column (the last, free text) takes what the others leave; when that is less
    than MIN_MESSAGE, the `shrink_first` column (host names) gives up room down to MIN_HOST.
    Without `wide` the free text is cut with "…"; with it, the text wraps inside its column.
    """
    natural = [max([cell_len(headers[i])] + [cell_len(r[i]) for r in rows]) for i in range(len(headers))]
    fixed = sum(w for i, w in enumerate(natural) if i != flexible)
    gap = 2 if width - 2 * (len(headers) - 1) - fixed >= TIGHT_BELOW else 1
    room = width - gap * (len(headers) - 1) - fixed
    widths = list(natural)
    if room < MIN_MESSAGE:
        give = min(MIN_MESSAGE - room, max(0, natural[shrink_first] - MIN_HOST))
        widths[shrink_first] -= give
        room += give
    widths[flexible] = max(1, min(natural[flexible], room))
    table = _new_table(gap)
    for i, header in enumerate(headers):
        is_flex = i == flexible
        table.add_column(
            header,
            width=widths[i],
            no_wrap=not (wide and is_flex),
            overflow="fold" if wide and is_flex else "ellipsis",
            justify="right" if header in ("Pass", "Fail", "Warn", "Err", "Skip") else "left",
        )
    for row in rows:
        table.add_row(*row)
    return _print(table, width)


def render_hosts(result: RunResult, opts: TableOptions) -> str:
    """One row per host, one column per check (numbered), the worst failing severity as a letter."""
    width = _width(opts)
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
    strip = len(ids) > opts.strip_above
    check_headers = [_strip_header(len(ids))] if strip else [str(i + 1) for i in range(len(ids))]
    auth = show_auth_column(result)
    headers = ["Host", "Status", *(["Auth"] if auth else []), "Sev", *check_headers, "Message"]
    rows: list[list[Any]] = []
    for host in hosts:
        by_id = {c.check_id: c for c in host.checks}
        cells = [symbols[by_id[i].status] if i in by_id else ("" if not strip else " ") for i in ids]
        if strip:
            cells = [_strip(cells) if host.checks else ""]
        worst = worst_severity(c for c in host.checks if c.status in FAILING_STATUSES)
        sev = severity_letter(worst) if worst else ""
        mechanism = [host.auth_mechanism or ""] if auth else []
        rows.append([host.host, host.status.value, *mechanism, sev, *cells, host])
    if rows:
        fixed = sum(max(cell_len(h), *(cell_len(str(r[i])) for r in rows)) for i, h in enumerate(headers[:-1]))
        narrow = width - fixed - 2 * (len(headers) - 1) < 40
        numbers = {cid: n for n, cid in enumerate(ids, start=1)} if narrow else None
        for row in rows:
            row[-1] = _one_line(_host_message(row[-1], numbers))
    lines = _fit(rows, headers, width, opts.wide, shrink_first=0, flexible=len(headers) - 1) if rows else []
    if hidden_other:
        lines.append(f"... {plural(hidden_other, 'more host')} with problems not shown (--wide shows all)")
    if hidden_compliant:
        lines.append(f"... {plural(hidden_compliant, 'compliant host')} not shown (--wide shows all)")
    lines.append(legend(symbols))
    lines.append(severity_legend())
    if opts.view == "hosts" and ids:
        lines.append(_wrap_items("Checks: ", [f"{n} {cid}" for n, cid in enumerate(ids, start=1)], width))
    return "\n".join(lines)


def _not_evaluated_reason(result: RunResult) -> str:
    statuses = {h.status for h in result.hosts}
    if not statuses:
        return "no host in the run"
    if statuses <= {HostStatus.UNREACHABLE, HostStatus.TIMEOUT}:
        return "no host reachable"
    if statuses <= UNCHECKED_STATUSES:
        return "no host could be checked"
    return "not run on any checked host"


def render_checks(result: RunResult, opts: TableOptions) -> str:
    """Per check: how many hosts pass, fail or could not be evaluated, and which hosts fail.

    Rows come most severe first, then by failing hosts. Checks that passed on every host they
    ran on fold into one line unless `wide`; checks no host evaluated always fold into one line.
    """
    width = _width(opts)
    severities = check_severities(result)
    entries = []
    clean: list[str] = []
    not_run: list[str] = []
    for number, check_id in enumerate(check_ids(result), start=1):
        statuses = [c.status for h in result.hosts for c in h.checks if c.check_id == check_id]
        if not statuses:
            not_run.append(f"{number} {check_id}")
            continue
        if not opts.wide and all(s == CheckStatus.PASS for s in statuses):
            clean.append(f"{number} {check_id}")
            continue
        failing = hosts_with(result, check_id, frozenset({CheckStatus.FAIL}))
        errors = sum(1 for s in statuses if s in (CheckStatus.ERROR, CheckStatus.UNKNOWN))
        limit = len(failing) if opts.wide else opts.max_hosts_per_check
        names = ", ".join(failing[:limit]) + (f" +{len(failing) - limit} more" if len(failing) > limit else "")
        severity = severities.get(check_id, "medium")
        row = [
            str(number),
            severity_letter(severity),
            check_id,
            str(statuses.count(CheckStatus.PASS)),
            str(len(failing)),
            str(statuses.count(CheckStatus.WARN)),
            str(errors),
            str(statuses.count(CheckStatus.SKIP) + statuses.count(CheckStatus.WAIVED)),
            names,
        ]
        bad = len(failing) + errors
        entries.append(((0 if bad else 1, -severity_rank(severity), -bad, number), row))
    if not entries and not clean and not not_run:
        return "No check was evaluated."
    headers = ["#", "Sev", "Check", "Pass", "Fail", "Warn", "Err", "Skip", "Failing hosts"]
    rows = [row for _, row in sorted(entries, key=lambda e: e[0])]
    parts = _fit(rows, headers, width, opts.wide, shrink_first=2, flexible=8) if rows else []
    if rows:
        parts.append("Err: error or unknown (not evaluable); Skip: skipped or waived")
    if clean:
        parts.append(_wrap_items("Passed on every checked host: ", clean, width))
    if not_run:
        reason = _not_evaluated_reason(result)
        parts.append(f"{plural(len(not_run), 'check')} not evaluated: {reason}")
        if opts.wide or len(not_run) <= 3:
            parts.append(_wrap_items("  ", not_run, width))
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
    parts.append(_wrap_summary(summary_line(result), _width(opts)))
    return "\n".join(_hard_wrap(line, _width(opts)) for line in "\n\n".join(parts).splitlines()) + "\n"


def _hard_wrap(line: str, width: int) -> str:
    """Last guard for prose lines (legends, notes) on very narrow terminals: wrap at spaces."""
    if cell_len(line) <= width:
        return line
    return "\n".join(textwrap.wrap(line, width=width, subsequent_indent="  ", break_on_hyphens=False))


def _wrap_summary(text: str, width: int) -> str:
    """The summary line, broken at '; ' (then at ', ') when the terminal is narrower than it."""
    if len(text) <= width:
        return text
    words: list[str] = []
    for i, piece in enumerate(text.split("; ")):
        parts = piece.split(", ")
        words += [p + ("," if j < len(parts) - 1 else "") for j, p in enumerate(parts)]
        if i < len(text.split("; ")) - 1:
            words[-1] += ";"
    lines = [words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append("  " + word)
    return "\n".join(lines)
