"""The nightly HTML report: one self-contained page (inline CSS, JS and SVG; no network).

It is opened from mail attachments and intranet shares, so nothing may be fetched. The view
model (`build_view`) is plain data and testable; jinja2 (autoescape on: host names and
messages are untrusted) only lays it out.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from fleetcheck.reports.base import ReportContext
from fleetcheck.results import FAILING, UNCHECKED_STATUSES, CheckStatus, HostStatus, RunResult

TEMPLATE_DIR = Path(__file__).with_name("templates")
OBSERVED_MAX_CHARS = 240
CHANGE_LIST_MAX = 100

#: Sort rank of statuses (worse is higher) for the matrix's column sort.
CHECK_RANK = {
    "": 0,
    CheckStatus.PASS: 1,
    CheckStatus.SKIP: 2,
    CheckStatus.WAIVED: 3,
    CheckStatus.WARN: 4,
    CheckStatus.UNKNOWN: 5,
    CheckStatus.ERROR: 6,
    CheckStatus.FAIL: 7,
}
HOST_RANK = {
    HostStatus.COMPLIANT: 0,
    HostStatus.NONCOMPLIANT: 5,
    HostStatus.UNSUPPORTED: 1,
    HostStatus.UNREACHABLE: 4,
    HostStatus.AUTH_FAILED: 4,
    HostStatus.TIMEOUT: 3,
    HostStatus.PROTOCOL_ERROR: 3,
}


@dataclass
class Cell:
    status: str  # check status value, or "" when the check did not run on this host
    label: str
    title: str
    rank: int


@dataclass
class DetailRow:
    check_id: str
    status: str
    message: str
    observed: str
    expected: str
    remediation: str
    waiver: str


@dataclass
class Row:
    index: int
    host: str
    address: str
    groups: str
    status: str
    status_rank: int
    message: str
    failing: list[str]
    cells: list[Cell]
    unchecked: bool = False
    waived: bool = False
    details: list[DetailRow] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)


@dataclass
class Bar:
    check_id: str
    failing: int
    waived: int
    y: int
    width: float
    waived_width: float


@dataclass
class TrendView:
    points: str  # SVG polyline points for compliant hosts
    total_points: str  # SVG polyline points for all hosts
    dots: list[dict[str, Any]]
    y_max: int
    first_label: str
    last_label: str


def _short(value: Any, limit: int = OBSERVED_MAX_CHARS) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_ids(run: RunResult) -> list[str]:
    ids = list(dict.fromkeys(run.check_ids))
    seen = set(ids)
    for host in run.hosts:
        for check in host.checks:
            if check.check_id not in seen:
                seen.add(check.check_id)
                ids.append(check.check_id)
    return ids


def _row(index: int, host: Any, check_ids: list[str]) -> Row:
    by_id = {c.check_id: c for c in host.checks}
    cells = []
    for cid in check_ids:
        c = by_id.get(cid)
        if c is None:
            cells.append(Cell("", "—", f"{cid}: not evaluated", 0))
        else:
            title = "" if c.status == CheckStatus.PASS else f"{cid}: {c.message}"
            cells.append(Cell(c.status.value, c.status.value.upper(), title, CHECK_RANK[c.status]))
    # Passing checks are listed by id only: that keeps 1,000 hosts around a few megabytes.
    details = [
        DetailRow(
            c.check_id,
            c.status.value,
            c.message,
            _short(c.observed),
            _short(c.expected),
            c.remediation if c.status not in (CheckStatus.PASS, CheckStatus.SKIP) else "",
            c.waiver or "",
        )
        for c in host.checks
        if c.status != CheckStatus.PASS
    ]
    return Row(
        index=index,
        host=host.host,
        address=host.address,
        groups=", ".join(host.groups),
        status=host.status.value,
        status_rank=HOST_RANK.get(host.status, 2),
        message=host.message,
        failing=[c.check_id for c in host.checks if c.status in FAILING],
        cells=cells,
        unchecked=host.status in UNCHECKED_STATUSES,
        waived=any(c.status == CheckStatus.WAIVED for c in host.checks),
        details=details,
        passed=[c.check_id for c in host.checks if c.status == CheckStatus.PASS],
    )


def _bars(run: RunResult, check_ids: list[str]) -> list[Bar]:
    failing: Counter[str] = Counter()
    waived: Counter[str] = Counter()
    for host in run.hosts:
        for c in host.checks:
            if c.status in FAILING:
                failing[c.check_id] += 1
            elif c.status == CheckStatus.WAIVED:
                waived[c.check_id] += 1
    order = sorted(check_ids, key=lambda cid: (-failing[cid], -waived[cid], cid))
    top = max([failing[c] + waived[c] for c in check_ids] + [1])
    scale = 300 / top
    return [
        Bar(cid, failing[cid], waived[cid], i * 22, failing[cid] * scale, waived[cid] * scale)
        for i, cid in enumerate(order)
    ]


def _trend(points: list[Any] | None) -> TrendView | None:
    if not points:
        return None
    y_max = max(max(getattr(p, "hosts", 0) for p in points), 1)
    width, height = 600, 160
    step = width / max(len(points) - 1, 1)

    def xy(i: int, v: int) -> tuple[float, float]:
        return round(i * step, 1), round(height - v * height / y_max, 1)

    comp = [xy(i, p.compliant) for i, p in enumerate(points)]
    total = [xy(i, p.hosts) for i, p in enumerate(points)]
    dots = [
        {
            "x": x,
            "y": y,
            "title": f"{p.started_at:%Y-%m-%d %H:%M}: {p.compliant}/{p.hosts} compliant ({p.run_id})",
        }
        for (x, y), p in zip(comp, points, strict=True)
    ]
    return TrendView(
        points=" ".join(f"{x},{y}" for x, y in comp),
        total_points=" ".join(f"{x},{y}" for x, y in total),
        dots=dots,
        y_max=y_max,
        first_label=f"{points[0].started_at:%Y-%m-%d}",
        last_label=f"{points[-1].started_at:%Y-%m-%d}",
    )


def build_view(run: RunResult, ctx: ReportContext | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain data."""
    ctx = ctx or ReportContext()
    check_ids = _check_ids(run)
    rows = [_row(i, h, check_ids) for i, h in enumerate(run.hosts)]
    statuses = Counter(h.status.value for h in run.hosts)
    counts = run.counts()
    duration = (run.finished_at - run.started_at).total_seconds() if run.finished_at else None
    bars = _bars(run, check_ids)
    return {
        "run": run,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "started": run.started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "duration": f"{duration:.0f} s" if duration is not None else "",
        "check_ids": check_ids,
        "failing_check_ids": [b.check_id for b in bars if b.failing],
        "rows": rows,
        "anchors": {r.host: f"h{r.index}" for r in rows},
        "host_count": len(run.hosts),
        "host_statuses": sorted(statuses.items(), key=lambda kv: -HOST_RANK.get(HostStatus(kv[0]), 2)),
        "compliant": counts["compliant"],
        "unchecked": counts["unchecked"],
        "waived": counts["waived_checks"],
        "failing_checks": counts["failing_checks"],
        "bars": [b for b in bars if b.failing or b.waived],
        "passing_checks": [b.check_id for b in bars if not (b.failing or b.waived)],
        "trend": _trend(ctx.trend),
        "changes": ctx.changes,
        "change_max": CHANGE_LIST_MAX,
        "fixes": ctx.fixes or {},
    }


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render(run: RunResult, ctx: ReportContext | None = None) -> str:
    """The whole page as one string."""
    return _environment().get_template("report.html.j2").render(**build_view(run, ctx))


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(run: RunResult, path: Path, ctx: ReportContext) -> None:
    """Report writer for `--report html:PATH`."""
    atomic_write_text(Path(path), render(run, ctx))
