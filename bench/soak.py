"""A soak: 1,000 lab hosts, 10% faulty of mixed kinds, every client in turn, repeated.

    python -m bench.soak [--hosts 1000] [--rounds 2] [--timeout 10] [--forks 100]

Each run is a real `fleetcheck run` subprocess against one lab (in this process, its hosts
served by worker processes); a second run per client is interrupted with SIGTERM half-way.
Printed per run: healthy hosts judged right (the verdict of the fault-free scenario),
faulty hosts classified as their fault demands, wall time, peak RSS of the scanner, and the
shells the run left open on the lab (15 s after it ended). Exit 1 when any figure is short of 100% / 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet

REPO = Path(__file__).resolve().parents[1]

#: fault rule -> (status it must end with, applies to ssh too)
FAULTS: list[tuple[str, str, bool]] = [
    ("refuse", "unreachable", True),
    ("hang@Receive", "timeout", False),
    ("http500", "protocol_error", False),
    ("reset@Command", "unreachable", True),
    ("malformed@Command", "protocol_error", False),
    ("http401@Receive", "auth_failed", False),
    ("encrypt_garbage@Receive", "protocol_error", False),
    ("bad_json", "protocol_error", True),
    ("probe_throws", "protocol_error", True),  # the probe script throws: script_failed
]
#: oversized_output is left to tests/robustness: the lab spends seconds of CPU sealing 20 MB per
#: host, which starves every other lab host and turns the soak into a benchmark of the lab.
CLIENTS = [("psrp", "pypsrp"), ("winrm", "pypsrp"), ("psrp", "native"), ("ssh", "pypsrp")]


@dataclass
class Figures:
    client: str
    healthy_right: int
    healthy: int
    faulty_right: int
    faulty: int
    wall_s: float
    peak_rss_mb: float
    shells_left: int
    interrupted: bool = False
    wrong: str = ""


def plan(hosts: int) -> dict[str, tuple[str, str, bool]]:
    """Every tenth host faulty, the kinds in turn."""
    return {f"LAB-{i:04d}": FAULTS[(i // 10) % len(FAULTS)] for i in range(10, hosts + 1, 10)}


async def _measure(argv: list[str], env: dict[str, str], stop_after: float | None) -> tuple[float, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    peak = 0
    ps = psutil.Process(proc.pid)
    while proc.returncode is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, ps.memory_info().rss)
        if stop_after is not None and time.monotonic() - started > stop_after:
            proc.send_signal(signal.SIGTERM)
            stop_after = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.1)
    return time.monotonic() - started, peak / 1024 / 1024


async def soak(hosts: int, rounds: int, timeout: float, forks: int, clients: list[tuple[str, str]]) -> list[Figures]:
    faulty = plan(hosts)
    rules = ",".join(f"{name}:{rule}" for name, (rule, _, _) in faulty.items())
    out: list[Figures] = []
    work = Path(tempfile.mkdtemp(prefix="fc-soak-"))
    async with LabFleet(hosts=hosts, faults=rules, ssh=True, seed=11, addressing="ports", workers=2) as fleet:
        env = {**os.environ, PASSWORD_ENV: fleet.password, "PYTHONPATH": str(REPO)}
        for round_no in range(rounds):
            for transport, client in clients:
                label = f"{transport}/{client}" if transport == "psrp" else transport
                inv = fleet.write_inventory(work / f"{transport}.yml", transport=transport)  # type: ignore[arg-type]
                for interrupted in (False, True):
                    report = work / f"r{round_no}-{transport}-{client}-{interrupted}.json"
                    before = fleet.counters.open_shells  # a shell an earlier run left is not this run's
                    argv = [sys.executable, "-m", "fleetcheck", "run", str(inv), "--timeout", str(timeout),
                            "--forks", str(forks), "--quiet", "--no-history", "--psrp-client", client,
                            "--journal", str(work / "journal.jsonl"), "--report", f"json:{report}"]
                    wall, rss = await _measure(argv, env, 4.0 if interrupted else None)
                    end = time.monotonic() + 15
                    while fleet.counters.open_shells > before and time.monotonic() < end:
                        await asyncio.sleep(0.1)
                    left = max(0, fleet.counters.open_shells - before)
                    figures = _judge(label, report, faulty, transport, wall, rss, left)
                    figures.interrupted = interrupted
                    out.append(figures)
                    print(_line(figures), flush=True)
    return out


def _judge(label: str, report: Path, faulty: dict[str, tuple[str, str, bool]], transport: str, wall: float,
           rss: float, shells: int) -> Figures:
    data = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {"hosts": []}
    fig = Figures(label, 0, 0, 0, 0, round(wall, 1), round(rss, 1), int(shells))
    wrong: list[str] = []
    for host in data["hosts"]:
        fault = faulty.get(host["host"])
        applies = fault is not None and (transport != "ssh" or fault[2])
        if applies:
            assert fault is not None
            fig.faulty += 1
            if host["status"] == fault[1]:
                fig.faulty_right += 1
            else:
                wrong.append(f"{host['host']}({fault[0]})={host['status']}: {host.get('message', '')[:80]}")
        else:
            fig.healthy += 1
            if host["status"] == "compliant":
                fig.healthy_right += 1
            else:
                wrong.append(f"{host['host']}(healthy)={host['status']}: {host.get('message', '')[:80]}")
    fig.wrong = "; ".join(wrong[:3])
    return fig


def _line(f: Figures) -> str:
    kind = "SIGTERM" if f.interrupted else "full   "
    return (f"{f.client:12} {kind} healthy right {f.healthy_right}/{f.healthy}  faulty classified "
            f"{f.faulty_right}/{f.faulty}  wall {f.wall_s:6.1f} s  peak RSS {f.peak_rss_mb:6.1f} MB  "
            f"shells left {f.shells_left}" + (f"  e.g. {f.wrong}" if f.wrong else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--forks", type=int, default=100)
    parser.add_argument("--clients", default="psrp/pypsrp,winrm,psrp/native,ssh", help="comma-separated, in turn")
    args = parser.parse_args()
    chosen = [(c.split("/")[0], [*c.split("/"), "pypsrp"][1]) for c in args.clients.split(",")]
    figures = asyncio.run(soak(args.hosts, args.rounds, args.timeout, args.forks, chosen))
    full = [f for f in figures if not f.interrupted]
    ok = all(f.healthy_right == f.healthy and f.faulty_right == f.faulty for f in full)
    ok = ok and all(f.shells_left == 0 for f in figures)
    print("soak:", "all figures at 100% / 0 shells" if ok else "SHORT of 100% / 0 shells")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
