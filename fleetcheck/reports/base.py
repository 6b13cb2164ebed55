"""The report-writer interface and the registry of formats (`--report FORMAT:PATH`)."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcheck.errors import UserError
from fleetcheck.results import CheckStatus, HostResult, HostStatus, RunResult


@dataclass
class ReportContext:
    """Extra material some formats use; plain data, filled by the CLI from history."""

    changes: Any | None = None  # fleetcheck.changes.ChangeSet (nightly report)
    trend: list[Any] | None = None  # per-run compliance points, oldest first
    check_trend: dict[str, dict[str, int]] | None = None  # run id -> check id -> failing hosts
    fixes: dict[str, list[str]] | None = None  # host -> "CHECK fixed by fleetcheck fix at ..." since the last run
    prerendered: Any | None = None  # json: the hosts' texts rendered during the run (reports.json.HostSpool)


Writer = Callable[[RunResult, Path, ReportContext], None]
Renderer = Callable[[RunResult, ReportContext], str]

#: format name -> module. Every format module has the same two functions,
#: `render(result, context) -> str` and `write(result, path, context)`. Imported on first use
#: so `fleetcheck --help` stays fast.
WRITERS: dict[str, str] = {
    "json": "fleetcheck.reports.json",
    "csv": "fleetcheck.reports.csv",
    "junit": "fleetcheck.reports.junit",
    "markdown": "fleetcheck.reports.markdown",
    "html": "fleetcheck.reports.html",
    "prometheus": "fleetcheck.reports.prometheus",
    "sarif": "fleetcheck.reports.sarif",
}


def get_writer(fmt: str) -> Writer:
    """The file writer of a format; raises KeyError for unknown formats."""
    writer: Writer = importlib.import_module(WRITERS[fmt]).write
    return writer


def get_renderer(fmt: str) -> Renderer:
    """The text renderer of a format; raises KeyError for unknown formats."""
    renderer: Renderer = importlib.import_module(WRITERS[fmt]).render
    return renderer


# --- helpers shared by the built-in formats (plain data in, plain data out) ---

#: Worst first. Hosts we could not check come before hosts that failed checks.
HOST_STATUS_RANK: dict[HostStatus, int] = {
    HostStatus.PROTOCOL_ERROR: 0,
    HostStatus.AUTH_FAILED: 1,
    HostStatus.UNREACHABLE: 2,
    HostStatus.TIMEOUT: 3,
    HostStatus.UNSUPPORTED: 4,
    HostStatus.NONCOMPLIANT: 5,
    HostStatus.COMPLIANT: 6,
}


class ReportSpecError(UserError, ValueError):
    """A `--report FORMAT:PATH` value that cannot be used."""


def parse_report_spec(spec: str) -> tuple[str, Path]:
    """`junit:out/results.xml` -> ("junit", Path("out/results.xml")); the format must be registered."""
    fmt, sep, target = spec.partition(":")
    fmt = fmt.strip().lower()
    if not sep or not target.strip():
        raise ReportSpecError(f"--report '{spec}': expected FORMAT:PATH, for example json:results.json")
    if fmt not in WRITERS:
        raise ReportSpecError(f"--report '{spec}': unknown format '{fmt}'; known: {', '.join(sorted(WRITERS))}")
    return fmt, Path(target.strip()).expanduser()


def write_atomic(path: Path, data: str | bytes | Iterable[str | bytes]) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a report.

    `data` may be the text in pieces (a report of 10,000 hosts is never held whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pieces: Iterable[str | bytes] = [data] if isinstance(data, str | bytes) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for piece in pieces:
                handle.write(piece.encode("utf-8") if isinstance(piece, str) else piece)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_ids(result: RunResult) -> list[str]:
    """Check columns in playbook order, then any id only seen in host results."""
    ids = list(result.check_ids)
    for host in result.hosts:
        for check in host.checks:
            if check.check_id not in ids:
                ids.append(check.check_id)
    return ids


def host_sort_key(host: HostResult) -> tuple[int, int, int, int, int, str]:
    """Worst first: see fleetcheck.reports.ordering (most severe failing check, then count)."""
    from fleetcheck.reports.ordering import host_sort_key as key

    return key(host)


def sorted_hosts(result: RunResult) -> list[HostResult]:
    return sorted(result.hosts, key=host_sort_key)


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 host`, `2 hosts`, `0 hosts` (irregular plurals via `many`)."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def hosts_with(result: RunResult, check_id: str, statuses: frozenset[CheckStatus]) -> list[str]:
    return [
        h.host for h in sorted_hosts(result) for c in h.checks if c.check_id == check_id and c.status in statuses
    ]


def status_counts(result: RunResult) -> Counter[HostStatus]:
    return Counter(h.status for h in result.hosts)


def summary_line(result: RunResult) -> str:
    """One line an admin reads first: host statuses, check failures, duration."""
    counts = status_counts(result)
    parts = [f"{counts[s]} {s.value}" for s in HOST_STATUS_RANK if counts[s]]
    checks = Counter(c.status for h in result.hosts for c in h.checks)
    failing = checks[CheckStatus.FAIL]
    text = plural(len(result.hosts), "host") + ": " + (", ".join(reversed(parts)) or "none")
    text += "; " + plural(failing, "failed check")
    if checks[CheckStatus.ERROR] + checks[CheckStatus.UNKNOWN]:
        text += f", {checks[CheckStatus.ERROR] + checks[CheckStatus.UNKNOWN]} not evaluable"
    waived = checks[CheckStatus.WAIVED]
    if waived:
        text += f", {waived} waived"
    if result.finished_at is not None:
        text += f"; {(result.finished_at - result.started_at).total_seconds():.1f} s"
    if result.interrupted:
        text += " (INTERRUPTED: partial results)"
    return text


def plain(value: Any) -> str:
    """Observed/expected values as short text for CSV and tables."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
