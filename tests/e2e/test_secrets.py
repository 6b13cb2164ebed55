"""With every logger at DEBUG, a run over each transport writes no password and no auth token."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.results import HostStatus
from fleetcheck.runner import RunOptions, run_fleet

SECRET = "Xq7-unique-lab-secret"


@pytest.mark.parametrize("transport", ["psrp", "psrp-native", "winrm", "ssh"])
async def test_debug_logs_hold_no_secret(
    transport: str,
    tmp_path: Path,
    playbooks: Sequence[Any],
    fleet_hosts: Callable[..., list[Host]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with LabFleet(hosts=2, ssh=transport == "ssh", password=SECRET, seed=9) as fleet:
        if transport == "psrp-native":
            hosts = [h.model_copy(update={"psrp_client": "native"}) for h in fleet_hosts(fleet, tmp_path, "psrp")]
        else:
            hosts = fleet_hosts(fleet, tmp_path, transport)
        wrong = hosts[1].model_copy(update={"password": SecretStr(SECRET + "-wrong")})
        journal = tmp_path / "j.jsonl"
        run = await run_fleet([hosts[0], wrong], playbooks, RunOptions(timeout=10, journal=journal))
    statuses = sorted(h.status for h in run.hosts)
    assert statuses == sorted([HostStatus.COMPLIANT, HostStatus.AUTH_FAILED])
    text = caplog.text + journal.read_text() + run.model_dump_json()
    assert caplog.records  # the libraries did log at DEBUG
    assert SECRET not in text
    assert "TlRMTVNT" not in text  # base64 of "NTLMSSP": no NTLM message in any log line
    from spnego._ntlm_raw.crypto import ntowfv1

    assert ntowfv1(SECRET).hex() not in text.lower()  # nor the NT hash the native client keeps in memory
