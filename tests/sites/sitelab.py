"""Test infrastructure for multi-site runs: a real redis-server, lab fleets as sites, workers.

Lab fleets serve from one background event loop in the test process; each Celery worker is
a separate `python -m fleetcheck worker` process with the lab password in its environment.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet

REPO = Path(__file__).resolve().parents[2]
#: The password every lab host and site worker uses; it must never reach Redis.
SENTINEL = "Sentinel-7f3a9c-Passw0rd!"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """`redis-server` on a loopback port, without persistence; restartable on the same port."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        assert exe is not None
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


class Monitor:
    """Every command Redis receives (`redis-cli MONITOR`), to scan for secrets."""

    def __init__(self, redis: RedisServer, path: Path) -> None:
        self.path = path
        self.out = path.open("wb")
        cli = shutil.which("redis-cli") or "redis-cli"
        self.proc = subprocess.Popen([cli, "-p", str(redis.port), "monitor"], stdout=self.out)
        time.sleep(0.3)

    def stop(self) -> str:
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(5)
        self.out.close()
        return self.path.read_text(encoding="utf-8", errors="replace")


def decoded_payloads(text: str) -> list[str]:
    """The base64 bodies of Celery messages as seen by MONITOR, decoded."""
    found = []
    for blob in re.findall(r"[A-Za-z0-9+/]{40,}={0,2}", text):
        try:
            found.append(base64.b64decode(blob + "=" * (-len(blob) % 4)).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            continue
    return found


class Sites:
    """Lab fleets keyed by site, served from one background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fleets: dict[str, LabFleet] = {}

    def add(self, site: str, hosts: int, **kw: Any) -> LabFleet:
        fleet = LabFleet(hosts, addressing="ports", password=SENTINEL, seed=len(self.fleets), **kw)
        self.fleets[site] = asyncio.run_coroutine_threadsafe(fleet.start(), self.loop).result(30)
        return fleet

    def inventory(self, path: Path, sites: Iterable[str], *, timeout: float = 20.0) -> Path:
        """One native inventory of the given sites' fleets; hosts named SITE-LAB-000N."""
        hosts: dict[str, Any] = {}
        top: dict[str, Any] = {}
        for site in sites:
            data = yaml.safe_load(self.fleets[site].write_inventory(path.with_name(f"{path.stem}-{site}.yml")).read_text())
            top = data["vars"]
            for name, entry in data["hosts"].items():
                hosts[f"{site}-{name}"] = {**entry, "site": site}
        path.write_text(yaml.safe_dump({"vars": {**top, "timeout": timeout}, "hosts": hosts}), encoding="utf-8")
        return path

    def close(self) -> None:
        for fleet in self.fleets.values():
            asyncio.run_coroutine_threadsafe(fleet.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Worker:
    """`fleetcheck worker` as its own process."""

    def __init__(self, site: str, broker: str, log: Path, *, forks: int = 4, redeliver_after: float = 600) -> None:
        self.site = site
        self.log = log
        env = {**os.environ, PASSWORD_ENV: SENTINEL, "PYTHONPATH": str(REPO)}
        self.err = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetcheck", "worker", "--site", site, "--broker", broker,
             "--forks", str(forks), "--redeliver-after", str(redeliver_after), "--loglevel", "INFO"],
            env=env, stdout=subprocess.DEVNULL, stderr=self.err, cwd=REPO,
        )

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def wait_ready(self, timeout: float = 30) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker for {self.site} exited: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"worker for {self.site} not ready in {timeout} s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.err.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.err.close()
