"""Two nights of `fleetcheck run` as cron runs it (a subprocess) against the lab, then `fleetcheck diff`.

Checks the CLI wiring of the nightly features: the terminal summary comes first, the HTML and
Prometheus files are written, the mail arrives, overlapping runs are refused.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from test_mail import Sink, plain_smtp  # noqa: F401  (fixture)

from fleetcheck.history import run_lock
from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet


async def _fleetcheck(*args: str, password: str, cwd: Path) -> tuple[int, str, str]:
    """(exit code, stdout, stderr)."""
    env = os.environ | {PASSWORD_ENV: password, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetcheck", *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return await proc.wait(), out.decode(), err.decode()


async def _night(
    tmp: Path, night: int, mix: dict[str, int], seed: int, faults: str, port: int, *extra: str
) -> tuple[int, str, dict[str, str]]:
    async with LabFleet(hosts=4, mix=mix, seed=seed, faults=faults) as fleet:
        inv = fleet.write_inventory(tmp / "lab.yml", transport="winrm")  # the same file every night, as in cron
        code, out, _ = await _fleetcheck(
            "run", str(inv), "--timeout", "20", "--history", str(tmp / "h.sqlite3"),
            "--report", f"html:{tmp / 'report.html'}", "--report", f"prometheus:{tmp / 'fleetcheck.prom'}",
            "--mail-to", "ops@example.test", "--smtp", f"127.0.0.1:{port}", *extra,
            password=fleet.password, cwd=tmp,
        )
        return code, out, {name: h.scenario for name, h in fleet.hosts.items()}


async def test_two_cli_nights_then_diff(tmp_path: Path, plain_smtp: tuple[Sink, int]) -> None:  # noqa: F811
    sink, port = plain_smtp
    code1, out1, scen1 = await _night(tmp_path, 1, {"healthy-2019": 2, "wsb-missing": 2}, 0, "", port)
    assert code1 == 1, out1
    assert out1.startswith("First recorded run"), out1
    code2, out2, scen2 = await _night(tmp_path, 2, {"healthy-2019": 2, "wsb-missing": 2}, 5, "", port)
    assert code2 == 1, out2
    moved_in = sorted(h for h in scen2 if scen2[h] == "wsb-missing" and scen1[h] != "wsb-missing")
    moved_out = sorted(h for h in scen2 if scen1[h] == "wsb-missing" and scen2[h] != "wsb-missing")
    stayed = sorted(h for h in scen2 if scen1[h] == scen2[h] == "wsb-missing")
    assert moved_in and moved_out, (scen1, scen2)  # the scenario really changed between the nights

    first = out2.splitlines()[0]
    assert first.startswith("Since "), out2
    n_new, n_fixed, n_still = 2 * len(moved_in), 2 * len(moved_out), 2 * len(stayed)  # wsb-feature + wsb-cmdlets
    counts = f"{n_new} new failure{'s' if n_new != 1 else ''}, {n_fixed} fixed, {n_still} still failing"
    assert counts in first, out2
    for host in moved_in:
        assert f"  {host}  wsb-feature  fail" in out2
    for host in moved_out:
        assert f"  {host}  wsb-feature  now pass" in out2

    code, diff, _ = await _fleetcheck("diff", "--history", str(tmp_path / "h.sqlite3"), password="", cwd=tmp_path)
    assert code == 0 and diff.splitlines()[0] == first
    code, listing, _ = await _fleetcheck("diff", "--list", "--history", str(tmp_path / "h.sqlite3"), password="", cwd=tmp_path)
    assert code == 0 and len(listing.strip().splitlines()) == 2

    html = (tmp_path / "report.html").read_text()
    assert f'id="n-new">{n_new}<' in html and f'id="n-fixed">{n_fixed}<' in html
    assert ',check="wsb-feature"} 2\n' in (tmp_path / "fleetcheck.prom").read_text()
    assert len(sink.messages) == 2 and counts in sink.messages[1]["Subject"]


async def test_overlapping_cli_run_is_refused(tmp_path: Path) -> None:
    async with LabFleet(hosts=1) as fleet:
        inv = fleet.write_inventory(tmp_path / "lab.yml", transport="winrm")
        with run_lock(tmp_path / "h.sqlite3"):  # another run is going
            code, out, err = await _fleetcheck(
                "run", str(inv), "--history", str(tmp_path / "h.sqlite3"), password=fleet.password, cwd=tmp_path
            )
    assert code != 0
    assert f"another fleetcheck run is using {tmp_path / 'h.sqlite3'} (held by PID {os.getpid()}" in err
    assert "Traceback" not in out + err


async def test_quiet_cron_night_still_logs_what_changed(tmp_path: Path, plain_smtp: tuple[Sink, int]) -> None:  # noqa: F811
    """Under cron (`--quiet`) the log keeps the change counts line, then the one-line summary, no table."""
    _, port = plain_smtp
    mix = {"healthy-2019": 2, "wsb-missing": 2}
    await _night(tmp_path, 1, mix, 0, "", port, "--quiet")
    code, out, _ = await _night(tmp_path, 2, mix, 5, "", port, "--quiet")
    assert code == 1, out
    lines = out.strip().splitlines()
    assert lines[0].startswith("Since ") and "new failure" in lines[0] and "fixed" in lines[0], out
    assert len(lines) == 2, out  # counts line + the summary line: no per-host table or lists in cron logs
