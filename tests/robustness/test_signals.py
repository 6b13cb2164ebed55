"""kill -9, SIGTERM and SIGINT in the middle of a `fleetcheck run` over the lab.

The run is a real subprocess (signals, exit path, worker threads); the lab runs here and
counts the shells that are still open. Graceful signals must leave none; kill -9 must leave
a readable journal and an intact history database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from fleetcheck.journal import read_journal
from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet

HOSTS = 8
SLOW = ",".join(f"LAB-{i:04d}:latency=0.6" for i in range(3, HOSTS + 1))
CASES = [
    ("psrp", "pypsrp", signal.SIGTERM), ("psrp", "pypsrp", signal.SIGINT), ("psrp", "pypsrp", signal.SIGKILL),
    ("winrm", "pypsrp", signal.SIGTERM), ("winrm", "pypsrp", signal.SIGINT),
    ("psrp", "native", signal.SIGTERM), ("psrp", "native", signal.SIGINT),
]


async def _run_and_signal(tmp_path: Path, transport: str, client: str, sig: signal.Signals) -> None:
    async with LabFleet(hosts=HOSTS, faults=SLOW, seed=9, addressing="ports") as fleet:
        inv = fleet.write_inventory(tmp_path / "lab.yml", transport=transport)  # type: ignore[arg-type]
        journal, history = tmp_path / "journal.jsonl", tmp_path / "history.sqlite3"
        # one finished run first, so the history holds something the signal could damage
        env = {**os.environ, PASSWORD_ENV: fleet.password, "PYTHONPATH": os.getcwd()}
        base = [sys.executable, "-m", "fleetcheck", "run", str(inv), "--timeout", "60", "--quiet",
                "--journal", str(journal), "--history", str(history), "--psrp-client", client]
        first = await asyncio.create_subprocess_exec(*base, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                     stderr=asyncio.subprocess.DEVNULL)
        assert await asyncio.wait_for(first.wait(), 120) in (0, 1, 3)
        proc = await asyncio.create_subprocess_exec(*base, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        deadline = time.monotonic() + 60
        while fleet.counters.open_shells < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert fleet.counters.open_shells >= 3, "the slow hosts never got mid-session"
        proc.send_signal(sig)
        code = await asyncio.wait_for(proc.wait(), 30)
        stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
        assert "Traceback" not in stderr, stderr
        back = read_journal(journal)
        assert back.interrupted
        with sqlite3.connect(history) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        if sig is signal.SIGKILL:
            assert code == -9
            return
        assert code in (4, 130), (code, stderr)
        end = time.monotonic() + 5
        while fleet.counters.open_shells and time.monotonic() < end:
            await asyncio.sleep(0.05)
        assert fleet.counters.open_shells == 0, f"{fleet.counters.open_shells} shells left open"


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("transport", "client", "sig"), CASES, ids=[f"{t}-{c}-{s.name}" for t, c, s in CASES])
def test_signal_mid_run(tmp_path: Path, transport: str, client: str, sig: signal.Signals) -> None:
    asyncio.run(_run_and_signal(tmp_path, transport, client, sig))


WINDOW_FAULTS = "*:latency=0.3@Create,*:latency=0.6@Receive"


async def _interrupt_in_window(tmp_path: Path, transport: str, client: str, sig: signal.Signals, delay: float) -> int:
    async with LabFleet(hosts=HOSTS, faults=WINDOW_FAULTS, seed=9, addressing="ports") as fleet:
        inv = fleet.write_inventory(tmp_path / f"lab-{delay}.yml", transport=transport)  # type: ignore[arg-type]
        env = {**os.environ, PASSWORD_ENV: fleet.password, "PYTHONPATH": os.getcwd()}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetcheck", "run", str(inv), "--timeout", "60", "--quiet", "--no-history",
            "--journal", str(tmp_path / "journal.jsonl"), "--psrp-client", client,
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while fleet.counters.open_shells < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.sleep(delay)  # Creates, Commands, Receives and first closes in flight
        proc.send_signal(sig)
        assert await asyncio.wait_for(proc.wait(), 30) in (4, 130)
        end = time.monotonic() + 5
        while fleet.counters.open_shells and time.monotonic() < end:
            await asyncio.sleep(0.05)
        return int(fleet.counters.open_shells)


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("transport", "client"), [("winrm", "pypsrp"), ("psrp", "pypsrp"), ("psrp", "native")])
def test_graceful_interrupt_closes_every_shell_whenever_it_comes(tmp_path: Path, transport: str, client: str) -> None:
    left = [
        asyncio.run(_interrupt_in_window(tmp_path, transport, client, sig, delay))
        for sig, delay in ((signal.SIGTERM, 0.12), (signal.SIGINT, 0.26), (signal.SIGTERM, 0.29))
    ]
    assert left == [0, 0, 0]
