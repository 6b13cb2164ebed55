"""`json` report: the full `RunResult` as the documented `fleetcheck/report/v1` schema.

Hosts come in the terminal table's order (worst first), and a `summary` block sits before them
so a script reads the counts without walking every host. Readers of v1 that do not know
`summary` ignore it; `load` does too (the counts are derived data).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import weakref
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from pydantic_core import to_json

from fleetcheck.errors import UserError
from fleetcheck.reports import sanitize
from fleetcheck.reports.base import ReportContext, write_atomic
from fleetcheck.reports.ordering import FAILING_STATUSES, check_severities, severity_rank, sorted_hosts
from fleetcheck.results import (
    REPORT_SCHEMA,
    UNCHECKED_STATUSES,
    CheckStatus,
    HostResult,
    HostStatus,
    RunResult,
)

MAX_RESULTS_BYTES = 200 * 1024 * 1024

log = logging.getLogger(__name__)


class ResultsFileError(UserError, ValueError):
    """A saved results file that cannot be read back."""


def summary(result: RunResult) -> dict[str, Any]:
    """Counts a dashboard or a CI step reads first."""
    statuses = Counter(h.status for h in result.hosts)
    checks = Counter(c.status for h in result.hosts for c in h.checks)
    failing: Counter[str] = Counter(
        c.check_id for h in result.hosts for c in h.checks if c.status in FAILING_STATUSES
    )
    severities = check_severities(result)
    duration = (result.finished_at - result.started_at).total_seconds() if result.finished_at else None
    return {
        "hosts": len(result.hosts),
        "by_status": {s.value: statuses.get(s, 0) for s in HostStatus},
        "compliant": statuses.get(HostStatus.COMPLIANT, 0),
        "noncompliant": statuses.get(HostStatus.NONCOMPLIANT, 0),
        "unchecked": sum(statuses.get(s, 0) for s in UNCHECKED_STATUSES),
        "failed_checks": checks.get(CheckStatus.FAIL, 0),
        "not_evaluable": checks.get(CheckStatus.ERROR, 0) + checks.get(CheckStatus.UNKNOWN, 0),
        "warnings": checks.get(CheckStatus.WARN, 0),
        "waived": checks.get(CheckStatus.WAIVED, 0),
        "failing_checks": [
            {"check_id": cid, "severity": severities.get(cid, "medium"), "hosts": count}
            for cid, count in sorted(
                failing.items(), key=lambda kv: (-severity_rank(severities.get(kv[0], "medium")), -kv[1], kv[0])
            )
        ],
        "duration_s": duration,
        "interrupted": result.interrupted,
    }


def render(result: RunResult, context: ReportContext | None = None) -> str:
    return "".join(p if isinstance(p, str) else p.decode("utf-8") for p in render_pieces(result))


def _host_text(host: HostResult) -> str:
    """One host as the report nests it (two levels down)."""
    return host.model_dump_json(indent=2).replace("\n", "\n    ")


class HostSpool:
    """Each host's report text, rendered as its row is recorded, in an anonymous temporary file.

    A run spends most of its time waiting on the network; rendering every host's JSON after the
    last one (0.13 s for 1,000 hosts, measured; ten times the hosts, ten times the text) made
    every nightly run wait for it. Only rows the run recorded clean (`sanitize.note_row`) are
    rendered early, so the text is the one the report boundary would render; any other row
    (hostile text, a waiver's copy) is rendered at the end.
    Memory stays bounded: the texts are on disk, read back one host at a time. A spool that
    cannot be written (a full disk) is dropped and the report is rendered at the end as before.
    """

    def __init__(self) -> None:
        # lives for the whole run, closed by close()
        self._file: IO[bytes] | None = tempfile.TemporaryFile(prefix="fleetcheck-report-")  # noqa: SIM115
        self._at: dict[int, tuple[weakref.ref[HostResult], int, int]] = {}
        self._end = 0

    def add(self, host: HostResult) -> None:
        if self._file is None or not sanitize.row_known_clean(host):
            return
        try:
            data = _host_text(host).encode("utf-8")
            self._file.write(data)
        except (OSError, ValueError) as exc:
            log.warning("report text for %s kept for the end (%s)", host.host, exc)
            self.close()
            return
        self._at[id(host)] = (weakref.ref(host), self._end, len(data))
        self._end += len(data)

    def text(self, host: HostResult) -> bytes | None:
        """The host's rendered text, or None when it was not rendered early or the spool failed."""
        entry = self._at.get(id(host))
        if entry is None or entry[0]() is not host or self._file is None:
            return None
        try:
            self._file.flush()
            data = os.pread(self._file.fileno(), entry[2], entry[1])
        except (OSError, ValueError):
            return None
        return data if len(data) == entry[2] else None

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._file = None
        self._at.clear()


def render_pieces(result: RunResult, spool: HostSpool | None = None) -> Iterator[str | bytes]:
    """The report's text, a host at a time: the document without `hosts`, then each host.

    pydantic-core's encoder writes the same text as json.dumps(indent=2, ensure_ascii=False),
    in Rust (json's C encoder does not do indentation; the Python one costs ~0.5 ms a host),
    and no tree of the whole fleet's dicts is built: 10,000 hosts are ~120 MB of JSON text.
    """
    document: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude={"hosts"})
    document["summary"] = summary(result)
    head = to_json(document, indent=2).decode("utf-8")
    hosts = sorted_hosts(result)
    if not hosts:
        yield head[:-2] + ',\n  "hosts": []\n}\n'
        return
    yield head[:-2] + ',\n  "hosts": [\n'
    for index, host in enumerate(hosts):
        yield "    " if index == 0 else ",\n    "
        early = spool.text(host) if spool is not None else None
        yield early if early is not None else _host_text(host)
    yield "\n  ]\n}\n"


def write(result: RunResult, path: Path, context: ReportContext) -> None:
    spool = context.prerendered if isinstance(context.prerendered, HostSpool) else None
    write_atomic(path, render_pieces(result, spool))


def load(path: Path) -> RunResult:
    """Read a `json` report back (for `fleetcheck report`); errors name the file and the field."""
    try:
        with path.open("rb") as fh:  # bounded even where stat() says 0 (/dev/zero, a pipe)
            data = fh.read(MAX_RESULTS_BYTES + 1)
        if len(data) > MAX_RESULTS_BYTES:
            raise ResultsFileError(f"{path}: larger than {MAX_RESULTS_BYTES} bytes")
        text = data.decode("utf-8")
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path}: not UTF-8 text; expected a fleetcheck json report") from None
    try:
        result = RunResult.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "document"
        raise ResultsFileError(
            f"{path}: not a fleetcheck json report ({where}: {err['msg']}); write one with --report json:PATH"
        ) from None
    if result.schema_ != REPORT_SCHEMA:
        raise ResultsFileError(f"{path}: schema '{result.schema_}' is not supported (expected {REPORT_SCHEMA})")
    return result
