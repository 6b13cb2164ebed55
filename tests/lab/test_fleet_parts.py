"""The fleet's parts on their own: address hunting, refused hosts, latency rules, the inventory file."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fleetcheck.errors import UserError
from fleetcheck.lab.addressing import AddressHunter, loopback_address
from fleetcheck.lab.faultgrammar import WSMAN_ACTIONS, latency_rules
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.lab.fleetmodel import STANDARD_PORTS, FleetConfigError, FleetHost
from fleetcheck.lab.host import LabHost
from fleetcheck.lab.inventoryfile import InventoryRequest, write_inventory
from fleetcheck.lab.machine import MachineState

FAR = 60_000  # 127.0.237.x: far from the 127.0.1.x addresses other fleets start from


def _hold(address: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((address, port))
    except OSError as exc:
        s.close()
        pytest.skip(f"cannot bind {address}:{port} here ({exc})")
    return s


def test_hunter_skips_an_address_whose_standard_port_is_taken() -> None:
    held = _hold(loopback_address(FAR), STANDARD_PORTS["http"])
    try:
        hunter = AddressHunter(FAR, ["http"])
        address = hunter.next(keep=False)
        assert address != loopback_address(FAR)
        assert hunter.cursor > FAR + 1
    finally:
        held.close()


def test_refused_ports_are_bound_but_refuse_connections() -> None:
    hunter = AddressHunter(FAR, ["http", "ssh"])
    ports = hunter.refused_ports("127.0.0.1")
    try:
        assert set(ports) == {"http", "ssh"} and len(set(ports.values())) == 2
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", ports["http"]), timeout=2).close()
    finally:
        hunter.release()
    assert hunter.reserved == []


def test_detached_host_drops_the_live_lab_only() -> None:
    host = FleetHost("LAB-0001", "healthy-2019", "127.0.1.1", 5985, 5986, None, False, 1, lab=LabHost("h", MachineState()))
    plain = host.detached()
    assert plain.lab is None and plain == host  # `lab` takes no part in equality


def test_latency_applies_per_wsman_action_and_auth_leg_after_the_users_rules() -> None:
    assert latency_rules(0) == []
    rules = latency_rules(250)
    assert [r.spec.on for r in rules] == [*WSMAN_ACTIONS, "auth"]
    assert {r.spec.value for r in rules} == {0.25} and {r.target for r in rules} == {"*"}
    fleet = LabFleet(2, faults="LAB-0001:latency=2@Receive", latency_ms=250)
    assert fleet.rules[0].target == "LAB-0001" and len(fleet.rules) == 2 + len(WSMAN_ACTIONS)


def test_fleet_config_errors_are_user_errors() -> None:
    with pytest.raises(UserError, match="at least one host"):
        LabFleet(0)


def test_inventory_refuses_what_the_fleet_does_not_serve(tmp_path: Path) -> None:
    hosts = [FleetHost("LAB-0001", "healthy-2019", "127.0.0.1", 20001, 20002)]
    https = InventoryRequest("psrp", "https", None, "fleetcheck")
    with pytest.raises(FleetConfigError, match="no HTTPS"):
        write_inventory(tmp_path / "a.yml", hosts, https, ca_pem=None, serves_ssh=False)
    ssh = InventoryRequest("ssh", "http", None, "fleetcheck")
    with pytest.raises(FleetConfigError, match="no SSH"):
        write_inventory(tmp_path / "b.yml", hosts, ssh, ca_pem=None, serves_ssh=False)
    assert list(tmp_path.iterdir()) == []


def test_inventory_lists_only_ports_that_differ(tmp_path: Path) -> None:
    hosts = [
        FleetHost("LAB-0001", "healthy-2019", "127.0.1.1", 5985, 5986),
        FleetHost("LAB-0002", "healthy-2019", "127.0.0.1", 20003, 20004),
    ]
    req = InventoryRequest("winrm", "https", "ntlm", "fleetcheck")
    path = write_inventory(tmp_path / "inv.yml", hosts, req, ca_pem=b"PEM", serves_ssh=False)
    text = path.read_text(encoding="utf-8")
    assert "  LAB-0001: {address: 127.0.1.1}\n" in text
    assert "  LAB-0002: {address: 127.0.0.1, port: 20004}\n" in text
    assert (tmp_path / "inv-ca.pem").read_bytes() == b"PEM" and "auth: ntlm" in text
