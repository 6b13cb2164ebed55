"""`fleetcheck lab serve` as a real subprocess: one ready line, counters on SIGUSR1, clean SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from fleetcheck.lab.fleet import PASSWORD_ENV


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    return subprocess.Popen(
        [sys.executable, "-m", "fleetcheck.lab", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_serve_prints_one_ready_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    inv = tmp_path / "lab-run" / "lab.yml"
    counters = tmp_path / "counters.json"
    proc = _serve(
        tmp_path,
        "--hosts", "3", "--ssh", "--addressing", "ports", "--mix", "healthy=1",
        "--inventory-out", str(inv), "--counters-out", str(counters), "--faults", "LAB-0002:latency=0.01",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("lab ready: 3 hosts (+ssh)"), line + (
            proc.stderr.read() if proc.stderr else ""
        )
        assert f"inventory {inv}" in line and f"${PASSWORD_ENV}" in line
        data = yaml.safe_load(inv.read_text())
        assert sorted(data["hosts"]) == ["LAB-0001", "LAB-0002", "LAB-0003"]
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not counters.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert json.loads(counters.read_text())["hosts"] == 3
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert time.monotonic() - started < 5
        assert out == "" and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_rejects_bad_fault_spec_without_traceback(tmp_path: Path) -> None:
    proc = _serve(tmp_path, "--hosts", "2", "--inventory-out", "x.yml", "--faults", "LAB-0001:explode")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "unknown kind 'explode'" in err and "Traceback" not in err
    assert not (tmp_path / "x.yml").exists()


def test_scenarios_lists_the_default_scenario() -> None:
    from typer.testing import CliRunner

    from fleetcheck.lab.cli import lab_app

    result = CliRunner().invoke(lab_app, ["scenarios"])
    assert result.exit_code == 0
    assert "healthy-2019" in result.output.split()


def test_serve_exits_non_zero_when_a_worker_dies(tmp_path: Path) -> None:
    counters = tmp_path / "counters.json"
    proc = _serve(
        tmp_path, "--hosts", "2", "--workers", "2", "--addressing", "ports",
        "--inventory-out", str(tmp_path / "lab.yml"), "--counters-out", str(counters),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("lab ready: 2 hosts")
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not counters.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        worker_pids = json.loads(counters.read_text())["pids"]
        assert len(worker_pids) == 2 and proc.pid not in worker_pids
        os.kill(worker_pids[1], signal.SIGKILL)
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 1
        assert "worker process died" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
