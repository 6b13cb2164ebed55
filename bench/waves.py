"""Where a realistic run's time goes, wave by wave: every WSMan request of the native client, timed.

    python -m bench.waves [--hosts 1000] [--forks 100] [--latency-ms 20] [--remote-s 2.0] [--trace PATH]

Starts a lab (the realistic profile by default: 20 ms added per request, the script's output
after 2 s), runs `fleetcheck run` on it in a child process whose `WSManConnection.post` is
timed (address, action, start, end; written as JSON when the run exits), and prints, for each
wave of `forks` hosts in the order they started, the mean and worst time of each step against
the added latency: the handshake and Create, the pool's Receive, the Command, the pipeline's
Receive (the remote run time included), the Delete, and the client's own time between them.

It answers one question the efficiency row cannot: is the time over the ideal spent in the
first waves (a burst of sessions opening at once, queued behind one another on the two cores)
or spread over every wave? `--trace` summarises an earlier trace instead of running.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ideal

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "waves"

#: One timed request: (host address, WSMan action, start s, end s), seconds from the child process's start.
Request = tuple[str, str, float, float]

_ACTION = re.compile(rb"/(\w+)</(?:\w+:)?Action>")
STEPS = ("Create", "Receive (pool)", "Command", "Receive (pipeline)", "Delete")


@dataclass
class Wave:
    """One wave of hosts (the `forks` that started next): per step, the mean and worst seconds."""

    index: int
    hosts: int
    first_start: float
    last_start: float
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)
    client_gaps: tuple[float, float] = (0.0, 0.0)  # between one reply and the host's next request
    host_s: tuple[float, float] = (0.0, 0.0)  # first request to last reply


def step_name(action: str, seen_command: bool) -> str:
    """A Receive before the Command polls the pool; after it, the pipeline."""
    if action == "Receive":
        return "Receive (pipeline)" if seen_command else "Receive (pool)"
    return action


def waves(requests: Sequence[Request], forks: int) -> list[Wave]:
    """Hosts ordered by their first request, cut into waves of `forks`; each step summed per host
    (a host may poll more than once), then averaged over the wave."""
    if forks <= 0:
        raise ValueError("forks must be positive")
    by_host: dict[str, list[Request]] = defaultdict(list)
    for req in requests:
        by_host[req[0]].append(req)
    hosts = sorted((sorted(reqs, key=lambda r: r[2]) for reqs in by_host.values()), key=lambda rs: rs[0][2])
    out: list[Wave] = []
    for index in range(0, len(hosts), forks):
        group = hosts[index : index + forks]
        per_step: dict[str, list[float]] = defaultdict(list)
        gaps: list[float] = []
        spans: list[float] = []
        for reqs in group:
            totals: dict[str, float] = defaultdict(float)
            seen_command = False
            for _, action, start, end in reqs:
                totals[step_name(action, seen_command)] += end - start
                seen_command = seen_command or action == "Command"
            for name, seconds in totals.items():
                per_step[name].append(seconds)
            gaps.append(sum(reqs[i + 1][2] - reqs[i][3] for i in range(len(reqs) - 1)))
            spans.append(max(r[3] for r in reqs) - reqs[0][2])
        out.append(
            Wave(
                index=index // forks,
                hosts=len(group),
                first_start=group[0][0][2],
                last_start=group[-1][0][2],
                steps={name: (statistics.fmean(v), max(v)) for name, v in per_step.items()},
                client_gaps=(statistics.fmean(gaps), max(gaps)),
                host_s=(statistics.fmean(spans), max(spans)),
            )
        )
    return out


def table(result: Sequence[Wave], *, latency_s: float, remote_s: float, delayed_requests: int = 7) -> str:
    """Milliseconds per step: mean / worst, and the wave's mean host time over its ideal (one
    wave of `bench.ideal`: the lab delays 7 requests a session, the NTLM legs included)."""
    ideal_host = ideal.ideal_seconds(1, 1, delayed_requests, latency_s, remote_s)
    names = [s for s in STEPS if any(s in w.steps for w in result)]
    head = ["wave", "hosts", "started s", *names, "client gaps", "host s", "over ideal ms"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for w in result:
        cells = [str(w.index), str(w.hosts), f"{w.first_start:.2f}-{w.last_start:.2f}"]
        cells += [
            f"{w.steps[n][0] * 1000:.0f} / {w.steps[n][1] * 1000:.0f}" if n in w.steps else "-" for n in names
        ]
        cells += [f"{w.client_gaps[0] * 1000:.0f} / {w.client_gaps[1] * 1000:.0f}", f"{w.host_s[0]:.3f}"]
        cells.append(f"{(w.host_s[0] - ideal_host) * 1000:+.0f}")
        lines.append(" | ".join(cells))
    return "\n".join("| " + line + " |" for line in lines)


def _process_age() -> float:
    """Seconds since this process started (Linux: its start in clock ticks since boot), so the
    interpreter's start-up and the imports count; psutil's create_time is only whole-second exact."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def _child(trace: Path, argv: list[str]) -> None:
    """Run fleetcheck in this process with each WSMan request timed; the trace is written at exit."""
    import atexit
    import runpy

    t0 = time.perf_counter() - _process_age()

    from fleetcheck.transports.psrp_client import connection

    rows: list[Request] = []
    post = connection.WSManConnection.post

    async def timed(self: Any, env: Any, deadline: Any) -> Any:
        match = _ACTION.search(env.data)
        action = match.group(1).decode() if match else "?"
        start = time.perf_counter() - t0
        try:
            return await post(self, env, deadline)
        finally:
            rows.append((self.address, action, start, time.perf_counter() - t0))

    connection.WSManConnection.post = timed  # type: ignore[method-assign]
    atexit.register(lambda: trace.write_text(json.dumps(rows)))
    sys.argv = ["fleetcheck", *argv]
    runpy.run_module("fleetcheck", run_name="__main__", alter_sys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--forks", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--remote-s", type=float, default=2.0)
    parser.add_argument("--trace", default="", help="summarise this trace instead of running")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    opts, rest = parser.parse_known_args(argv)
    if opts.child:
        _child(Path(opts.child), [a for a in rest if a != "--"])
        return 0
    trace = Path(opts.trace) if opts.trace else WORK / f"trace-{opts.hosts}-{opts.forks}.json"
    if not opts.trace:
        from bench.lab import LabProcess, write_subset
        from bench.measure import run_measured

        WORK.mkdir(parents=True, exist_ok=True)
        faults = f"*:slow_output={opts.remote_s}@script" if opts.remote_s > 0 else ""
        with LabProcess(
            opts.hosts, WORK, latency_ms=opts.latency_ms, faults=faults, tag=f"waves-{opts.hosts}"
        ) as lab:
            inv = write_subset(WORK / "inv.yml", lab.inventory, opts.hosts)
            run = [
                sys.executable,
                "-m",
                "bench.waves",
                "--child",
                str(trace),
                "--",
                "run",
                str(inv),
                "--forks",
                str(opts.forks),
                "--no-history",
                "--quiet",
                "--report",
                f"json:{WORK / 'run.json'}",
            ]
            m = run_measured(run, env=lab.env(), cwd=REPO, out_dir=WORK, label="waves")
        print(
            f"fleetcheck run, {opts.hosts} hosts, forks {opts.forks}: wall {m.wall_s:.2f}s, CPU {m.cpu_s:.2f}s"
        )
    requests: list[Request] = [
        (str(a), str(s), float(t0), float(t1)) for a, s, t0, t1 in json.loads(trace.read_text())
    ]
    if not requests:
        print("no request was traced (is the default client the native one?)")
        return 1
    print(
        f"first request {min(r[2] for r in requests):.3f}s after start, last reply {max(r[3] for r in requests):.3f}s"
    )
    print(table(waves(requests, opts.forks), latency_s=opts.latency_ms / 1000, remote_s=opts.remote_s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
