"""LabFleet: planning (pure), then real fleets on loopback driven by the unmodified pypsrp client."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from pypsrp.client import Client

from fleetcheck.lab.fleet import (
    DEFAULT_PASSWORD,
    PASSWORD_ENV,
    FleetConfigError,
    FleetHost,
    LabFleet,
    apportion,
    loopback_address,
    parse_fault_rule,
    parse_faults,
    parse_mix,
    plan_scenarios,
)

# --- pure planning ---------------------------------------------------------------------------


def test_fault_grammar_full_rule() -> None:
    rule = parse_fault_rule("LAB-00*:http500=2150859173@Create#2%0.5")
    assert rule.target == "LAB-00*"
    assert (rule.spec.kind, rule.spec.code, rule.spec.on, rule.spec.nth, rule.spec.probability) == (
        "http500",
        2150859173,
        "Create",
        2,
        0.5,
    )
    assert rule.applies_to("lab-0042") and not rule.applies_to("LAB-1000")


def test_fault_grammar_list_and_values() -> None:
    rules = parse_faults(
        "LAB-0003:hang@receive, LAB-0004:refuse,*:latency=0.05,LAB-0009:bad_json@script/services"
    )
    assert [(r.target, r.spec.kind, r.spec.on) for r in rules] == [
        ("LAB-0003", "hang", "Receive"),
        ("LAB-0004", "refuse", "*"),
        ("*", "latency", "*"),
        ("LAB-0009", "bad_json", "script"),
    ]
    assert rules[2].spec.value == 0.05
    assert rules[3].spec.probe == "services"
    assert parse_fault_rule("X:tls_bad_cert=untrusted").spec.value == 1.0
    assert parse_fault_rule("X:probe_throw").spec.kind == "probe_throws"


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("LAB-0001", "expected TARGET:KIND"),
        ("LAB-0001:explode", "unknown kind 'explode'"),
        ("LAB-0001:latency=fast", "could not convert"),
        ("LAB-0001:hang#0", "#NTH counts from 1"),
        ("LAB-0001:hang%2", "between 0 and 1"),
        ("LAB-0001:hang@Receive@Send", "given twice"),
        ("LAB-0001:hang@Recieve", "@ON must be one of"),
    ],
)
def test_fault_grammar_errors_name_the_rule(spec: str, needle: str) -> None:
    with pytest.raises(FleetConfigError) as info:
        parse_faults(spec)
    assert needle in str(info.value)
    assert "LAB-0001" in str(info.value)


def test_mix_is_exact_and_deterministic() -> None:
    assert parse_mix("healthy-2019=80, wsb-missing=5,x") == {"healthy-2019": 80, "wsb-missing": 5, "x": 1}
    with pytest.raises(FleetConfigError, match="whole number"):
        parse_mix("a=lots")
    assert apportion(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    plan = plan_scenarios(85, {"healthy-2019": 80, "wsb-missing": 5}, seed=7)
    assert plan.count("wsb-missing") == 5 and len(plan) == 85
    assert plan == plan_scenarios(85, {"healthy-2019": 80, "wsb-missing": 5}, seed=7)
    assert plan != plan_scenarios(85, {"healthy-2019": 80, "wsb-missing": 5}, seed=8)


def test_loopback_addresses_skip_network_and_broadcast_octets() -> None:
    assert loopback_address(0) == "127.0.1.1"
    assert loopback_address(253) == "127.0.1.254"
    assert loopback_address(254) == "127.0.2.1"
    assert loopback_address(254 * 255) == "127.1.0.1"


# --- real fleets -------------------------------------------------------------------------


def _hostname_over_psrp(
    host: FleetHost, password: str, *, https: bool = False, ca: Path | None = None
) -> str:
    port = host.https_port if https else host.http_port
    client = Client(
        host.address,
        port=port,
        ssl=https,
        username="fleetcheck",
        password=password,
        auth="negotiate",
        cert_validation=str(ca) if ca else True,
        read_timeout=10,
        connection_timeout=5,
        reconnection_retries=0,
    )
    output, _streams, had_errors = client.execute_ps("hostname")
    assert not had_errors
    return str(output)


async def _hostname_over_ssh(host: FleetHost, known_hosts: Path) -> str:
    import asyncssh

    from fleetcheck.transports.bootstrap import bootstrap_command_line, bootstrap_stdin

    assert host.ssh_port is not None
    async with asyncssh.connect(
        host.address, host.ssh_port, username="fleetcheck", password=DEFAULT_PASSWORD,
        known_hosts=str(known_hosts), client_keys=None,
    ) as conn:  # fmt: skip
        result = await conn.run(
            bootstrap_command_line(), input=bootstrap_stdin("hostname", "{}").decode(), check=True
        )
    return str(result.stdout).strip()


async def test_fleet_on_loopback_ips_serves_each_host_and_writes_inventory(tmp_path: Path) -> None:
    async with LabFleet(hosts=3, addressing="loopback-ips", password="S3cret-for-test") as fleet:
        assert sorted(fleet.hosts) == ["LAB-0001", "LAB-0002", "LAB-0003"]
        addresses = {h.address for h in fleet.hosts.values()}
        assert len(addresses) == 3 and all(a.startswith("127.") and a != "127.0.0.1" for a in addresses)
        assert {h.http_port for h in fleet.hosts.values()} == {5985}
        names = await asyncio.gather(
            *(asyncio.to_thread(_hostname_over_psrp, h, "S3cret-for-test") for h in fleet.hosts.values())
        )
        assert sorted(names) == ["LAB-0001", "LAB-0002", "LAB-0003"]
        assert fleet.counters.sessions == 3 and fleet.counters.open_shells == 0
        assert fleet.counters.peak_open_shells >= 1
        assert fleet.counters.requests >= 3 * 5
        inv = fleet.write_inventory(tmp_path / "lab.yml")
    text = inv.read_text()
    assert "S3cret-for-test" not in text
    data = yaml.safe_load(text)
    assert data["vars"]["password_env"] == PASSWORD_ENV
    assert data["vars"]["transport"] == "psrp"
    assert {name: entry["address"] for name, entry in data["hosts"].items()} == {
        h.name: h.address for h in fleet.hosts.values()
    }
    assert all("port" not in entry for entry in data["hosts"].values())
    # The project's own inventory loader accepts it.
    loader = pytest.importorskip("fleetcheck.inventory.loader")
    loaded = loader.load_inventory(inv)
    assert sorted(h.name for h in loaded.hosts) == ["LAB-0001", "LAB-0002", "LAB-0003"]
    assert all(h.password_env == PASSWORD_ENV for h in loaded.hosts)


async def test_fleet_ports_fallback_refused_host_and_faults(tmp_path: Path) -> None:
    async with LabFleet(
        hosts=3, addressing="ports", faults="LAB-0002:refuse,LAB-0003:http500=2150859173@Create"
    ) as fleet:
        hosts = fleet.hosts
        assert {h.address for h in hosts.values()} == {"127.0.0.1"}
        assert len({h.http_port for h in hosts.values()}) == 3
        assert hosts["LAB-0002"].refused
        assert await asyncio.to_thread(_hostname_over_psrp, hosts["LAB-0001"], DEFAULT_PASSWORD) == "LAB-0001"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", hosts["LAB-0002"].http_port), timeout=2).close()
        from pypsrp.exceptions import WSManFaultError

        with pytest.raises(WSManFaultError) as info:
            await asyncio.to_thread(_hostname_over_psrp, hosts["LAB-0003"], DEFAULT_PASSWORD)
        assert info.value.code == 2150859173
        data = yaml.safe_load(fleet.write_inventory(tmp_path / "inv.yml").read_text())
    assert data["hosts"]["LAB-0001"]["port"] == hosts["LAB-0001"].http_port
    # Stopped: nothing listens any more (an ephemeral port, so no other fleet took it over).
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", hosts["LAB-0001"].http_port), timeout=2).close()


async def test_https_and_ssh_inventories(tmp_path: Path) -> None:
    async with LabFleet(hosts=2, https=True, ssh=True, addressing="ports") as fleet:
        inv = fleet.write_inventory(tmp_path / "tls.yml")
        data = yaml.safe_load(inv.read_text())
        ca = Path(data["vars"]["ca_path"])
        assert data["vars"]["scheme"] == "https" and ca.read_bytes().startswith(b"-----BEGIN CERTIFICATE")
        host = fleet.hosts["LAB-0002"]
        assert (
            await asyncio.to_thread(_hostname_over_psrp, host, DEFAULT_PASSWORD, https=True, ca=ca)
            == "LAB-0002"
        )
        ssh = yaml.safe_load(fleet.write_inventory(tmp_path / "ssh.yml", transport="ssh").read_text())
        assert ssh["vars"]["transport"] == "ssh" and ssh["vars"]["auth"] == "password"
        assert ssh["hosts"]["LAB-0002"]["port"] == host.ssh_port
        assert await _hostname_over_ssh(host, Path(ssh["vars"]["ssh_known_hosts"])) == "LAB-0002"
    with pytest.raises(FleetConfigError):
        LabFleet(hosts=1).write_inventory(tmp_path / "x.yml", transport="ssh")


async def test_workers_share_exact_fleet_wide_peak(tmp_path: Path) -> None:
    faults = "*:slow_output=0.3@script"
    async with LabFleet(hosts=4, workers=2, addressing="ports", faults=faults, ssh=True) as fleet:
        assert len(fleet.pids) == 2
        known = Path(
            yaml.safe_load(fleet.write_inventory(tmp_path / "i.yml", transport="ssh").read_text())["vars"][
                "ssh_known_hosts"
            ]
        )
        # Both workers present the one host key the inventory's known_hosts file lists.
        assert await _hostname_over_ssh(fleet.hosts["LAB-0001"], known) == "LAB-0001"
        assert await _hostname_over_ssh(fleet.hosts["LAB-0004"], known) == "LAB-0004"
        fleet.reset_counters()
        assert {h.worker for h in fleet.hosts.values()} == {0, 1}
        one_per_worker = [fleet.hosts["LAB-0001"], fleet.hosts["LAB-0004"]]
        for host in one_per_worker:  # one after the other: never two shells at once
            await asyncio.to_thread(_hostname_over_psrp, host, DEFAULT_PASSWORD)
        counters = fleet.counters
        assert (counters.sessions, counters.peak_open_shells, counters.open_shells) == (2, 1, 0)
        fleet.reset_counters()
        assert fleet.counters.requests == 0
        await asyncio.gather(
            *(asyncio.to_thread(_hostname_over_psrp, h, DEFAULT_PASSWORD) for h in fleet.hosts.values())
        )
        counters = fleet.counters
        assert counters.sessions == 4
        assert counters.peak_open_shells >= 2  # sessions overlapped across both workers
        assert counters.requests >= 4 * 5


async def test_bad_certificate_fault_fails_tls_validation(tmp_path: Path) -> None:
    import requests

    async with LabFleet(hosts=2, https=True, addressing="ports", faults="LAB-0001:tls_bad_cert") as fleet:
        ca = Path(yaml.safe_load(fleet.write_inventory(tmp_path / "inv.yml").read_text())["vars"]["ca_path"])
        with pytest.raises(requests.exceptions.SSLError):
            await asyncio.to_thread(
                _hostname_over_psrp, fleet.hosts["LAB-0001"], DEFAULT_PASSWORD, https=True, ca=ca
            )
        good = await asyncio.to_thread(
            _hostname_over_psrp, fleet.hosts["LAB-0002"], DEFAULT_PASSWORD, https=True, ca=ca
        )
        assert good == "LAB-0002"


async def test_two_fleets_on_loopback_ips_never_share_an_address() -> None:
    async with (
        LabFleet(hosts=2, addressing="loopback-ips") as first,
        LabFleet(hosts=2, addressing="loopback-ips") as second,
    ):
        a = {h.address for h in first.hosts.values()}
        b = {h.address for h in second.hosts.values()}
        assert len(a) == 2 and len(b) == 2 and not a & b
        for fleet in (first, second):
            host = fleet.hosts["LAB-0002"]
            assert await asyncio.to_thread(_hostname_over_psrp, host, DEFAULT_PASSWORD) == "LAB-0002"


async def test_an_address_another_process_listens_on_first_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two labs starting at once may both bind an address; the second to listen() loses it.
    asyncio raises, uvloop closes the listener and leaves it without a socket (seen when two
    1,000-host labs started together). The race cannot be forced from one process, so the
    first listener is handed back closed, as uvloop leaves it: the host must move on to the
    next address and serve there."""
    real = asyncio.start_server
    addresses: list[str] = []

    async def start_server(*args: Any, **kwargs: Any) -> asyncio.Server:
        server = await real(*args, **kwargs)
        addresses.append(args[1])
        if len(addresses) == 1:
            server.close()
            await server.wait_closed()
        return server

    monkeypatch.setattr(asyncio, "start_server", start_server)
    async with LabFleet(hosts=1, addressing="loopback-ips") as fleet:
        host = fleet.hosts["LAB-0001"]
        assert len(addresses) == 2 and host.address == addresses[1] != addresses[0]
        assert await asyncio.to_thread(_hostname_over_psrp, host, DEFAULT_PASSWORD) == "LAB-0001"


