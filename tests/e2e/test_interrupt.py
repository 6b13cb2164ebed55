"""Ctrl-C in the middle of a run over the lab: finished hosts stay in the journal, shells get closed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.inventory.model import Host
from fleetcheck.journal import read_journal
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.runner import RunEvent, RunOptions, exit_code, run_fleet

SLOW = ",".join(f"LAB-{i:04d}:latency=0.4" for i in range(5, 9))


@pytest.mark.parametrize("client", ["pypsrp", "native"])
async def test_cancel_keeps_finished_hosts_and_closes_shells(client: str, tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]) -> None:
    async with LabFleet(hosts=8, faults=SLOW, seed=5) as fleet:
        hosts = [h.model_copy(update={"psrp_client": client}) for h in fleet_hosts(fleet, tmp_path)]
        journal = tmp_path / "journal.jsonl"
        events: list[RunEvent] = []
        opts = RunOptions(forks=8, timeout=60, journal=journal, on_event=events.append)
        task = asyncio.create_task(run_fleet(hosts, playbooks, opts))
        deadline = time.monotonic() + 20
        while sum(e.kind == "host_finished" for e in events) < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        while fleet.counters.open_shells < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert fleet.counters.open_shells == 4  # the slow hosts are mid-session
        t0 = time.monotonic()
        task.cancel()  # what asyncio.run does on Ctrl-C
        run = await task
        assert time.monotonic() - t0 < 8
        assert run.interrupted and exit_code(run) == 4
        finished = {e.host for e in events if e.kind == "host_finished"}
        assert finished == {f"LAB-{i:04d}" for i in range(1, 5)}
        assert {h.host for h in run.hosts} == finished
        back = read_journal(journal)
        assert back.interrupted
        assert [(h.host, h.status) for h in back.hosts] == [(h.host, h.status) for h in run.hosts]
        assert all(h.checks for h in back.hosts)
        end = time.monotonic() + 3
        while fleet.counters.open_shells and time.monotonic() < end:
            await asyncio.sleep(0.05)
        assert fleet.counters.open_shells == 0


@pytest.mark.parametrize("transport", ["pypsrp", "psrp-native", "winrm"])
async def test_cancel_aborts_hung_hosts_at_once_and_deletes_their_shells(
    transport: str, tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]
) -> None:
    # PSRP's first Receive opens the runspace pool; its second is the pipeline's output.
    hang = "*:hang@Receive#2" if transport in ("pypsrp", "psrp-native") else "*:hang@Receive"
    async with LabFleet(hosts=3, faults=hang, seed=6) as fleet:
        if transport in ("pypsrp", "psrp-native"):
            client = "native" if transport == "psrp-native" else "pypsrp"
            hosts = [h.model_copy(update={"psrp_client": client}) for h in fleet_hosts(fleet, tmp_path, "psrp")]
        else:
            hosts = fleet_hosts(fleet, tmp_path, transport)
        task = asyncio.create_task(run_fleet(hosts, playbooks, RunOptions(forks=3, timeout=60)))
        deadline = time.monotonic() + 10
        while fleet.counters.open_shells < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # every host now blocks in a Receive that never answers
        t0 = time.monotonic()
        task.cancel()
        run = await task
        assert time.monotonic() - t0 < 5  # sockets aborted: no waiting for 15 s read timeouts
        assert run.interrupted and run.hosts == []
        end = time.monotonic() + 3
        while fleet.counters.open_shells and time.monotonic() < end:
            await asyncio.sleep(0.05)
        assert fleet.counters.open_shells == 0
        for host in hosts:  # the running pipeline is terminated before its shell is deleted
            lab = fleet.hosts[host.name].lab
            assert lab is not None
            actions = lab.requests_by_action
            assert (actions.get("Signal"), actions.get("Delete")) == (1, 1), (host.name, actions)


async def test_cancel_during_the_delete_after_a_failure_still_deletes_the_shell(
    tmp_path: Path, fleet_hosts: Callable[..., list[Host]]
) -> None:
    """Native client: a Ctrl-C while the shell of a failed host is being deleted waits for that Delete."""
    from fleetcheck.transports.psrp_client.transport import NativePsrpTransport

    # The Command's connection is reset, so the Delete needs a new, slowly authenticated one.
    async with LabFleet(hosts=1, faults="*:reset@Command,*:latency=0.4@auth", seed=7) as fleet:
        (host,) = fleet_hosts(fleet, tmp_path, "psrp")
        lab = fleet.hosts[host.name].lab
        assert lab is not None
        task = asyncio.create_task(NativePsrpTransport().run(host.to_target(), "hostname", "{}", timeout=30))
        deadline = time.monotonic() + 20
        while not lab.requests_by_action.get("Command") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the client now authenticates a new connection for the Delete
        assert fleet.counters.open_shells == 1 and not lab.requests_by_action.get("Delete")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert lab.requests_by_action.get("Delete") == 1
        assert fleet.counters.open_shells == 0
