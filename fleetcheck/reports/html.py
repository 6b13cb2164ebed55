"""The nightly HTML report: one self-contained page (inline CSS, JS and SVG; no network).

It is opened from mail attachments and intranet shares, so nothing may be fetched. The view
model (`build_view`) is plain data and testable; jinja2 (autoescape on: host names and
messages are untrusted) lays out the summary, changes and charts.

The host matrix and the host details are not HTML in the file: they are one compact JSON
document (`matrix_data`: a status letter per cell, details only for checks that did not pass)
that the page's script renders a page of rows at a time, and a host's details when opened.
That keeps a 1,000-host page well under a megabyte and quick to open; the JSON is escaped so
no host name or message can close the script element.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from fleetcheck.reports.base import ReportContext
from fleetcheck.reports.ordering import (
    SEVERITY_LETTER,
    check_severities,
    check_titles,
    severity_rank,
    sorted_hosts,
    worst_severity,
)
from fleetcheck.results import FAILING, CheckStatus, HostResult, HostStatus, RunResult

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
#: One letter per cell in the page's data ("-": the check did not run on this host).
CELL_CODE = {
    CheckStatus.PASS: "p",
    CheckStatus.FAIL: "f",
    CheckStatus.ERROR: "e",
    CheckStatus.WARN: "w",
    CheckStatus.UNKNOWN: "u",
    CheckStatus.SKIP: "s",
    CheckStatus.WAIVED: "v",
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
class Bar:
    check_id: str
    failing: int
    waived: int
    y: int
    width: float
    waived_width: float


@dataclass
class CheckTrend:
    """Failing hosts of one check over the recorded runs, as a sparkline."""

    check_id: str
    title: str
    severity: str
    now: int
    points: str
    title_text: str


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


def _host_entry(host: HostResult, check_ids: list[str]) -> list[Any]:
    """[name, address, groups, status, message, worst severity rank or -1, failing, cells, waived, details]."""
    by_id = {c.check_id: c for c in host.checks}
    index = {cid: i for i, cid in enumerate(check_ids)}
    cells = "".join(CELL_CODE[by_id[cid].status] if cid in by_id else "-" for cid in check_ids)
    bad = [c for c in host.checks if c.status in FAILING]
    worst = worst_severity(bad)
    # Passing checks carry nothing but their letter: that keeps 1,000 hosts well under a megabyte.
    details = [
        [
            index[c.check_id],
            c.message,
            _short(c.observed),
            _short(c.expected),
            c.remediation if c.status not in (CheckStatus.PASS, CheckStatus.SKIP) else "",
            c.waiver or "",
        ]
        for c in host.checks
        if c.status != CheckStatus.PASS
    ]
    return [
        host.host,
        host.address,
        ", ".join(host.groups),
        host.status.value,
        host.message,
        severity_rank(worst) if worst else -1,
        len(bad),
        cells,
        1 if any(c.status == CheckStatus.WAIVED for c in host.checks) else 0,
        details,
    ]


def matrix_data(run: RunResult, check_ids: list[str], hosts: list[HostResult]) -> dict[str, Any]:
    """The document the page's script renders the matrix, details and CSV from."""
    severities = check_severities(run)
    titles = check_titles(check_ids)
    return {
        "run_id": run.run_id,
        "checks": [[cid, titles[cid], severities.get(cid, "medium")] for cid in check_ids],
        "status_rank": {s.value: HOST_RANK.get(s, 2) for s in HostStatus},
        "hosts": [_host_entry(h, check_ids) for h in hosts],
    }


def _script_json(data: Any) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' can end the element or start a comment."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _check_trends(ctx: ReportContext, check_ids: list[str], run: RunResult) -> list[CheckTrend]:
    """One sparkline per check that failed somewhere in the recorded runs (most severe first)."""
    per_run: dict[str, dict[str, int]] = getattr(ctx, "check_trend", None) or {}
    points = ctx.trend or []
    if not per_run or len(points) < 2:
        return []
    severities = check_severities(run)
    titles = check_titles(check_ids)
    width, height = 160, 24
    out = []
    for cid in check_ids:
        series = [per_run.get(p.run_id, {}).get(cid, 0) for p in points]
        if not any(series):
            continue
        top = max(series)
        step = width / (len(series) - 1)
        coords = " ".join(f"{round(i * step, 1)},{round(height - v * height / top, 1)}" for i, v in enumerate(series))
        text = "; ".join(f"{p.started_at:%m-%d}: {v}" for p, v in zip(points, series, strict=True))
        out.append(CheckTrend(cid, titles[cid], severities.get(cid, "medium"), series[-1], coords, text))
    return sorted(out, key=lambda t: (-severity_rank(t.severity), -t.now, t.check_id))


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
    # Runs of one day would label both ends with the same date: add the time then.
    same_day = points[0].started_at.date() == points[-1].started_at.date()
    label = "%Y-%m-%d %H:%M" if same_day else "%Y-%m-%d"
    return TrendView(
        points=" ".join(f"{x},{y}" for x, y in comp),
        total_points=" ".join(f"{x},{y}" for x, y in total),
        dots=dots,
        y_max=y_max,
        first_label=points[0].started_at.strftime(label),
        last_label=points[-1].started_at.strftime(label),
    )


def build_view(run: RunResult, ctx: ReportContext | None = None) -> dict[str, Any]:
    """Everything the template shows, as plain data."""
    ctx = ctx or ReportContext()
    check_ids = _check_ids(run)
    hosts = sorted_hosts(run)
    data = matrix_data(run, check_ids, hosts)
    data["fixes"] = {h.host: (ctx.fixes or {})[h.host] for h in hosts if (ctx.fixes or {}).get(h.host)}
    severities = check_severities(run)
    titles = check_titles(check_ids)
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
        "checks": [
            {"id": cid, "title": titles[cid], "severity": severities.get(cid, "medium"),
             "letter": SEVERITY_LETTER.get(severities.get(cid, "medium"), "M")}
            for cid in check_ids
        ],
        "failing_check_ids": [b.check_id for b in bars if b.failing],
        "titles": titles,
        "data": data,
        "data_json": _script_json(data),
        "anchors": {h.host: f"h{i}" for i, h in enumerate(hosts)},
        "host_count": len(run.hosts),
        "host_statuses": sorted(statuses.items(), key=lambda kv: -HOST_RANK.get(HostStatus(kv[0]), 2)),
        "compliant": counts["compliant"],
        "unchecked": counts["unchecked"],
        "waived": counts["waived_checks"],
        "failing_checks": counts["failing_checks"],
        "bars": [b for b in bars if b.failing or b.waived],
        "passing_checks": [b.check_id for b in bars if not (b.failing or b.waived)],
        "trend": _trend(ctx.trend),
        "check_trends": _check_trends(ctx, check_ids, run),
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
