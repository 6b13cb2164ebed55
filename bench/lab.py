"""The benchmark's handle on a lab running in its own process (`bench.labproc`)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.measure import system_cpu_seconds, tree_cpu_seconds, tree_rss_mb
from bench.peers import Target

REPO = Path(__file__).resolve().parents[1]
LAB_PASSWORD_ENV = "FLEETCHECK_LAB_PASSWORD"
DEFAULT_LAB_PASSWORD = "Lab-Passw0rd!"


def bench_env() -> dict[str, str]:
    """Environment of every process the bench starts: this tree's code first, the lab password."""
    env = dict(os.environ)
    env.setdefault(LAB_PASSWORD_ENV, DEFAULT_LAB_PASSWORD)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class LabSnapshot:
    """What the lab had seen and spent at one moment."""

    requests: int  # every HTTP request, auth round trips included
    sessions: int  # shells opened
    peak_open_shells: int
    cpu_s: float
    actions: int = 0  # WSMan requests
    by_action: dict[str, int] = field(default_factory=dict)
    delays: int = 0  # how many times the lab's latency fault fired
    system_cpu_s: float = 0.0  # the whole machine's busy CPU seconds so far

    def __add__(self, other: LabSnapshot) -> LabSnapshot:
        merged = dict(self.by_action)
        for verb, n in other.by_action.items():
            merged[verb] = merged.get(verb, 0) + n
        return LabSnapshot(
            self.requests + other.requests,
            self.sessions + other.sessions,
            self.peak_open_shells + other.peak_open_shells,  # an upper bound across processes
            self.cpu_s + other.cpu_s,
            self.actions + other.actions,
            merged,
            self.delays + other.delays,
            max(self.system_cpu_s, other.system_cpu_s),
        )


