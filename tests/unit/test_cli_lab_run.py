"""`fleetcheck run` end to end through the CLI against the loopback lab (real clients, three transports)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fleetcheck.cli import app
from fleetcheck.lab.demo import BackgroundLab

PASSWORD = "Cli-Run-Test-Pw-1"
PASSWORD_ENV = "FC_CLI_RUN_PW"


@pytest.fixture
def lab() -> Iterator[Any]:
    from fleetcheck.lab.fleet import LabFleet

    fleet = LabFleet(
        5, https=True, ssh=True, password=PASSWORD, faults="LAB-0004:refuse,LAB-0005:hang@Receive"
    )
    background = BackgroundLab(fleet)
    background.start()
    try:
        yield fleet
    finally:
        background.stop()


def write_inventory(fleet: Any, tmp_path: Path, *, wrong_password_host: str | None = None) -> Path:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(fleet.ca_pem)
    h = fleet.hosts
    hosts: dict[str, Any] = {
        "LAB-0001": {"address": h["LAB-0001"].address, "port": h["LAB-0001"].http_port},
        "LAB-0002": {
            "address": h["LAB-0002"].address, "port": h["LAB-0002"].https_port, "transport": "winrm",
            "scheme": "https", "ca_path": str(ca),
        },
        "LAB-0003": {
            "address": h["LAB-0003"].address, "port": h["LAB-0003"].ssh_port, "transport": "ssh",
            "ssh_known_hosts": "accept",
        },
        "LAB-0004": {"address": h["LAB-0004"].address, "port": h["LAB-0004"].http_port},
        "LAB-0005": {"address": h["LAB-0005"].address, "port": h["LAB-0005"].http_port},
    }
    if wrong_password_host:
        hosts[wrong_password_host]["password_env"] = "FC_CLI_RUN_WRONG"
    doc = {
        "vars": {"transport": "psrp", "scheme": "http", "username": fleet.username, "password_env": PASSWORD_ENV},
        "groups": {"lab": {"hosts": hosts}},
    }
    path = tmp_path / "lab.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def test_run_mixed_transports_table_reports_exit_code_and_evaluate(lab: Any, tmp_path: Path) -> None:
    inventory = write_inventory(lab, tmp_path, wrong_password_host="LAB-0001")
    out = tmp_path / "out"
    env = {PASSWORD_ENV: PASSWORD, "FC_CLI_RUN_WRONG": "not-the-password"}
    started = time.monotonic()
    result = CliRunner().invoke(
        app,
        [
            "run", str(inventory), "--no-history", "--timeout", "8",
            "--report", f"json:{out / 'r.json'}", "--report", f"csv:{out / 'r.csv'}",
            "--report", f"junit:{out / 'r.xml'}", "--report", f"markdown:{out / 'r.md'}",
            "--save-facts", str(out / "facts"), "--journal", str(out / "journal.jsonl"),
        ],
        env=env,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 3, result.output
    assert elapsed < 8 + 22  # the hung host costs its deadline (8 s), not pypsrp's retries (minutes)
    statuses = {h["host"]: h["status"] for h in json.loads((out / "r.json").read_text())["hosts"]}
    assert statuses == {
        "LAB-0001": "auth_failed",
        "LAB-0002": statuses["LAB-0002"],
        "LAB-0003": statuses["LAB-0003"],
        "LAB-0004": "unreachable",
        "LAB-0005": "timeout",
    }
    assert statuses["LAB-0002"] in ("compliant", "noncompliant") and statuses["LAB-0003"] in ("compliant", "noncompliant")
    assert PASSWORD not in result.output and "not-the-password" not in result.output
    for name in ("r.json", "r.csv", "r.xml", "r.md", "journal.jsonl"):
        assert PASSWORD not in (out / name).read_text()
    # the table: worst first, one row per host, then the summary line
    rows = [line.split()[0] for line in result.output.splitlines() if line.startswith("LAB-")]
    assert rows[:3] == ["LAB-0001", "LAB-0004", "LAB-0005"] and sorted(rows[3:]) == ["LAB-0002", "LAB-0003"]
    # the summary line closes the output; on an 80-column terminal it may continue on indented lines
    tail = result.output.splitlines()
    summary_at = max(i for i, line in enumerate(tail) if line.startswith("5 hosts:"))
    assert all(line.startswith("  ") for line in tail[summary_at + 1 :])
    junit = ET.parse(out / "r.xml").getroot()
    assert {s.get("name") for s in junit} == set(statuses)
    refused = next(s for s in junit if s.get("name") == "LAB-0004")
    assert refused.find("testcase/error") is not None
    csv_hosts = {line.split(",")[1] for line in (out / "r.csv").read_text().splitlines()[1:]}
    assert csv_hosts == set(statuses)
    # the journal renders like a report (what an interrupted run would leave behind)
    journal = CliRunner().invoke(app, ["report", str(out / "journal.jsonl"), "--format", "table", "--view", "summary"])
    assert journal.exit_code == 0 and journal.output.startswith("5 hosts:"), journal.output
    # saved facts re-evaluate offline to the same verdicts
    assert sorted(p.stem for p in (out / "facts").glob("*.json")) == ["LAB-0002", "LAB-0003"]
    again = CliRunner().invoke(app, ["evaluate", str(out / "facts"), "--report", f"json:{out / 'e.json'}"])
    assert again.exit_code in (0, 1), again.output
    re_statuses = {h["host"]: h["status"] for h in json.loads((out / "e.json").read_text())["hosts"]}
    assert re_statuses == {k: statuses[k] for k in ("LAB-0002", "LAB-0003")}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_writes_reports_for_finished_hosts_and_exits_4(lab: Any, tmp_path: Path, signum: int) -> None:
    inventory = write_inventory(lab, tmp_path)
    report = tmp_path / "r.json"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "fleetcheck", "run", str(inventory), "--no-history", "--timeout", "60",
            "--limit", "!LAB-0004", "--report", f"json:{report}",
        ],  # no --journal: the default one lives under XDG_STATE_HOME
        env={**os.environ, PASSWORD_ENV: PASSWORD, "XDG_STATE_HOME": str(tmp_path / "state")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        finished = 0
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while finished < 3 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "] LAB-" in line:
                finished += 1
        assert finished == 3  # everything but the hung LAB-0005
        t0 = time.monotonic()
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=20)
        stop_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 4, stderr
    assert stop_s < 12  # not the hung host's 60 s deadline
    assert "Traceback" not in stderr and "interrupted; 3 of 4 hosts finished" in stderr
    doc = json.loads(report.read_text())
    assert doc["interrupted"] is True
    assert sorted(h["host"] for h in doc["hosts"]) == ["LAB-0001", "LAB-0002", "LAB-0003"]
    assert "INTERRUPTED" in stdout
    journal = tmp_path / "state" / "fleetcheck" / "journal.jsonl"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sorted(r["result"]["host"] for r in records if r["record"] == "host") == ["LAB-0001", "LAB-0002", "LAB-0003"]
