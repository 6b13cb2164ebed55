"""The HTML report in a real headless Chromium (Debian's package, driven by Playwright).

The 300-host page comes from a real lab run (runner + LabFleet); the previous night is that
run with a few results changed, so the changes section has content. Set
FLEETCHECK_DOCS_SCREENSHOT=docs/img/report.png to refresh the README screenshot.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fleetgen import make_run

from fleetcheck import nightly
from fleetcheck.history import History
from fleetcheck.reports.base import ReportContext, get_writer
from fleetcheck.results import CheckStatus, HostStatus, RunResult

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (CI installs it)"),
]
FAILING = {CheckStatus.FAIL, CheckStatus.ERROR}
MIX = {
    "healthy-2019": 236,
    "wsb-missing": 15,
    "mars-stopped": 10,
    "dotnet-old": 10,
    "scratch-low": 10,
    "svi-acl-missing": 8,
    "vss-writer-failed": 5,
    "services-misconfigured": 4,
    "legacy-ps2": 2,
}


async def _lab_run(tmp: Path) -> RunResult:
    from fleetcheck.inventory.loader import load_credentials, load_inventory
    from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet
    from fleetcheck.playbook import load_playbook
    from fleetcheck.runner import RunOptions, run_fleet

    async with LabFleet(hosts=300, mix=MIX, seed=3, faults="LAB-0007:refuse,LAB-0100:refuse") as fleet:
        inv = fleet.write_inventory(tmp / "lab300.yml", transport="winrm")
        hosts = load_credentials(load_inventory(inv).hosts, environ={PASSWORD_ENV: fleet.password})
        options = RunOptions(forks=50, timeout=60, retries=0, inventory=str(inv))
        return await run_fleet(hosts, [load_playbook("system-state-backup")], options)


def _previous_night(run: RunResult) -> RunResult:
    """Last night: three of tonight's failing hosts were fine, one fixed host still failed."""
    failing = [h for h in run.hosts if h.status == HostStatus.NONCOMPLIANT]
    compliant = [h for h in run.hosts if h.status == HostStatus.COMPLIANT]
    hosts = []
    for h in run.hosts:
        if h in failing[:3]:
            checks = [c.model_copy(update={"status": CheckStatus.PASS}) if c.status in FAILING else c for c in h.checks]
            h = h.model_copy(update={"checks": checks, "status": HostStatus.COMPLIANT})
        elif h is compliant[0]:
            checks = [c.model_copy(update={"status": CheckStatus.FAIL}) if i == 0 else c for i, c in enumerate(h.checks)]
            h = h.model_copy(update={"checks": checks, "status": HostStatus.NONCOMPLIANT})
        hosts.append(h)
    start = run.started_at - timedelta(days=1)
    return run.model_copy(update={"hosts": hosts, "run_id": "last-night", "started_at": start, "finished_at": start})


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    tmp = tmp_path_factory.mktemp("browser")
    run = asyncio.run(_lab_run(tmp))
    assert len(run.hosts) == 300
    opts = nightly.NightlyOptions(history_path=tmp / "history.sqlite3")
    nightly.finish_run(_previous_night(run), opts)
    outcome = nightly.finish_run(run, opts)
    path = tmp / "report.html"
    get_writer("html")(outcome.run, path, outcome.context)
    return outcome.run, path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            b.close()


