"""The fleetcheck inventory for a running lab fleet, written as an admin would write one.

Settings go once under `vars`, hosts list only what differs (address, a non-standard port);
the password is named by environment variable and never written; HTTPS gets the lab CA in a
file next to the inventory and SSH a known_hosts file, so clients keep verification on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from fleetcheck.lab.fleetmodel import PASSWORD_ENV, STANDARD_PORTS, FleetConfigError, FleetHost


@dataclass(frozen=True)
class InventoryRequest:
    """How the inventory should reach the fleet, checked against what the fleet serves."""

    transport: Literal["psrp", "winrm", "ssh"]
    scheme: Literal["http", "https"]
    auth: str | None
    username: str


def write_known_hosts(hosts: Iterable[FleetHost], path: Path) -> Path:
    """The lab's SSH host key for every host, so clients can keep host-key checking on."""
    from fleetcheck.lab.ssh import known_hosts_line

    lines = [
        known_hosts_line(h.address, h.ssh_port, (h.name.lower(),) if h.ssh_port == 22 else ())
        for h in hosts
        if h.ssh_port is not None
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _vars(req: InventoryRequest) -> tuple[dict[str, Any], int]:
    """The inventory's top-level vars and the port every host has unless it says otherwise."""
    top: dict[str, Any] = {"transport": req.transport}
    if req.transport == "ssh":
        top["auth"] = req.auth or "password"
        default_port = STANDARD_PORTS["ssh"]
    else:
        top["scheme"] = req.scheme
        top["auth"] = req.auth or "negotiate"
        default_port = STANDARD_PORTS[req.scheme]
    top["username"] = req.username
    top["password_env"] = PASSWORD_ENV
    return top, default_port


def _host_entries(hosts: Iterable[FleetHost], req: InventoryRequest, default_port: int) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    for h in hosts:
        if req.transport == "ssh":
            port = h.ssh_port
        else:
            port = h.https_port if req.scheme == "https" else h.http_port
        entry: dict[str, Any] = {"address": h.address}
        if port != default_port:
            entry["port"] = port
        entries[h.name] = entry
    return entries


def write_inventory(
    path: Path, hosts: list[FleetHost], req: InventoryRequest, *, ca_pem: bytes | None, serves_ssh: bool
) -> Path:
    """Write a native inventory for `hosts` (one flow-style line per host: 10,000 hosts stay readable)."""
    if req.scheme == "https" and ca_pem is None:
        raise FleetConfigError("this fleet serves no HTTPS (start it with https=True / --https)")
    if req.transport == "ssh" and not serves_ssh:
        raise FleetConfigError("this fleet serves no SSH (start it with ssh=True / --ssh)")
    path.parent.mkdir(parents=True, exist_ok=True)
    top, default_port = _vars(req)
    if req.transport == "ssh":
        known = write_known_hosts(hosts, path.with_name(path.stem + "-known_hosts"))
        top["ssh_known_hosts"] = str(known.resolve())
    elif req.scheme == "https":
        assert ca_pem is not None
        ca_path = path.with_name(path.stem + "-ca.pem")
        ca_path.write_bytes(ca_pem)
        top["cert_validation"] = True
        top["ca_path"] = str(ca_path.resolve())
    entries = _host_entries(hosts, req, default_port)
    header = (
        "# Simulated Windows fleet written by `fleetcheck lab serve` (not real servers).\n"
        f"# {len(entries)} hosts; the password is read from ${PASSWORD_ENV}.\n"
    )
    body = yaml.safe_dump({"vars": top}, sort_keys=False, default_flow_style=False)
    body += "hosts:\n" + "".join(
        f"  {name}: {yaml.safe_dump(entry, default_flow_style=True, width=200).strip()}\n"
        for name, entry in entries.items()
    )
    path.write_text(header + body, encoding="utf-8")
    return path