class LabProcess:
    """Start, query and stop one lab fleet process (and its workers)."""

    def __init__(
        self,
        hosts: int,
        work: Path,
        *,
        latency_ms: float = 0.0,
        faults: str = "",
        workers: int | None = None,
        start_timeout: float = 180.0,
        tag: str = "",
    ) -> None:
        self.hosts = hosts
        self.tag = tag or str(hosts)
        self.work = work
        self.latency_ms = latency_ms
        self.faults = faults
        self.workers = workers
        self.start_timeout = start_timeout
        self.inventory = work / f"lab-{self.tag}.yml"
        self.proc: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}
        self.start_s = 0.0

    def env(self) -> dict[str, str]:
        return bench_env()

    def start(self) -> LabProcess:
        self.work.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "bench.labproc",
            "--hosts",
            str(self.hosts),
            "--inventory-out",
            str(self.inventory),
            "--latency-ms",
            str(self.latency_ms),
        ]
        if self.faults:
            argv += ["--faults", self.faults]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=self.env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=(self.work / f"lab-{self.tag}.err").open("w"),
            text=True,
            bufsize=1,
        )
        line = self._read_line(self.start_timeout)
        if not line.startswith("READY "):
            self.stop()
            err = (self.work / f"lab-{self.tag}.err").read_text()[-3000:]
            raise RuntimeError(f"lab did not start: {line!r}\n{err}")
        self.ready = json.loads(line[len("READY ") :])
        self.start_s = time.perf_counter() - t0
        return self

    def _read_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ""
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    return ""
                if line.startswith(("READY ", "COUNTERS ", "ERROR ", "BYE")):
                    return line.strip()

    def snapshot(self) -> LabSnapshot:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write("counters\n")
        self.proc.stdin.flush()
        line = self._read_line(30.0)
        if not line.startswith("COUNTERS "):
            raise RuntimeError(f"lab gave no counters: {line!r}")
        data = json.loads(line[len("COUNTERS ") :])
        return LabSnapshot(
            requests=int(data.get("requests", 0)),
            sessions=int(data.get("sessions", 0)),
            peak_open_shells=int(data.get("peak_open_shells", 0)),
            cpu_s=tree_cpu_seconds(self.proc.pid),
            actions=int(data.get("actions", 0)),
            by_action=dict(data.get("by_action", {})),
            delays=int(data.get("delays", 0)),
            system_cpu_s=system_cpu_seconds(),
        )

    def rss_mb(self) -> float:
        return tree_rss_mb(self.proc.pid) if self.proc else 0.0

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            if self.proc.stdin is not None and self.proc.poll() is None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LabProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LabCluster:
    """Several lab processes, each an in-process `LabFleet` serving a slice of the hosts.

    One process per core lets the lab use the whole machine like `LabFleet(workers=N)`
    does, and keeps every `LabHost` inside a process we talk to, so the counters include
    the WSMan actions the lab delays. The slices' inventories are merged into one, with
    host names renumbered across the fleet.
    """

    def __init__(self, hosts: int, work: Path, *, processes: int, latency_ms: float = 0.0, faults: str = "") -> None:
        self.hosts = hosts
        self.work = work
        per = -(-hosts // max(1, processes))
        sizes = [min(per, hosts - i * per) for i in range(processes) if hosts - i * per > 0]
        self.parts = [
            LabProcess(n, work, latency_ms=latency_ms, faults=faults, workers=1, tag=f"{hosts}-part{i}")
            for i, n in enumerate(sizes)
        ]
        self.inventory = work / f"lab-{hosts}.yml"
        self.start_s = 0.0
        self.ready: dict[str, Any] = {}

    def env(self) -> dict[str, str]:
        return self.parts[0].env()

    def start(self) -> LabCluster:
        t0 = time.perf_counter()
        try:
            for part in self.parts:  # one after another: each takes the next free addresses
                part.start()
        except BaseException:
            self.stop()
            raise
        self.start_s = time.perf_counter() - t0
        self.ready = {"pid": [p.ready.get("pid") for p in self.parts], "workers": len(self.parts)}
        merged: dict[str, Any] = {}
        hosts: dict[str, Any] = {}
        for part in self.parts:
            doc, part_hosts = inventory_hosts(part.inventory)
            if not merged:
                merged = {k: v for k, v in doc.items() if k not in ("hosts", "groups")}
            top = doc.get("vars") or {}
            for settings in part_hosts.values():
                name = f"LAB-{len(hosts) + 1:04d}"
                hosts[name] = {k: v for k, v in settings.items() if top.get(k, object()) != v}
        merged["hosts"] = hosts
        self.inventory.write_text(yaml.safe_dump(merged, sort_keys=False))
        return self

    def snapshot(self) -> LabSnapshot:
        snaps = [p.snapshot() for p in self.parts]
        total = snaps[0]
        for snap in snaps[1:]:
            total = total + snap
        return total

    def rss_mb(self) -> float:
        return sum(p.rss_mb() for p in self.parts)

    def stop(self) -> None:
        for part in self.parts:
            part.stop()

    def __enter__(self) -> LabCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _flatten(node: dict[str, Any], inherited: dict[str, Any], out: dict[str, dict[str, Any]]) -> None:
    merged = {**inherited, **(node.get("vars") or {})}
    for name, host in (node.get("hosts") or {}).items():
        out[name] = {**merged, **(host or {})}
    for child in (node.get("groups") or {}).values():
        _flatten(child or {}, merged, out)


def inventory_hosts(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(top-level document, every host with its effective settings) of a native inventory."""
    doc = yaml.safe_load(path.read_text())
    hosts: dict[str, dict[str, Any]] = {}
    _flatten(doc, {}, hosts)
    return doc, hosts


def write_subset(path: Path, source: Path, count: int) -> Path:
    """A native inventory with the first `count` hosts of `source`, settings resolved."""
    doc, hosts = inventory_hosts(source)
    names = list(hosts)[:count]
    if len(names) < count:
        raise ValueError(f"{source} has only {len(names)} hosts, {count} asked")
    top_vars = dict(doc.get("vars") or {})
    subset: dict[str, Any] = {}
    for key in ("playbooks",):
        if key in doc:
            subset[key] = doc[key]
    subset["vars"] = top_vars
    subset["hosts"] = {n: {k: v for k, v in hosts[n].items() if top_vars.get(k, object()) != v} for n in names}
    path.write_text(yaml.safe_dump(subset, sort_keys=False))
    return path


def targets_from_inventory(path: Path, count: int | None = None) -> list[Target]:
    """Lab hosts as the peers need them (address, port, scheme, user)."""
    _, hosts = inventory_hosts(path)
    targets: list[Target] = []
    for name, settings in hosts.items():
        scheme = str(settings.get("scheme", "http"))
        port = int(settings.get("port") or (5986 if scheme == "https" else 5985))
        targets.append(
            Target(
                name=name,
                address=str(settings.get("address", name)),
                port=port,
                scheme=scheme,
                username=str(settings.get("username", "fleetcheck")),
                auth=str(settings.get("auth", "negotiate")),
            )
        )
    return targets[:count] if count else targets