def _open(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on(
        "request",
        lambda req: None if req.url.startswith(("file:", "data:", "blob:")) else problems.append(f"network: {req.url}"),
    )
    page.goto(path.as_uri())
    return page, problems


def _visible_hosts(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#matrix tbody tr:not(.hidden)", "rows => rows.map(r => r.getAttribute('data-host'))"
    )


@pytest.mark.slow  # a real 300-host lab run (~20 s)
def test_filter_sort_and_screenshot(report: tuple[RunResult, Path], browser: Any, tmp_path: Path) -> None:
    run, path = report
    failing = Counter(c.check_id for h in run.hosts for c in h.checks if c.status in FAILING)
    check, count = failing.most_common(1)[0]
    expected = sorted(h.host for h in run.hosts if any(c.check_id == check and c.status in FAILING for c in h.checks))
    assert count == len(expected) >= 10

    page, problems = _open(browser, path)
    assert page.text_content("#shown") == "Showing 300 of 300 hosts"
    # last night three of tonight's noncompliant hosts were fine, and one host failed a check it passes now
    tonight_failing = [h for h in run.hosts if h.status == HostStatus.NONCOMPLIANT][:3]
    new = sum(1 for h in tonight_failing for c in h.checks if c.status in FAILING)
    assert page.text_content("#n-new") == str(new)
    assert page.text_content("#n-fixed") == "1"

    page.select_option("#f-check", check)
    assert page.text_content("#shown") == f"Showing {len(expected)} of 300 hosts"
    assert sorted(_visible_hosts(page)) == expected
    column = run.check_ids.index(check) + 5  # 1-based nth-child: host, sev, status, failing, then checks
    labels = page.eval_on_selector_all(
        f"#matrix tbody tr:not(.hidden) td:nth-child({column})", "cells => cells.map(c => c.textContent)"
    )
    assert set(labels) <= {"FAIL", "ERROR"} and len(labels) == len(expected)

    host_header = page.locator("#matrix thead th[data-key=host]")
    host_header.click()
    assert _visible_hosts(page) == expected
    assert host_header.get_attribute("aria-sort") == "ascending"
    host_header.click()
    assert _visible_hosts(page) == expected[::-1]

    page.locator("#matrix thead th[data-key=failing]").click()  # most failures first
    counts = page.eval_on_selector_all(
        "#matrix tbody tr:not(.hidden) td:nth-child(4)", "cells => cells.map(c => Number(c.textContent))"
    )
    assert counts == sorted(counts, reverse=True) and counts[0] >= 1

    page.fill("#f-text", expected[0].lower())
    assert _visible_hosts(page) == [expected[0]]
    shot = tmp_path / "report-filtered.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    assert problems == []
    page.close()


@pytest.mark.slow
def test_bar_click_filters_and_details_open(report: tuple[RunResult, Path], browser: Any) -> None:
    run, path = report
    page, problems = _open(browser, path)
    bar = page.locator("#bars g[data-filter-check]").first
    check = bar.get_attribute("data-filter-check")
    bar.click()
    assert page.input_value("#f-check") == check
    failing = {h.host for h in run.hosts if any(c.check_id == check and c.status in FAILING for c in h.checks)}
    assert set(_visible_hosts(page)) == failing
    first = _visible_hosts(page)[0]
    page.locator("#matrix tbody tr:not(.hidden) td.host a").first.click()
    detail = page.locator("details.host[open]")
    detail.wait_for()
    assert first in (detail.locator("summary").text_content() or "")
    page.evaluate("window.dispatchEvent(new Event('beforeprint'))")  # printing opens every failing host
    with_failures = sum(1 for h in run.hosts if any(c.status in FAILING for c in h.checks))
    assert page.locator("details.host[open]").count() == with_failures
    page.close()
    assert problems == []


def test_docs_screenshot(browser: Any, tmp_path: Path) -> None:
    """A page with a month of trend (synthetic history) for the README, written on request.

    Without FLEETCHECK_DOCS_SCREENSHOT it checks a shorter history (5 nights) to stay fast.
    """
    target = os.environ.get("FLEETCHECK_DOCS_SCREENSHOT")
    nights = 30 if target else 5
    opts = nightly.NightlyOptions(history_path=tmp_path / "h.sqlite3")
    with History(tmp_path / "h.sqlite3") as history:  # 29 earlier nights, recorded directly (fast)
        for day in range(nights - 1):
            history.record(make_run(300, seed=5, day=day, flip_rate=0.0015))
    outcome = nightly.finish_run(make_run(300, seed=5, day=nights - 1, flip_rate=0.0015), opts)
    path = tmp_path / "month.html"
    get_writer("html")(outcome.run, path, outcome.context)
    page, problems = _open(browser, path)
    page.set_viewport_size({"width": 1400, "height": 1500})
    assert page.locator("#trend circle").count() == nights
    out = Path(target) if target else tmp_path / "report.png"
    top_of_matrix = page.locator("#matrix-section").bounding_box()
    assert top_of_matrix is not None
    page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1400, "height": min(1500, top_of_matrix["y"])})
    assert out.stat().st_size > 10_000
    page.select_option("#f-check", "wsb-feature")
    page.locator("#matrix thead th[data-key=failing]").click()
    page.locator("#matrix-section").scroll_into_view_if_needed()
    matrix = out.with_name(out.stem + "-matrix.png")
    page.locator("#matrix-section").screenshot(path=str(matrix))
    assert matrix.stat().st_size > 10_000 and problems == []
    page.close()


