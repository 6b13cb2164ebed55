"""The coordinator's side of sites without a broker: LocalDispatcher runs batches in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fleetcheck import runner
from fleetcheck.dispatch import SiteTransport
from fleetcheck.dispatch.local import LocalDispatcher
from fleetcheck.inventory.loader import load_inventory
from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet
from fleetcheck.playbook import load_playbook


async def test_a_host_delivered_twice_counts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with LabFleet(3, addressing="ports") as fleet:
        monkeypatch.setenv(PASSWORD_ENV, fleet.password)  # the "worker's" environment
        hosts = [h.model_copy(update={"site": "east"}) for h in load_inventory(fleet.write_inventory(tmp_path / "i.yml")).hosts]
        sites = SiteTransport(LocalDispatcher({"east"}, deliveries=2), password_envs={h.name: PASSWORD_ENV for h in hosts})
        done: list[str] = []
        options = runner.RunOptions(
            route=lambda _t: sites, on_event=lambda e: e.kind == "host_finished" and done.append(str(e.host)),
        )
        result = await runner.run_fleet(hosts, [load_playbook("system-state-backup")], options)
        for _ in range(100):  # the second delivery of each host arrives after the first
            if sites.stats.duplicates == 3:
                break
            await asyncio.sleep(0.05)
        await sites.close(interrupted=False)
    assert sorted(done) == sorted(h.name for h in hosts)
    assert [h.status.value for h in result.hosts] == ["compliant"] * 3
    assert (sites.stats.results, sites.stats.duplicates) == (3, 3)


async def test_hosts_of_a_site_nobody_serves_end_within_the_wait(tmp_path: Path) -> None:
    async with LabFleet(2, addressing="ports") as fleet:
        hosts = [h.model_copy(update={"site": "gone"}) for h in load_inventory(fleet.write_inventory(tmp_path / "i.yml")).hosts]
        dispatcher = LocalDispatcher({"east"})
        sites = SiteTransport(dispatcher, site_wait=1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        result = await runner.run_fleet(hosts, [load_playbook("system-state-backup")], runner.RunOptions(route=lambda _t: sites))
        elapsed = loop.time() - t0
        await sites.close(interrupted=False)
    assert {h.message for h in result.hosts} == {"no worker for site gone answered within 1 s"}
    assert {h.status.value for h in result.hosts} == {"unreachable"}
    assert 1 <= elapsed < 4
    assert [len(b.targets) for b in dispatcher.submitted] == [2]
    assert all(t.password_env is None and "password" not in t.settings for b in dispatcher.submitted for t in b.targets)
