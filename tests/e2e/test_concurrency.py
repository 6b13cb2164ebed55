"""A 200-host lab with per-request latency: the lab's own gauges prove the run is concurrent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.results import HostStatus
from fleetcheck.runner import RunOptions, run_fleet

FORKS = 50
#: Each session also waits 2 s for its output on the host, so all `FORKS` shells overlap even
#: when a loaded CI machine spreads the NTLM handshakes of one wave over a second or more.
REMOTE_RUN_S = 2.0


@pytest.mark.slow
async def test_200_hosts_peak_shells_equal_forks(tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]) -> None:
    faults = f"*:slow_output={REMOTE_RUN_S}@script"
    async with LabFleet(hosts=200, latency_ms=100, seed=7, workers=2, faults=faults) as fleet:
        hosts = fleet_hosts(fleet, tmp_path)
        fleet.reset_counters()
        run = await run_fleet(hosts, playbooks, RunOptions(forks=FORKS, timeout=60, retries=0))
        counters = fleet.counters
        assert len(run.hosts) == 200
        unchecked = [h for h in run.hosts if h.status not in (HostStatus.COMPLIANT, HostStatus.NONCOMPLIANT)]
        assert unchecked == []
        assert counters.sessions == 200
        assert counters.peak_open_shells == FORKS  # at least forks at once, and never more
        assert counters.open_shells == 0
