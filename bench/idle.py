"""What this machine charges for waking up: the same work, right after other work and after a nap.

    python -m bench.idle [--pairs 120] [--nap-ms 20]

fleetcheck at forks 50 spends most of a run waiting for the network and wakes up for each
burst of answers; at forks 500 it is seldom idle. On this VM the same Python work costs more
CPU when the process has just slept: whatever ran on the core meanwhile (other guests, the
lab) has evicted its caches, and the refill is charged to the process as CPU time. The
reference loop (`bench.run.calibrate`) is a tight loop and never sees this.

The probe judges one lab host's facts (fleetcheck's own rules: parse, evaluate, results) in
pairs: once right after a nap, once immediately after. Both halves of a pair run in the same
minute, so the machine's drift cancels; the ratio of the medians is the wake-up penalty.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class IdlePenalty:
    """Median CPU milliseconds of one unit of work, right after a nap and back to back."""

    nap_ms: float
    after_nap_ms: float
    back_to_back_ms: float
    pairs: int

    @property
    def ratio(self) -> float:
        return self.after_nap_ms / self.back_to_back_ms if self.back_to_back_ms > 0 else float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self) | {"ratio": round(self.ratio, 3)}

    def describe(self) -> str:
        return (
            f"the same work costs {self.ratio:.2f}x after {self.nap_ms:g} ms asleep "
            f"({self.after_nap_ms:.2f} ms against {self.back_to_back_ms:.2f} ms back to back, median of {self.pairs})"
        )


def measure(
    work: Callable[[], object],
    *,
    pairs: int = 120,
    nap_s: float = 0.02,
    sleep: Callable[[float], None] = time.sleep,
    cpu_clock: Callable[[], float] = time.thread_time,
) -> IdlePenalty:
    """Run `work` in `pairs` pairs (after a nap of `nap_s`, then at once) and compare the medians."""
    work()  # imports, first-use caches: neither half pays them
    after_nap: list[float] = []
    back_to_back: list[float] = []
    for _ in range(pairs):
        sleep(nap_s)
        for sink in (after_nap, back_to_back):
            t0 = cpu_clock()
            work()
            sink.append(cpu_clock() - t0)
    return IdlePenalty(
        nap_ms=nap_s * 1000,
        after_nap_ms=statistics.median(after_nap) * 1000,
        back_to_back_ms=statistics.median(back_to_back) * 1000,
        pairs=pairs,
    )


def judge_one_host() -> Callable[[], object]:
    """One unit of fleetcheck's per-host work: judge a lab host's facts against the full playbook."""
    from datetime import UTC, datetime

    from fleetcheck.api.inputs import load_playbooks
    from fleetcheck.lab.host import LabHost
    from fleetcheck.lab.machine import MachineState
    from fleetcheck.lab.simprobes import answer_bundle
    from fleetcheck.playbook import merge_probe_requests
    from fleetcheck.probes.bundle import build_bundle
    from fleetcheck.runner import judge_output
    from fleetcheck.transports.base import ScriptOutput

    playbooks = load_playbooks(["system-state-backup"])
    bundle = build_bundle(merge_probe_requests(playbooks))
    output = ScriptOutput(stdout=answer_bundle(LabHost("probe", MachineState()), bundle.script, bundle.args_json))
    now = datetime.now(UTC)
    return lambda: judge_output(None, output, playbooks, now)


def idle_penalty(pairs: int = 120, nap_ms: float = 20.0) -> IdlePenalty:
    return measure(judge_one_host(), pairs=pairs, nap_s=nap_ms / 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=120)
    parser.add_argument("--nap-ms", type=float, default=20.0)
    opts = parser.parse_args(argv)
    for nap in (1.0, 5.0, opts.nap_ms):
        print(f"idle penalty: {idle_penalty(opts.pairs, nap).describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
