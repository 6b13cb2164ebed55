"""Regenerate the README screenshots from real lab runs: `python docs/screenshots.py`.

Two nights of a 120-host simulated fleet (fleetcheck lab on loopback) are checked with the
default playbook through `fleetcheck.api.run` and recorded in a temporary history; the second night's terminal table is
rendered at 80 and 160 columns (SVG, as a terminal shows it, plus the plain text), and its HTML
report is opened in headless Chromium for a PNG of the top of the page. Everything lands in
docs/screenshots/. Needs the test extras (playwright) and Chromium (`/usr/bin/chromium`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

OUT = Path(__file__).resolve().parent / "screenshots"
HOSTS = 120
MIX = {
    "healthy-2019": 92,
    "wsb-missing": 5,
    "mars-stopped": 4,
    "dotnet-old": 4,
    "scratch-low": 5,
    "svi-acl-missing": 4,
    "services-misconfigured": 3,
    "legacy-ps2": 3,
}
#: The second night: two hosts refuse connections, one rejects the credentials, one hangs.
TONIGHT_FAULTS = "LAB-0007:refuse,LAB-0042:refuse,LAB-0050:http401,LAB-0090:hang"


async def _serve_and_run(tmp: Path, faults: str) -> Any:
    """One night: a lab fleet on loopback, checked through the library API (history + HTML report)."""
    from fleetcheck import api
    from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet

    async with LabFleet(hosts=HOSTS, mix=MIX, seed=11, faults=faults or None) as fleet:
        inv = fleet.write_inventory(tmp / "lab.yml", transport="winrm")
        os.environ[PASSWORD_ENV] = fleet.password
        options = api.RunOptions(
            forks=60, timeout=8, history=tmp / "history.sqlite3", journal=tmp / "journal.jsonl",
            reports=[api.ReportSpec("html", tmp / "report.html")], handle_sigterm=False,
        )
        # api.run drives its own event loop: run it in a thread while this loop serves the lab.
        return await asyncio.to_thread(api.run, inv, [], options)


def _terminal(text: str, width: int, name: str) -> None:
    console = Console(record=True, width=width, file=open("/dev/null", "w"), color_system="truecolor")  # noqa: SIM115
    console.print(Text(text), soft_wrap=False, crop=False)
    console.save_svg(str(OUT / f"{name}.svg"), title=f"fleetcheck run lab.yml  ({width} columns)")
    (OUT / f"{name}.txt").write_text(text, encoding="utf-8")
    widest = max(len(line) for line in text.splitlines())
    print(f"{name}: {len(text.splitlines())} lines, widest {widest} of {width} columns")


def _html_png(html: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.goto(html.as_uri())
        page.wait_for_selector("#matrix tbody tr")
        page.screenshot(path=str(OUT / "report.png"), full_page=False)
        page.locator("#matrix-section").screenshot(path=str(OUT / "report-matrix.png"))
        browser.close()
    print(f"report.png, report-matrix.png from {html.stat().st_size / 1e3:.0f} kB of HTML")


def main() -> int:
    from fleetcheck.reports.table import TableOptions, render_table

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fleetcheck-shots-") as name:
        tmp = Path(name)
        asyncio.run(_serve_and_run(tmp, ""))
        outcome = asyncio.run(_serve_and_run(tmp, TONIGHT_FAULTS))
        for width in (80, 160):
            _terminal(render_table(outcome.run, TableOptions(width=width)), width, f"terminal-{width}")
        _html_png(tmp / "report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
