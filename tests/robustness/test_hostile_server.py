"""Every WinRM client against a hostile endpoint: each host ends within its deadline + 1 s, memory bounded."""

from __future__ import annotations

import asyncio
import resource
import time

import pytest
from pydantic import SecretStr

from fleetcheck.errors import HostError
from fleetcheck.transports.psrp import PsrpTransport
from fleetcheck.transports.psrp_client.transport import NativePsrpTransport
from fleetcheck.transports.target import PsrpSettings, Target, WinrmSettings
from fleetcheck.transports.winrm import WinrmTransport
from robustness.hostile_http import MODES, hostile_server

DEADLINE = 2.5
MEMORY_CEILING_MB = 200
CLIENTS = ("pypsrp", "winrm", "native")


def _target(client: str, port: int) -> Target:
    common = {"scheme": "http", "port": port, "auth": "ntlm", "username": "lab", "password": SecretStr("Sentinel-Pw1")}
    settings = WinrmSettings(**common) if client == "winrm" else PsrpSettings(client=client, **common)
    return Target(name="hostile", address="127.0.0.1", settings=settings, timeout=DEADLINE)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _run(client: str, port: int) -> HostError:
    target = _target(client, port)
    transport = WinrmTransport() if client == "winrm" else (
        PsrpTransport() if client == "pypsrp" else NativePsrpTransport()
    )
    with pytest.raises(HostError) as caught:
        await asyncio.wait_for(transport.run(target, "Write-Output 1", "{}", timeout=DEADLINE), DEADLINE + 30)
    return caught.value


@pytest.mark.timeout(60)
@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("mode", sorted(MODES))
def test_hostile_endpoint_ends_the_host_within_its_deadline(client: str, mode: str) -> None:
    with hostile_server(mode) as port:
        before = _peak_rss_mb()
        started = time.monotonic()
        error = asyncio.run(_run(client, port))
        elapsed = time.monotonic() - started
        grown = _peak_rss_mb() - before
    assert elapsed < DEADLINE + 1.0, f"{mode}/{client}: {elapsed:.1f} s ({error.status} {error.message})"
    assert grown < MEMORY_CEILING_MB, f"{mode}/{client}: peak RSS grew {grown:.0f} MB"
    assert error.message
    print(f"{mode}/{client}: {elapsed:.2f} s, +{grown:.0f} MB, {error.status}: {error.message}")
