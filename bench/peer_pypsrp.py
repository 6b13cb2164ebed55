"""Peer: what a user writes by hand with pypsrp. Runs in the peers venv, never imports fleetcheck.

    python peer_pypsrp.py --targets targets.json --mode loop|pool|pool-bundle [--forks N] [--limit N]
                          [--script TEXT] [--bundle-script FILE --bundle-args FILE]

- `loop`: one host after another, `Client.execute_ps(script)` (a new runspace pool per call).
- `pool`: a thread pool of `--forks` threads, each host `Client.execute_ps(script)`.
- `pool-bundle`: a thread pool, each host its own `RunspacePool` and
  `PowerShell.add_script(bundle).add_parameter("ArgsJson", args)`: fleetcheck's exact remote work.

The password comes from $FLEETCHECK_LAB_PASSWORD. Prints one JSON line: hosts, ok, failed,
the first few errors, the time spent importing (startup_s) and the loop's own wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_T0 = time.perf_counter()

from pypsrp.client import Client  # noqa: E402
from pypsrp.powershell import PowerShell, RunspacePool  # noqa: E402
from pypsrp.wsman import WSMan  # noqa: E402

_STARTUP = time.perf_counter() - _T0


def _wsman_kwargs(target: dict[str, Any], password: str) -> dict[str, Any]:
    return {
        "port": int(target["port"]),
        "username": target["username"],
        "password": password,
        "ssl": target.get("scheme", "http") == "https",
        "auth": target.get("auth", "negotiate"),
        "cert_validation": False,
        "encryption": "auto",
        "operation_timeout": 20,
        "read_timeout": 30,
        "connection_timeout": 10,
    }


def run_execute_ps(target: dict[str, Any], password: str, script: str) -> str:
    client = Client(target["address"], **_wsman_kwargs(target, password))
    output, streams, had_errors = client.execute_ps(script)
    if had_errors:
        raise RuntimeError(f"script had errors: {[str(e) for e in streams.error][:1]}")
    return output


def run_bundle(target: dict[str, Any], password: str, script: str, args_json: str) -> str:
    wsman = WSMan(target["address"], **_wsman_kwargs(target, password))
    pool = RunspacePool(wsman)
    pool.open()
    try:
        ps = PowerShell(pool)
        ps.add_script(script).add_parameter("ArgsJson", args_json)
        ps.invoke()
        if ps.had_errors:
            raise RuntimeError("bundle had errors")
        return "\n".join(str(o) for o in ps.output)
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", required=True)
    parser.add_argument("--mode", choices=("loop", "pool", "pool-bundle"), required=True)
    parser.add_argument("--forks", type=int, default=50)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--script", default="hostname")
    parser.add_argument("--bundle-script")
    parser.add_argument("--bundle-args")
    opts = parser.parse_args(argv)

    password = os.environ.get("FLEETCHECK_LAB_PASSWORD", "")
    with open(opts.targets, encoding="utf-8") as fh:
        targets: list[dict[str, Any]] = json.load(fh)
    if opts.limit:
        targets = targets[: opts.limit]

    if opts.mode == "pool-bundle":
        with open(opts.bundle_script, encoding="utf-8") as fh:
            bundle = fh.read()
        with open(opts.bundle_args, encoding="utf-8") as fh:
            bundle_args = fh.read()

        def one(t: dict[str, Any]) -> str:
            return run_bundle(t, password, bundle, bundle_args)
    else:

        def one(t: dict[str, Any]) -> str:
            return run_execute_ps(t, password, opts.script)

    errors: list[str] = []
    ok = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    if opts.mode == "loop":
        for target in targets:
            try:
                one(target)
                ok += 1
            except Exception as exc:  # a peer reports failures, it does not stop on them
                errors.append(f"{target['name']}: {type(exc).__name__}: {exc}"[:300])
    else:
        with ThreadPoolExecutor(max_workers=opts.forks) as pool:
            futures = [pool.submit(one, t) for t in targets]
            for target, fut in zip(targets, futures, strict=True):
                try:
                    fut.result()
                    ok += 1
                except Exception as exc:
                    errors.append(f"{target['name']}: {type(exc).__name__}: {exc}"[:300])
    wall = time.perf_counter() - start
    loop_cpu = time.process_time() - cpu_start
    json.dump(
        {
            "hosts": len(targets),
            "ok": ok,
            "failed": len(errors),
            "errors": errors[:5],
            "startup_s": _STARTUP,
            "loop_wall_s": wall,
            "loop_cpu_s": loop_cpu,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
