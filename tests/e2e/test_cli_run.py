"""`fleetcheck run` as a user runs it (a subprocess) against a lab fleet: reports, exit codes, Ctrl-C."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from fleetcheck.journal import read_journal
from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet

MIX = {"healthy-2019": 2, "wsb-missing": 1, "mars-stopped": 1}


async def _fleetcheck(
    *args: str, password: str, cwd: Path, interrupt_after: set[str] | None = None
) -> tuple[int, str]:
    """Run the CLI without blocking the lab's event loop; SIGINT once every `interrupt_after` name was printed."""
    env = os.environ | {PASSWORD_ENV: password, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetcheck", *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    out: list[str] = []
    sent = False
    while line := await asyncio.wait_for(proc.stdout.readline(), 60):
        out.append(line.decode())
        if interrupt_after and not sent and all(name in "".join(out) for name in interrupt_after):
            proc.send_signal(signal.SIGINT)
            sent = True
    return await asyncio.wait_for(proc.wait(), 30), "".join(out)


async def test_run_writes_reports_and_exit_code(tmp_path: Path) -> None:
    async with LabFleet(hosts=5, mix=MIX, seed=2, faults="LAB-0005:refuse") as fleet:
        inv = fleet.write_inventory(tmp_path / "lab.yml")
        code, out = await _fleetcheck(
            "run", str(inv), "--timeout", "30", "--no-history",
            "--report", f"json:{tmp_path / 'r.json'}", "--report", f"csv:{tmp_path / 'r.csv'}",
            "--report", f"junit:{tmp_path / 'r.xml'}", "--journal", str(tmp_path / "j.jsonl"),
            password=fleet.password, cwd=tmp_path,
        )
        scenario = {name: h.scenario for name, h in fleet.hosts.items()}
    assert code == 3, out  # LAB-0005 unreachable beats the failed checks
    assert fleet.password not in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["schema"] == "fleetcheck/report/v1"
    status = {h["host"]: h["status"] for h in doc["hosts"]}
    assert status["LAB-0005"] == "unreachable"
    for name, scen in scenario.items():
        if name == "LAB-0005":
            continue
        assert status[name] == ("compliant" if scen.startswith("healthy") else "noncompliant"), (name, scen)
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert rows and {r["host"] for r in rows} >= {n for n in scenario if n != "LAB-0005"}
    suites = ET.parse(tmp_path / "r.xml").getroot().findall(".//testsuite")
    assert len(suites) == 5
    assert len(read_journal(tmp_path / "j.jsonl").hosts) == 5


async def test_ctrl_c_keeps_finished_hosts(tmp_path: Path) -> None:
    slow = ",".join(f"LAB-{i:04d}:latency=0.3" for i in range(4, 7))
    async with LabFleet(hosts=6, seed=2, faults=slow) as fleet:
        inv = fleet.write_inventory(tmp_path / "lab.yml")
        journal = tmp_path / "j.jsonl"
        code, out = await _fleetcheck(
            "run", str(inv), "--forks", "6", "--no-history", "--report", f"json:{tmp_path / 'r.json'}", "--journal", str(journal),
            password=fleet.password, cwd=tmp_path, interrupt_after={"LAB-0001", "LAB-0002", "LAB-0003"},
        )
        await asyncio.sleep(0.5)
        open_after = fleet.counters.open_shells
    assert code == 4, out
    back = read_journal(journal)
    assert back.interrupted
    done = {h.host for h in back.hosts}
    assert {"LAB-0001", "LAB-0002", "LAB-0003"} <= done
    assert not done & {"LAB-0004", "LAB-0005", "LAB-0006"}
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["interrupted"] is True
    assert {h["host"] for h in doc["hosts"]} == done
    assert open_after == 0
