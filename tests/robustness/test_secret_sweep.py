"""A sentinel password, swept for in every byte a run produces: files, logs and the wire on loopback.

Each transport's traffic passes through a recording relay; the run writes a journal, saved
facts, every report format and the history; every logger is at DEBUG. The sentinel must not
appear in any of them as plain text, UTF-16LE, base64 (at any offset, also of UTF-16LE, and as
a Basic header) or as its NT hash (raw or hex).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from fleetcheck.api import ReportSpec, write_reports
from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.reports.base import WRITERS, ReportContext
from fleetcheck.results import HostStatus
from fleetcheck.runner import RunOptions, run_fleet
from robustness.wire import Relay, secret_forms

SENTINEL = "Zq9-sentinel-Pw!"


def _leaks(blob: bytes, username: str) -> list[str]:
    return [name for name, form in secret_forms(SENTINEL, username) if form and form in blob]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("transport", ["pypsrp", "psrp-native", "winrm", "ssh", "winrm-basic-http"])
async def test_secret_sweep(
    transport: str, tmp_path: Path, playbooks: Sequence[Any], fleet_hosts: Callable[..., list[Host]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    relays: list[Relay] = []
    async with LabFleet(hosts=2, ssh=transport == "ssh", password=SENTINEL, seed=9, addressing="ports") as fleet:
        base = {"pypsrp": "psrp", "psrp-native": "psrp", "winrm-basic-http": "winrm"}.get(transport, transport)
        hosts = fleet_hosts(fleet, tmp_path, base)
        routed: list[Host] = []
        for host in hosts:
            relay = await Relay(host.effective_port).start()
            relays.append(relay)
            update: dict[str, Any] = {"port": relay.port}
            if base == "psrp":  # named: the default client is native
                update["psrp_client"] = "native" if transport == "psrp-native" else "pypsrp"
            if transport == "winrm-basic-http":  # what used to send the password in clear
                update.update(auth="basic", scheme="http")
            if transport == "ssh":
                update["ssh_known_hosts"] = "accept"  # the relay's port is not in known_hosts
            routed.append(host.model_copy(update=update))
        routed[1] = routed[1].model_copy(update={"password": SecretStr(SENTINEL + "-wrong")})
        out = tmp_path / "out"
        opts = RunOptions(timeout=15, journal=out / "journal.jsonl", save_facts=out / "facts")
        run = await run_fleet(routed, playbooks, opts)
        specs = [ReportSpec(fmt, out / f"report.{fmt}") for fmt in sorted(WRITERS)]
        assert write_reports(run, specs, ReportContext()) == []
        for relay in relays:
            await relay.stop()
    expected = [HostStatus.AUTH_FAILED] * 2 if transport == "winrm-basic-http" else [HostStatus.COMPLIANT, HostStatus.AUTH_FAILED]
    assert sorted(h.status for h in run.hosts) == sorted(expected), run.hosts
    username = hosts[0].username or ""
    files = {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(files) >= len(WRITERS) + 1  # reports and the journal (and facts of checked hosts)
    found = {name: _leaks(blob, username) for name, blob in files.items()}
    found["logs"] = _leaks(caplog.text.encode("utf-8", "surrogatepass"), username)
    found["wire"] = _leaks(bytes(b"".join(bytes(r.captured) for r in relays)), username)
    if transport != "winrm-basic-http":
        assert sum(len(r.captured) for r in relays) > 10_000  # the relays did carry the sessions
    assert not any(found.values()), {k: v for k, v in found.items() if v}
