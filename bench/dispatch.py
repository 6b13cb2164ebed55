"""Dispatch overhead: one site behind Redis and a Celery worker vs the same fleet checked locally.

    python -m bench.dispatch [--hosts 100] [--forks 50] [--latency-ms 0] [--repeat 3]

One lab process serves the fleet; a real `redis-server` listens on a loopback port; one
`fleetcheck worker` serves the site. Both runs are `fleetcheck run` subprocesses of the same
inventory (all hosts `site: remote` for the dispatched one, with `--broker`). Printed: best
wall time of each, the dispatched run's extra wall time per host (the figure that matters),
and CPU of coordinator and worker per host (the worker's from psutil, before/after).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from tabulate import tabulate

from bench.lab import LabProcess, bench_env
from bench.measure import Measured, run_measured

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _remote_inventory(source: Path, target: Path) -> Path:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["vars"]["site"] = "remote"
    target.write_text(yaml.safe_dump(data), encoding="utf-8")
    return target


def _worker_cpu(proc: subprocess.Popen[bytes]) -> float:
    p = psutil.Process(proc.pid)
    times = p.cpu_times()
    return float(times.user + times.system)


def _wait_ready(log: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise SystemExit(f"worker exited: {log.read_text(errors='replace')[-1000:]}")
        time.sleep(0.1)
    raise SystemExit("worker not ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    work = Path(tempfile.mkdtemp(prefix="fleetcheck-bench-dispatch-"))
    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    env = {**bench_env(), "PYTHONPATH": str(REPO)}
    with LabProcess(args.hosts, work, latency_ms=args.latency_ms) as lab:
        env = {**lab.env(), "PYTHONPATH": str(REPO)}
        remote = _remote_inventory(lab.inventory, work / "remote.yml")
        log = work / "worker.log"
        with log.open("wb") as err:
            worker = subprocess.Popen(
                [sys.executable, "-m", "fleetcheck", "worker", "--site", "remote", "--broker", broker,
                 "--forks", str(args.forks), "--loglevel", "INFO"],
                env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO,
            )
            try:
                _wait_ready(log, worker)
                common = ["--forks", str(args.forks), "--no-history", "--quiet"]
                local: list[Measured] = []
                spread: list[Measured] = []
                worker_cpu: list[float] = []
                for i in range(args.repeat):
                    argv = [sys.executable, "-m", "fleetcheck", "run", str(lab.inventory), *common,
                            "--journal", str(work / f"l{i}.jsonl")]
                    local.append(run_measured(argv, env=env, cwd=REPO, out_dir=work, label=f"local{i}"))
                    before = _worker_cpu(worker)
                    argv = [sys.executable, "-m", "fleetcheck", "run", str(remote), *common, "--broker", broker,
                            "--journal", str(work / f"s{i}.jsonl")]
                    spread.append(run_measured(argv, env=env, cwd=REPO, out_dir=work, label=f"sites{i}"))
                    worker_cpu.append(_worker_cpu(worker) - before)
            finally:
                worker.terminate()
                worker.wait(20)
    redis.terminate()
    redis.wait(10)
    bad = [m for m in [*local, *spread] if m.returncode not in (0, 1)]
    if bad:
        raise SystemExit(f"a run failed (exit {bad[0].returncode}): {bad[0].stderr_tail}")
    n = args.hosts
    best_local = min(local, key=lambda m: m.wall_s)
    best_spread = min(spread, key=lambda m: m.wall_s)
    rows = [
        ["local (in-process)", f"{best_local.wall_s:.2f}", f"{1000 * best_local.cpu_s / n:.1f}", "-"],
        ["one site via Redis + worker", f"{best_spread.wall_s:.2f}", f"{1000 * best_spread.cpu_s / n:.1f}",
         f"{1000 * min(worker_cpu) / n:.1f}"],
    ]
    print(f"{n} hosts, forks {args.forks}, lab latency {args.latency_ms:g} ms, best of {args.repeat}")
    print(tabulate(rows, headers=["run", "wall s", "coordinator CPU ms/host", "worker CPU ms/host"]))
    extra = (best_spread.wall_s - best_local.wall_s) / n
    print(f"dispatch overhead: {1000 * extra:+.1f} ms wall per host "
          f"(ratio {best_spread.wall_s / best_local.wall_s:.2f} x the local run)")


if __name__ == "__main__":
    main()
