"""The lab for a benchmark, in a process of its own (its CPU is not the tool's).

    python -m bench.labproc --hosts N --inventory-out PATH [--latency-ms X] [--faults SPEC] [--workers W]

Starts `LabFleet`, writes its inventory, prints one line `READY {json}`, then answers
commands on stdin, one per line, each with one line on stdout:

    counters  ->  COUNTERS {"requests": .., "sessions": .., "peak_open_shells": .., "open_shells": ..}
    quit      ->  BYE (and exits)

The benchmark reads the counters before and after each run: the ideal is computed from
what the lab itself saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any


def _counters(fleet: Any) -> dict[str, Any]:
    """Fleet-wide counters, summed over the lab's worker processes."""
    snap = fleet.counters_snapshot() if hasattr(fleet, "counters_snapshot") else fleet.counters
    if asyncio.iscoroutine(snap):
        raise TypeError("use _acounters for async snapshots")
    return _as_dict(snap)


def _as_dict(snap: Any) -> dict[str, Any]:
    if isinstance(snap, dict):
        return dict(snap)
    return {
        key: getattr(snap, key)
        for key in ("requests", "sessions", "open_shells", "peak_open_shells")
        if hasattr(snap, key)
    }


async def _acounters(fleet: Any) -> dict[str, Any]:
    getter = getattr(fleet, "counters_snapshot", None) or getattr(fleet, "read_counters", None)
    if getter is not None:
        snap = getter()
        if asyncio.iscoroutine(snap):
            snap = await snap
        return _as_dict(snap)
    return _as_dict(fleet.counters)


def _worker_pids(fleet: Any) -> list[int]:
    pids = getattr(fleet, "worker_pids", None)
    if callable(pids):
        pids = pids()
    return [int(p) for p in pids or []]


async def _serve(opts: argparse.Namespace) -> int:
    from fleetcheck.lab.fleet import LabFleet

    kwargs: dict[str, Any] = {"hosts": opts.hosts, "seed": opts.seed, "latency_ms": opts.latency_ms}
    if opts.faults:
        kwargs["faults"] = opts.faults
    if opts.workers is not None:
        kwargs["workers"] = opts.workers
    if opts.mix:
        kwargs["mix"] = json.loads(opts.mix)
    async with LabFleet(**kwargs) as fleet:
        inventory = Path(opts.inventory_out)
        written = fleet.write_inventory(inventory)
        if asyncio.iscoroutine(written):
            await written
        ready = {"inventory": str(inventory), "hosts": opts.hosts, "pid": os.getpid(), "workers": _worker_pids(fleet)}
        print("READY " + json.dumps(ready), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            command = line.strip()
            if command == "counters":
                print("COUNTERS " + json.dumps(await _acounters(fleet)), flush=True)
            elif command in ("quit", ""):
                break
            else:
                print("ERROR unknown command " + json.dumps(command), flush=True)
    print("BYE", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, required=True)
    parser.add_argument("--inventory-out", required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--faults", default="")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mix", default="", help="JSON object scenario -> weight")
    opts = parser.parse_args(argv)
    return asyncio.run(_serve(opts))


if __name__ == "__main__":
    raise SystemExit(main())
