"""A judged host's result stays small: 10,000 hosts must fit the 600 MB a nightly scanner may use."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from fleetcheck.lab.host import LabHost
from fleetcheck.lab.machine import MachineState
from fleetcheck.lab.simprobes import answer_bundle
from fleetcheck.playbook import load_playbook
from fleetcheck.runner import build_plan, judge_output
from fleetcheck.transports.base import ScriptOutput

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "system-state-backup.yml"
#: Bytes a judged host's checks may hold (about 18 KB measured; 37 KB when every result had its
#: own fields-set record and tags list).
LIMIT_PER_HOST = 26 * 1024


def test_judged_results_hold_under_the_per_host_budget() -> None:
    playbook = load_playbook(PLAYBOOK)
    plan = build_plan([playbook])
    stdout = answer_bundle(LabHost(name="LAB-0001", machine=MachineState()), plan.script, plan.args_json)
    now = datetime.now(UTC)
    judge_output(None, ScriptOutput(stdout=stdout), [playbook], now)  # caches and lazy imports first
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [judge_output(None, ScriptOutput(stdout=stdout), [playbook], now)[2] for _ in range(200)]
        gc.collect()
        per_host = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert sum(len(checks) for checks in kept) >= 200 * 20
    print(f"{per_host / 1024:.1f} KB per host")
    assert per_host < LIMIT_PER_HOST, f"{per_host / 1024:.1f} KB per host"