def _rows(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(
        "#matrix tbody tr",
        """rows => rows.map(r => ({host: r.getAttribute('data-host'), status: r.getAttribute('data-status'),
                                   sev: r.cells[1].textContent, failing: Number(r.cells[3].textContent)}))""",
    )


def test_thousand_hosts_small_fast_sorted_filtered_and_downloadable(browser: Any, tmp_path: Path) -> None:
    """1,000 hosts: < 1 MB, usable < 1 s; worst first, severity filter, cell tooltips, CSV download."""
    from fleetcheck.reports.ordering import FAILING_STATUSES, severity_rank, sorted_hosts, worst_severity

    run = make_run(1000, seed=9)
    # a host failing one critical check must sort above hosts failing more, less severe checks
    crit = next(h for h in run.hosts if h.status == HostStatus.NONCOMPLIANT)
    crit.checks[0] = crit.checks[0].model_copy(
        update={"status": CheckStatus.FAIL, "severity": "critical", "message": "Windows Server Backup is not installed"}
    )
    for c in crit.checks[1:]:
        c.status = CheckStatus.PASS
    path = tmp_path / "big.html"
    started = time.perf_counter()
    get_writer("html")(run, path, ReportContext())
    render_s = time.perf_counter() - started
    size_mb = path.stat().st_size / 1e6

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # "Usable" is the page's own clock: the report's script renders the matrix inline, so the load
    # event marks the first page of rows on screen. Playwright's round trips are not the reader's
    # wait, and on a CI runner shared with another test worker one load can stall; best of three.
    usable_ms: list[float] = []
    for _ in range(3):
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_selector("#matrix tbody tr")
        usable_ms.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
        if usable_ms[-1] < 1000:
            break
    print(f"1000 hosts: {size_mb:.3f} MB, render {render_s:.2f} s, usable after {[round(t) for t in usable_ms]} ms")
    assert size_mb < 1.0 and min(usable_ms) < 1000, (size_mb, usable_ms)

    # worst first: the page's order is the terminal table's order
    expected = [h.host for h in sorted_hosts(run)]
    assert page.text_content("#shown") == "Showing 1000 of 1000 hosts"
    first_page = _rows(page)
    assert [r["host"] for r in first_page] == expected[:100]  # paginated: 100 rows per page
    unchecked = sum(1 for h in run.hosts if h.status not in (HostStatus.COMPLIANT, HostStatus.NONCOMPLIANT))
    assert first_page[unchecked]["host"] == crit.host and first_page[unchecked]["sev"] == "C"
    page.click("#next")
    assert [r["host"] for r in _rows(page)] == expected[100:200]

    # severity filter
    page.select_option("#f-sev", "3")  # high or worse
    want = [h.host for h in sorted_hosts(run)
            if severity_rank(worst_severity(c for c in h.checks if c.status in FAILING_STATUSES) or "info") >= 3
            and any(c.status in FAILING_STATUSES for c in h.checks)]
    assert page.text_content("#shown") == f"Showing {len(want)} of 1000 hosts"
    assert [r["host"] for r in _rows(page)] == want[:100]
    assert {r["sev"] for r in _rows(page)} <= {"C", "H"}

    # tooltip of a failing cell carries the check id and the finding; header carries the title
    cell = page.locator(f"#matrix tbody tr[data-host='{crit.host}'] td.s-fail").first
    assert cell.get_attribute("title") == f"{crit.checks[0].check_id}: fail - Windows Server Backup is not installed"
    header = page.locator(f"#matrix thead th[data-check='{crit.checks[0].check_id}']")
    assert "Windows Server Backup feature installed" in (header.text_content() or "")

    # CSV download of the filtered hosts, straight from the page
    with page.expect_download() as info:
        page.click("#csv")
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8-sig"))))
    assert sorted({r["host"] for r in rows}) == sorted(want)
    crit_row = next(r for r in rows if r["host"] == crit.host and r["check_status"] == "fail")
    assert crit_row["severity"] == "critical" and crit_row["message"] == "Windows Server Backup is not installed"

    # sort + filter stay quick
    started = time.perf_counter()
    page.select_option("#f-sev", "")
    page.locator("#matrix thead th[data-key=failing]").click()
    page.select_option("#f-status", "noncompliant")
    interact_s = time.perf_counter() - started
    noncompliant = sum(1 for h in run.hosts if h.status == HostStatus.NONCOMPLIANT)
    assert page.text_content("#shown") == f"Showing {noncompliant} of 1000 hosts"
    counts = [r["failing"] for r in _rows(page)]
    assert counts == sorted(counts, reverse=True)
    print(f"1000 hosts: sort+filter {interact_s:.2f} s")
    assert interact_s < 2 and problems == []
    page.close()
