"""How much the simulated fleet costs per session: is the lab ever the bottleneck of a benchmark?

    python -m bench.lab_capacity [--hosts 500 1000] [--threads 100] [--rounds 1] [--workers N] [--transport ssh]

For each fleet size: `fleetcheck lab serve` starts in its own process(es); a separate client
process drives every host with the unmodified pypsrp `Client.execute_ps` (HTTP, NTLM with
message encryption, one fresh session per host per round) from a thread pool; the lab's
CPU (parent + worker processes, psutil) is read before and after. Prints sessions/s,
server CPU per session, server RSS (total and per 500 hosts) and errors, against the
targets of issue 2. `--transport ssh` drives the SSH endpoint with asyncssh instead (password
auth, fleetcheck's bootstrap on stdin). Not part of `make test`.

Measured on the 2-core dev box (100 client threads, one session per host, 0 errors each):

    hosts via  workers  sess/s  server CPU ms/session  server RSS MB  client CPU ms/session
      500 psrp       1    25.3                  11.1            68              38
     1000 psrp       1    30.0                   9.8            76              32
     1000 psrp       2    36.2                   6.8           185              24
      500 ssh        1    57.3                   4.5            79              11
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import yaml

PASSWORD = "Lab-Passw0rd!"
PASSWORD_ENV = "FLEETCHECK_LAB_PASSWORD"
TARGET_CPU_MS = 15.0
TARGET_RSS_MB_PER_500 = 150.0
READY_TIMEOUT_S = 300.0
CLIENT_TIMEOUT_S = 900.0


@dataclass
class CapacityResult:
    hosts: int
    transport: str
    workers: int
    sessions: int
    errors: int
    wall_s: float
    sessions_per_s: float
    server_cpu_ms_per_session: float
    server_rss_mb: float
    server_rss_mb_per_500: float
    client_cpu_ms_per_session: float
    lab_requests: int | None
    lab_peak_open_shells: int | None
    error_samples: list[str]


# --- client side (its own process) -------------------------------------------------------


def _one_session(address: str, port: int, name: str, password: str) -> str | None:
    from pypsrp.client import Client

    try:
        client = Client(
            address,
            port=port,
            ssl=False,
            username="fleetcheck",
            password=password,
            auth="negotiate",
            encryption="always",
            connection_timeout=30,
            read_timeout=60,
            reconnection_retries=0,
        )
        output, _streams, had_errors = client.execute_ps("hostname")
    except Exception as exc:
        return f"{name}: {type(exc).__name__}: {exc}"[:300]
    if had_errors or output.strip() != name:
        return f"{name}: unexpected output {output!r}"[:300]
    return None


async def _ssh_sessions(
    jobs: list[tuple[str, int, str]], password: str, concurrency: int, known_hosts: str
) -> list[str | None]:
    import asyncio

    import asyncssh

    from fleetcheck.transports.bootstrap import bootstrap_command_line, bootstrap_stdin

    gate = asyncio.Semaphore(concurrency)
    stdin = bootstrap_stdin("hostname", "{}").decode()

    async def one(address: str, port: int, name: str) -> str | None:
        async with gate:
            try:
                async with asyncssh.connect(
                    address,
                    port,
                    username="fleetcheck",
                    password=password,
                    known_hosts=known_hosts,
                    client_keys=None,
                ) as conn:
                    result = await conn.run(bootstrap_command_line(), input=stdin, check=False)
            except (OSError, asyncssh.Error) as exc:
                return f"{name}: {type(exc).__name__}: {exc}"[:300]
        if result.exit_status != 0 or str(result.stdout).strip() != name:
            return f"{name}: exit {result.exit_status}, output {result.stdout!r}"[:300]
        return None

    return await asyncio.gather(*(one(*job) for job in jobs))


def client_main(inventory: Path, threads: int, rounds: int) -> dict[str, Any]:
    data = yaml.safe_load(inventory.read_text())
    top = data.get("vars", {})
    ssh = top.get("transport") == "ssh"
    default_port = int(top.get("port", 22 if ssh else 5985))
    targets = [(h["address"], int(h.get("port", default_port)), name) for name, h in data["hosts"].items()]
    password = os.environ.get(PASSWORD_ENV, PASSWORD)
    jobs = targets * rounds
    cpu0 = time.process_time()
    start = time.perf_counter()
    if ssh:
        import asyncio

        results = asyncio.run(_ssh_sessions(jobs, password, threads, top["ssh_known_hosts"]))
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            results = list(pool.map(lambda t: _one_session(t[0], t[1], t[2], password), jobs))
    wall = time.perf_counter() - start
    errors = [r for r in results if r]
    return {
        "sessions": len(jobs),
        "errors": len(errors),
        "error_samples": errors[:5],
        "wall_s": wall,
        "client_cpu_s": time.process_time() - cpu0,
    }


# --- orchestration ---------------------------------------------------------------------


def _lab_processes(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / (1024 * 1024)


def _start_lab(
    hosts: int, workers: int | None, workdir: Path, transport: str
) -> tuple[subprocess.Popen[str], Path, Path]:
    inventory = workdir / f"lab-{hosts}.yml"
    counters = workdir / f"counters-{hosts}.json"
    cmd = [
        sys.executable,
        "-m",
        "fleetcheck.lab",
        "serve",
        "--hosts",
        str(hosts),
        "--inventory-out",
        str(inventory),
    ]
    cmd += ["--counters-out", str(counters), "--transport", transport]
    if workers:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("lab ready:") or proc.poll() is not None:
            break
    if not line.startswith("lab ready:"):
        proc.kill()
        _out, err = proc.communicate()
        raise RuntimeError(f"the lab did not start: {line!r} {err[-2000:]}")
    return proc, inventory, counters


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault(PASSWORD_ENV, PASSWORD)
    return env


def _read_counters(proc: subprocess.Popen[str], path: Path) -> dict[str, Any] | None:
    before = path.stat().st_mtime_ns if path.exists() else 0
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime_ns != before:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        time.sleep(0.05)
    return None


def measure(
    hosts: int, threads: int, rounds: int, workers: int | None, workdir: Path, transport: str = "psrp"
) -> CapacityResult:
    lab, inventory, counters_path = _start_lab(hosts, workers, workdir, transport)
    try:
        procs = _lab_processes(lab.pid)
        time.sleep(0.5)  # let the lab settle after binding
        cpu_before = _cpu_s(procs)
        client = subprocess.run(
            [sys.executable, "-m", "bench.lab_capacity", "client", "--inventory", str(inventory),
             "--threads", str(threads), "--rounds", str(rounds)],
            capture_output=True, text=True, env=_env(), timeout=CLIENT_TIMEOUT_S, check=False,
        )  # fmt: skip
        cpu_after = _cpu_s(procs)
        rss = _rss_mb(procs)
        if client.returncode != 0:
            raise RuntimeError(f"client failed: {client.stderr[-2000:]}")
        got = json.loads(client.stdout.strip().splitlines()[-1])
        counters = _read_counters(lab, counters_path)
    finally:
        lab.send_signal(signal.SIGTERM)
        try:
            lab.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            lab.kill()
            lab.communicate()
    sessions = got["sessions"]
    return CapacityResult(
        hosts=hosts,
        transport=transport,
        workers=len(counters.get("pids", [])) if counters else 0,
        sessions=sessions,
        errors=got["errors"],
        wall_s=round(got["wall_s"], 2),
        sessions_per_s=round(sessions / got["wall_s"], 1),
        server_cpu_ms_per_session=round((cpu_after - cpu_before) * 1000 / sessions, 2),
        server_rss_mb=round(rss, 1),
        server_rss_mb_per_500=round(rss * 500 / hosts, 1),
        client_cpu_ms_per_session=round(got["client_cpu_s"] * 1000 / sessions, 2),
        lab_requests=counters.get("requests") if counters else None,
        lab_peak_open_shells=counters.get("peak_open_shells") if counters else None,
        error_samples=got["error_samples"],
    )


def _print(results: list[CapacityResult]) -> None:
    head = f"{'hosts':>6} {'via':>4} {'workers':>7} {'sessions':>8} {'errors':>6} {'sess/s':>7} {'srv CPU ms/sess':>15} "
    head += (
        f"{'srv RSS MB':>10} {'RSS MB/500':>10} {'cli CPU ms/sess':>15} {'lab reqs':>8} {'peak shells':>11}"
    )
    print(head)
    for r in results:
        print(
            f"{r.hosts:>6} {r.transport:>4} {r.workers:>7} {r.sessions:>8} {r.errors:>6} {r.sessions_per_s:>7} "
            f"{r.server_cpu_ms_per_session:>15} {r.server_rss_mb:>10} {r.server_rss_mb_per_500:>10} "
            f"{r.client_cpu_ms_per_session:>15} {r.lab_requests!s:>8} {r.lab_peak_open_shells!s:>11}"
        )
    for r in results:
        ok_cpu = r.server_cpu_ms_per_session <= TARGET_CPU_MS
        ok_rss = r.server_rss_mb_per_500 <= TARGET_RSS_MB_PER_500
        verdict = "PASS" if ok_cpu and ok_rss and r.errors == 0 else "FAIL"
        print(
            f"{r.hosts} hosts over {r.transport}: {verdict} (CPU/session {r.server_cpu_ms_per_session} ms <= {TARGET_CPU_MS}: {ok_cpu}; "
            f"RSS per 500 hosts {r.server_rss_mb_per_500} MB <= {TARGET_RSS_MB_PER_500}: {ok_rss}; errors {r.errors})"
        )
        for sample in r.error_samples:
            print(f"  error: {sample}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode")
    cli = sub.add_parser("client", help="(internal) drive the lab from this process")
    cli.add_argument("--inventory", type=Path, required=True)
    cli.add_argument("--threads", type=int, default=100)
    cli.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--hosts", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1, help="sessions per host")
    parser.add_argument(
        "--workers", type=int, default=None, help="lab worker processes (default: the lab's auto)"
    )
    parser.add_argument("--transport", choices=("psrp", "ssh"), default="psrp")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    opts = parser.parse_args(argv)
    if opts.mode == "client":
        print(json.dumps(client_main(opts.inventory, opts.threads, opts.rounds)))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="lab-capacity-") as tmp:
        for hosts in opts.hosts:
            results.append(measure(hosts, opts.threads, opts.rounds, opts.workers, Path(tmp), opts.transport))
    _print(results)
    if opts.json:
        opts.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0 if all(r.errors == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
