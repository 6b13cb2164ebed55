"""`fleetcheck run` in a real pseudo-terminal (pty) and in a pipe, against the lab on loopback.

The progress display names what it waits for ("waiting for 1 host: LAB-0004 (3 s of 8)") and
counts hosts by class; the non-TTY log does the same at a bounded rate; `--ask-pass` prompts on
the terminal, and without one it is a usage error (exit 2) instead of a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import sys
from pathlib import Path

import pytest

from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet

pytestmark = pytest.mark.slow
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
HANG = "LAB-0004:hang@Receive"
TIMEOUT = "8"


def _env(password: str | None, columns: int = 120) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env |= {"COLUMNS": str(columns), "TERM": "xterm-256color", "PYTHONUNBUFFERED": "1"}
    if password is not None:
        env[PASSWORD_ENV] = password
    return env


async def _in_pty(argv: list[str], env: dict[str, str], cwd: Path, answer: tuple[str, str] | None = None,
                  timeout: float = 90) -> tuple[int, str]:
    """Run `argv` with stdin/stdout/stderr on a new pty; optionally type `answer[1]` once `answer[0]` shows."""
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, start_new_session=True
    )
    os.close(slave)
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    closed = asyncio.Event()
    answered = answer is None

    def readable() -> None:
        nonlocal answered
        try:
            data = os.read(master, 65536)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(master)
            closed.set()
            return
        chunks.append(data)
        if not answered and answer is not None and answer[0] in b"".join(chunks).decode(errors="replace"):
            os.write(master, answer[1].encode() + b"\r")
            answered = True

    loop.add_reader(master, readable)
    try:
        code = await asyncio.wait_for(proc.wait(), timeout)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), 5)
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(master)
        os.close(master)
        if proc.returncode is None:
            proc.kill()
    return code, ANSI.sub("", b"".join(chunks).decode(errors="replace"))


async def test_progress_in_a_terminal_names_the_host_it_waits_for(tmp_path: Path) -> None:
    async with LabFleet(hosts=4, faults=HANG) as fleet:
        inv = fleet.write_inventory(tmp_path / "lab.yml", transport="winrm")
        code, out = await _in_pty(
            [sys.executable, "-m", "fleetcheck", "run", str(inv), "--timeout", TIMEOUT, "--no-history",
             "--journal", str(tmp_path / "j.jsonl")],
            _env(fleet.password), tmp_path,
        )
    assert code == 3, out  # one host timed out
    waits = re.findall(r"waiting for 1 host: LAB-0004 \((\d+) s of 8\)", out)
    assert waits, out
    assert len({int(w) for w in waits}) >= 2  # the time counts up while it waits
    assert re.search(r"3 compliant · 0 noncompliant · 0 could not check", out), out
    assert "LAB-0004" in out.split("Host")[-1]  # the table follows, with the timed-out host


async def test_progress_in_a_log_is_rate_limited(tmp_path: Path) -> None:
    async with LabFleet(hosts=4, faults=HANG) as fleet:
        inv = fleet.write_inventory(tmp_path / "lab.yml", transport="winrm")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetcheck", "run", str(inv), "--timeout", "12", "--no-history",
            "--journal", str(tmp_path / "j.jsonl"),
            cwd=tmp_path, env=_env(fleet.password), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 90)
    log = err.decode()
    waiting = [line for line in log.splitlines() if "waiting for 1 host: LAB-0004" in line]
    assert 1 <= len(waiting) <= 2, log  # 12 s of waiting, one line per 10 s at most
    assert re.search(r"\(\d+ s of 12\)", waiting[0]), log
    assert "[3/4]" in log


async def test_ask_pass_prompts_on_the_terminal_and_needs_one(tmp_path: Path) -> None:
    async with LabFleet(hosts=2) as fleet:
        inv = fleet.write_inventory(tmp_path / "lab.yml", transport="winrm")
        argv = [sys.executable, "-m", "fleetcheck", "run", str(inv), "--ask-pass", "--no-history",
                "--journal", str(tmp_path / "j.jsonl"), "--timeout", "20"]
        code, out = await _in_pty(argv, _env(None), tmp_path, answer=("Password for", fleet.password))
        assert code == 0, out
        assert out.count("Password for") == 1 and fleet.password not in out
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=tmp_path, env=_env(None), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _o, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, err.decode()
    assert "--ask-pass needs a terminal" in err.decode()
