"""Faulty hosts over the lab: each ends with the right status, within its deadline plus a margin."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.results import HostResult, HostStatus
from fleetcheck.runner import RunOptions, run_fleet

DEADLINE = 3.0
MARGIN = 1.5

WINRM_FAULTS = (
    "LAB-0001:refuse,"
    "LAB-0002:hang@Receive,"
    "LAB-0004:http500,"  # the real-world 0x800703FA provider fault
    "LAB-0005:reset@Command,"
    "LAB-0006:http500=2150859173@Create#1,"  # shell quota once: retried, then fine
    "LAB-0007:malformed@Command,"
    "LAB-0008:bad_json,"
    "LAB-0009:probe_throws"
)


def _by_name(results: list[HostResult]) -> dict[str, HostResult]:
    return {r.host: r for r in results}


def _wrong_password(hosts: list, name: str) -> list:
    return [h.model_copy(update={"password": SecretStr("not-the-password")}) if h.name == name else h for h in hosts]


def _hosts_for(fleet_hosts: Callable[..., list[Host]], fleet: LabFleet, tmp_path: Path, transport: str, **kw: Any) -> list[Host]:
    """`psrp-native` = the psrp transport with `psrp_client: native`."""
    if transport != "psrp-native":
        return fleet_hosts(fleet, tmp_path, transport, **kw)
    return [h.model_copy(update={"psrp_client": "native"}) for h in fleet_hosts(fleet, tmp_path, "psrp", **kw)]


@pytest.mark.parametrize("transport", ["psrp", "psrp-native", "winrm"])
async def test_winrm_faults_classified_within_deadline(transport: str, tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]) -> None:
    async with LabFleet(hosts=9, faults=WINRM_FAULTS, seed=3) as fleet:
        hosts = _wrong_password(_hosts_for(fleet_hosts, fleet, tmp_path, transport), "LAB-0003")
        t0 = time.monotonic()
        run = await run_fleet(hosts, playbooks, RunOptions(forks=10, timeout=DEADLINE, retries=2, backoff=0.05))
        wall = time.monotonic() - t0
        r = _by_name(run.hosts)
        assert len(r) == 9
        assert r["LAB-0001"].status is HostStatus.UNREACHABLE
        assert r["LAB-0001"].message.startswith("connection refused on 127.")
        assert r["LAB-0002"].status is HostStatus.TIMEOUT, r["LAB-0002"]
        assert r["LAB-0002"].message == f"no answer within {DEADLINE:g} s"
        assert r["LAB-0003"].status is HostStatus.AUTH_FAILED
        assert r["LAB-0003"].attempts == 1  # never retried
        assert "credentials rejected" in r["LAB-0003"].message
        assert r["LAB-0004"].status is HostStatus.PROTOCOL_ERROR
        assert r["LAB-0004"].error_type == "wsman_800703FA"
        assert r["LAB-0005"].status is HostStatus.UNREACHABLE
        assert (r["LAB-0005"].error_type, r["LAB-0005"].attempts) == ("reset", 3)
        assert r["LAB-0006"].attempts == 2
        assert r["LAB-0006"].status in (HostStatus.COMPLIANT, HostStatus.NONCOMPLIANT)
        assert (r["LAB-0007"].status, r["LAB-0007"].error_type) == (HostStatus.PROTOCOL_ERROR, "malformed")
        assert (r["LAB-0008"].status, r["LAB-0008"].error_type) == (HostStatus.PROTOCOL_ERROR, "bad_facts")
        assert (r["LAB-0009"].status, r["LAB-0009"].error_type) == (HostStatus.PROTOCOL_ERROR, "script_failed")
        assert "Simulated probe failure." in r["LAB-0009"].message
        for res in run.hosts:
            assert res.duration_s <= DEADLINE + MARGIN, res
            assert "not-the-password" not in res.message and fleet.password not in res.message
        assert wall <= DEADLINE + MARGIN + 1.0
        # every shell we opened was closed again, the hung one included
        deadline = time.monotonic() + 3
        while fleet.counters.open_shells and time.monotonic() < deadline:
            await _sleep(0.05)
        assert fleet.counters.open_shells == 0


async def test_ssh_faults_classified_within_deadline(tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]) -> None:
    faults = "LAB-0001:refuse,LAB-0002:hang@Command,LAB-0004:reset@Command"
    async with LabFleet(hosts=4, ssh=True, faults=faults, seed=3) as fleet:
        hosts = _wrong_password(fleet_hosts(fleet, tmp_path, "ssh"), "LAB-0003")
        opts = RunOptions(forks=10, timeout=DEADLINE, retries=1, backoff=0.05, ssh_known_hosts="accept")
        run = await run_fleet(hosts, playbooks, opts)
        r = _by_name(run.hosts)
        assert r["LAB-0001"].status is HostStatus.UNREACHABLE
        assert r["LAB-0001"].message.endswith("is sshd listening?")
        assert r["LAB-0002"].status is HostStatus.TIMEOUT
        assert r["LAB-0003"].status is HostStatus.AUTH_FAILED and r["LAB-0003"].attempts == 1
        assert r["LAB-0004"].status is HostStatus.UNREACHABLE and r["LAB-0004"].attempts == 2
        for res in run.hosts:
            assert res.duration_s <= DEADLINE + MARGIN, res


async def _sleep(s: float) -> None:
    import asyncio

    await asyncio.sleep(s)


@pytest.mark.parametrize("transport", ["psrp", "psrp-native", "winrm"])
async def test_https_trust_faults(
    transport: str, tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]]
) -> None:
    faults = "LAB-0001:tls_bad_cert=untrusted,LAB-0002:tls_bad_cert=wrong_name,LAB-0003:cbt_mismatch"
    async with LabFleet(hosts=4, https=True, faults=faults, seed=4) as fleet:
        hosts = _hosts_for(fleet_hosts, fleet, tmp_path, transport, scheme="https")
        run = await run_fleet(hosts, playbooks, RunOptions(forks=4, timeout=DEADLINE))
    r = _by_name(run.hosts)
    assert (r["LAB-0001"].status, r["LAB-0001"].error_type) == (HostStatus.PROTOCOL_ERROR, "tls_untrusted")
    assert r["LAB-0001"].message.endswith("- set ca_path or cert_validation: false")
    assert (r["LAB-0002"].status, r["LAB-0002"].error_type) == (HostStatus.PROTOCOL_ERROR, "tls_hostname")
    assert r["LAB-0003"].status is HostStatus.AUTH_FAILED  # channel binding mismatch: the server says 401
    assert r["LAB-0004"].status is HostStatus.COMPLIANT  # validated against the lab CA


async def test_ssh_host_keys_are_verified(
    tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # an empty ~/.ssh/known_hosts
    async with LabFleet(hosts=2, ssh=True, seed=4) as fleet:
        hosts = fleet_hosts(fleet, tmp_path, "ssh")
        assert all(h.ssh_known_hosts for h in hosts)  # the lab writes its keys to a file
        unknown = [hosts[0], hosts[1].model_copy(update={"ssh_known_hosts": None})]  # LAB-0002: no known key
        run = await run_fleet(unknown, playbooks, RunOptions(timeout=DEADLINE))  # policy "default"
    r = _by_name(run.hosts)
    assert r["LAB-0001"].status is HostStatus.COMPLIANT
    assert (r["LAB-0002"].status, r["LAB-0002"].error_type) == (HostStatus.PROTOCOL_ERROR, "ssh_hostkey")
