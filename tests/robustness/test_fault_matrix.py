"""The fault-kind x transport matrix over the lab: every faulty host classified, within its deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.results import HostStatus
from fleetcheck.runner import RunOptions, run_fleet

DEADLINE = 6.0
MARGIN = 1.5
CLASSIFIED = {HostStatus.UNREACHABLE, HostStatus.AUTH_FAILED, HostStatus.TIMEOUT, HostStatus.PROTOCOL_ERROR}

#: host -> (fault rule, the status it must end with)
MATRIX: dict[str, tuple[str, HostStatus]] = {
    "LAB-0001": ("refuse", HostStatus.UNREACHABLE),
    "LAB-0002": ("hang@Receive", HostStatus.TIMEOUT),
    "LAB-0003": ("http401@Receive", HostStatus.AUTH_FAILED),  # a 401 in the middle of a session
    "LAB-0004": ("http500", HostStatus.PROTOCOL_ERROR),
    "LAB-0005": ("reset@Command", HostStatus.UNREACHABLE),
    "LAB-0006": ("malformed@Command", HostStatus.PROTOCOL_ERROR),
    "LAB-0007": ("encrypt_garbage@Receive", HostStatus.PROTOCOL_ERROR),
    "LAB-0008": ("bad_json", HostStatus.PROTOCOL_ERROR),
    "LAB-0009": ("oversized_output", HostStatus.PROTOCOL_ERROR),
    "LAB-0010": ("http401@Command", HostStatus.AUTH_FAILED),
}
HEALTHY = "LAB-0011"


def _hosts(fleet_hosts: Callable[..., list[Host]], fleet: LabFleet, tmp_path: Path, transport: str) -> list[Host]:
    if transport == "winrm":
        return fleet_hosts(fleet, tmp_path, transport)
    client = "native" if transport == "psrp-native" else "pypsrp"  # named: the default client is native
    return [h.model_copy(update={"psrp_client": client}) for h in fleet_hosts(fleet, tmp_path, "psrp")]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["pypsrp", "winrm", "psrp-native"])
async def test_fault_matrix(
    transport: str, tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]
) -> None:
    faults = ",".join(f"{host}:{rule}" for host, (rule, _) in MATRIX.items())
    async with LabFleet(hosts=len(MATRIX) + 1, faults=faults, seed=5, addressing="ports") as fleet:
        hosts = _hosts(fleet_hosts, fleet, tmp_path, transport)
        t0 = time.monotonic()
        run = await run_fleet(hosts, playbooks, RunOptions(forks=12, timeout=DEADLINE, retries=0))
        wall = time.monotonic() - t0
    by = {r.host: r for r in run.hosts}
    assert by[HEALTHY].status in (HostStatus.COMPLIANT, HostStatus.NONCOMPLIANT), by[HEALTHY]
    wrong = {
        host: (by[host].status.value, by[host].message)
        for host, (_, expected) in MATRIX.items()
        if by[host].status is not expected
    }
    assert not wrong, wrong
    assert all(r.status in CLASSIFIED for h, r in by.items() if h != HEALTHY)
    assert all(r.duration_s <= DEADLINE + MARGIN for r in run.hosts), [(r.host, r.duration_s) for r in run.hosts]
    assert wall < DEADLINE + 2 * MARGIN + 2
