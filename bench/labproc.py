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

from fleetcheck import eventloop


def _counters(fleet: Any) -> dict[str, Any]:
    """Fleet-wide counters; for an in-process fleet also the WSMan actions (the requests the
    lab delays: its auth round trips are counted in `requests` but not delayed)."""
    data: dict[str, Any] = fleet.counters_dict()
    labs = [h.lab for h in fleet.hosts.values() if getattr(h, "lab", None) is not None]
    if labs:
        data["actions"] = sum(sum(lab.requests_by_action.values()) for lab in labs)
        by_action: dict[str, int] = {}
        for lab in labs:
            for verb, n in lab.requests_by_action.items():
                by_action[verb] = by_action.get(verb, 0) + n
        data["by_action"] = by_action
        # Every time the latency fault fired (the lab counts each match of a spec): the
        # delays the lab really added, whatever hooks it applies latency at.
        data["delays"] = sum(
            hits
            for lab in labs
            for index, hits in lab.fault_hits.items()
            if index < len(lab.faults) and lab.faults[index].kind == "latency"
        )
    return data


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
        fleet.write_inventory(inventory)
        ready = {
            "inventory": str(inventory),
            "hosts": opts.hosts,
            "pid": os.getpid(),
            "workers": fleet.pids,
            "addressing": fleet.addressing,
        }
        print("READY " + json.dumps(ready), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            command = line.strip()
            if command == "counters":
                print("COUNTERS " + json.dumps(_counters(fleet)), flush=True)
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
    # the lab shares the machine's cores with the tool measured: uvloop's lower cost per request
    # shortens the queue a burst of new sessions meets (fleetcheck.eventloop)
    return eventloop.run(_serve(opts))


if __name__ == "__main__":
    raise SystemExit(main())
