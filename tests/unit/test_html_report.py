"""HTML report: self-contained, escaped, and showing changes, bars, trend and details."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from test_changes import NIGHT1, NIGHT2
from test_history import make_run

from fleetcheck.changes import compute_changes
from fleetcheck.history import History
from fleetcheck.reports.base import ReportContext, get_writer
from fleetcheck.reports.html import build_view, render, write
from fleetcheck.results import CheckStatus

P, F = CheckStatus.PASS, CheckStatus.FAIL
EVIL = '<script>alert("x")</script>'


def test_untrusted_text_is_escaped() -> None:
    run = make_run("r<1>", 0, {EVIL: {"a": F}, "web1": {"a": P}})
    run.hosts[0].checks[0].message = '<img src=x onerror="alert(1)">'
    html = render(run, ReportContext())
    assert EVIL not in html and "<img src=x" not in html
    assert html.count("<script") == 2  # our own script and its JSON data, nothing from the run
    assert html.count("</script>") == 2
    data = _data(html)
    assert data["hosts"][0][0] == EVIL and data["hosts"][0][9][0][1] == '<img src=x onerror="alert(1)">'



def test_self_contained_no_network() -> None:
    html = render(NIGHT2, ReportContext(changes=compute_changes(NIGHT1, NIGHT2)))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "url(" not in html and "@import" not in html
    assert "default-src 'none'" in html  # CSP forbids fetching anything
    assert "<style>" in html and "<svg" in html


def test_changes_section_lists_what_changed() -> None:
    since = {("web1", "a"): datetime(2026, 10, 30, 2, 0, tzinfo=UTC)}
    html = render(NIGHT2, ReportContext(changes=compute_changes(NIGHT1, NIGHT2, since)))
    assert re.search(r'id="n-new">3<', html) and re.search(r'id="n-fixed">2<', html)
    assert re.search(r'id="n-still">1<', html)
    new = html.split('id="new-failures"')[1].split("</ul>")[0]
    assert [m for m in re.findall(r">(\w+)</a> · <code>(\w+)</code>", new)] == [("new1", "a"), ("web1", "b"), ("web3", "b")]
    still = html.split('id="still-failing"')[1].split("</ul>")[0]
    assert "failing since 2026-10-30" in still
    assert 'id="unreachable"' in html and 'id="disappeared"' in html


def test_first_run_and_no_history_messages() -> None:
    assert "first recorded run" in render(NIGHT1, ReportContext(changes=compute_changes(None, NIGHT1)))
    assert "No history" in render(NIGHT1, ReportContext())


def _data(html: str) -> dict:
    """The page's JSON document, read back the way the browser reads it."""
    body = html.split('<script type="application/json" id="fleet-data">')[1].split("</script>")[0]
    assert "<" not in body  # nothing in it can end the element
    return json.loads(body)


def test_bars_sorted_by_failures_and_matrix_data_worst_first() -> None:
    view = build_view(NIGHT1)
    assert [(b.check_id, b.failing) for b in view["bars"]] == [("a", 3), ("b", 2)]
    hosts = {h[0]: h for h in view["data"]["hosts"]}
    assert hosts["web2"][7] == "ff"  # a status letter per check
    assert hosts["dead1"][7] == "--" and hosts["dead1"][3] == "unreachable"
    order = [h[0] for h in view["data"]["hosts"]]
    assert order.index("dead1") < order.index("web2")  # could not check first, then failures
    assert [c[0] for c in view["data"]["checks"]] == ["a", "b"]


def test_trend_from_history(tmp_path: Path) -> None:
    with History(tmp_path / "h.sqlite3") as h:
        for day in range(4):
            h.record(make_run(f"d{day}", day, {"w1": {"a": F if day % 2 else P}, "w2": {"a": P}}))
        html = render(h.get("d3"), ReportContext(trend=h.trend(30)))
    svg = html.split('<svg id="trend"')[1].split("</svg>")[0]
    assert svg.count("<circle") == 4
    assert "2026-11-04 02:00: 1/2 compliant (d3)" in svg
    points = re.search(r'class="compliant" points="([^"]+)"', svg)
    assert points is not None
    ys = [float(p.split(",")[1]) for p in points.group(1).split()]
    assert ys == [0.0, 80.0, 0.0, 80.0]  # 2, 1, 2, 1 compliant of 2 hosts on a 160 px axis


def test_details_show_observed_and_remediation() -> None:
    data = _data(render(NIGHT1, ReportContext()))
    web2 = next(h for h in data["hosts"] if h[0] == "web2")
    _check, _message, observed, expected, remediation, _waiver = web2[9][0]
    assert remediation == "free some space" and expected == ">= 10"
    assert json.loads(observed)["free_pct"] == 3.5


def test_per_check_trend_from_history(tmp_path: Path) -> None:
    from fleetcheck import nightly

    with History(tmp_path / "h.sqlite3") as h:
        for day in range(4):
            h.record(make_run(f"d{day}", day, {"w1": {"a": F if day % 2 else P, "b": F}, "w2": {"a": F if day == 3 else P}}))
        ctx = nightly.build_report_context(h, h.get("d3"))
        html = render(h.get("d3"), ctx)
    assert ctx.check_trend == {"d0": {"b": 1}, "d1": {"a": 1, "b": 1}, "d2": {"b": 1}, "d3": {"a": 2, "b": 1}}
    section = html.split('<section id="check-trends">')[1].split("</section>")[0]
    assert 'data-check="a"' in section and "11-01: 0; 11-02: 1; 11-03: 0; 11-04: 2" in section


def test_writer_registered_and_writes_file(tmp_path: Path) -> None:
    assert get_writer("html") is write
    target = tmp_path / "out" / "report.html"
    write(NIGHT2, target, ReportContext())
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
