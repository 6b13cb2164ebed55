"""Helpers for the Kerberos tests: a domain-joined lab host on a loopback port, and real clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fleetcheck.lab.host import LabHost
from fleetcheck.lab.hostserver import close_shells, start_winrm_listener, stop_listener
from fleetcheck.lab.kdc import DOMAIN, REALM, LabRealm
from fleetcheck.lab.machine import LabUser, MachineState, WinRMSettings
from fleetcheck.lab.tls import LabTLS

USER = "alice"
PASSWORD = "Alice-Passw0rd!"
LOCAL_USER = "fleetcheck"
LOCAL_PASSWORD = "Lab-Passw0rd!"
_T = TypeVar("_T")


def fqdn(name: str) -> str:
    return f"{name.lower()}.{DOMAIN}"


def domain_host(realm: LabRealm | None, name: str, *, spn: bool = True, **winrm: Any) -> LabHost:
    """A lab host with the domain user alice and the local user fleetcheck; joined when `realm`."""
    state = MachineState(
        hostname=name.upper(),
        domain=DOMAIN,
        winrm=WinRMSettings(**winrm),
        users=[LabUser(name=USER, password=PASSWORD, domain=REALM), LabUser(name=LOCAL_USER, password=LOCAL_PASSWORD)],
    )
    host = LabHost(name=name, machine=state)
    if realm is not None:
        host.kerberos_keytab = realm.keytabs.get(fqdn(name)) or (realm.add_host(fqdn(name)) if spn else None)
    return host


@dataclass
class Endpoint:
    host: LabHost
    address: str
    port: int
    https: bool
    ca_path: str | None = None

    @property
    def fqdn(self) -> str:
        return fqdn(self.host.name)

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.address}:{self.port}/wsman"


@contextlib.asynccontextmanager
async def serve(host: LabHost, *, https: bool = False, tmp_path: Path | None = None) -> AsyncIterator[Endpoint]:
    """Run `host` on 127.0.0.1:<free port>; HTTPS with a trustme CA (valid for the IP and the FQDN)."""
    ctx = der = None
    ca_path = None
    if https:
        tls = LabTLS()
        ctx, der = tls.server_context("127.0.0.1", fqdn(host.name))
        assert tmp_path is not None
        ca_path = str(tls.write_ca(tmp_path / f"{host.name}-ca.pem"))
    server = await start_winrm_listener(host, "127.0.0.1", 0, tls=ctx, cert_der=der)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Endpoint(host, "127.0.0.1", port, https, ca_path)
    finally:
        await stop_listener(server)
        close_shells(host)


async def in_thread(func: Callable[..., _T], *args: Any) -> _T:
    """Run a blocking client call while the lab keeps serving on this loop."""
    return await asyncio.to_thread(func, *args)