async def test_latency_applies_to_every_wsman_request() -> None:
    import time

    async with LabFleet(hosts=1, addressing="ports", latency_ms=40) as fleet:
        started = time.perf_counter()
        await asyncio.to_thread(_hostname_over_psrp, fleet.hosts["LAB-0001"], DEFAULT_PASSWORD)
        elapsed = time.perf_counter() - started
        lab = fleet.hosts["LAB-0001"].lab
        assert lab is not None
        wsman_requests = sum(lab.requests_by_action.values())
        assert wsman_requests >= 5
        assert elapsed >= wsman_requests * 0.040 * 0.95


def test_host_specific_latency_wins_over_fleet_latency() -> None:
    fleet = LabFleet(hosts=2, latency_ms=20, faults="LAB-0002:latency=2@Receive")
    plans = {p.name: p.faults for p in fleet._plans()}
    receive = [f for f in plans["LAB-0002"] if f["kind"] == "latency" and f.get("on") == "Receive"]
    assert receive[0]["value"] == 2.0  # first match fires
    assert {f["on"] for f in plans["LAB-0001"]} == {"Create", "Command", "Send", "Receive", "Signal", "Delete", "Get", "auth"}


async def test_each_https_host_has_its_own_certificate(tmp_path: Path) -> None:
    import ssl

    async with LabFleet(hosts=2, https=True, addressing="loopback-ips") as fleet:
        ca = yaml.safe_load(fleet.write_inventory(tmp_path / "inv.yml").read_text())["vars"]["ca_path"]
        ctx = ssl.create_default_context(cafile=ca)
        for host in fleet.hosts.values():
            assert host.https_port is not None

            def peer_names(address: str = host.address, port: int = host.https_port) -> set[str]:
                with (
                    socket.create_connection((address, port), timeout=5) as raw,
                    ctx.wrap_socket(raw, server_hostname=address) as tls,
                ):
                    cert: Any = tls.getpeercert()
                return {str(entry[1]) for entry in cert["subjectAltName"]}

            assert await asyncio.to_thread(peer_names) == {host.address, host.name.lower()}
