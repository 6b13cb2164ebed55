"""Shared helpers for the WinRM lab tests: a lab host on a loopback port, real clients in threads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pypsrp.wsman import WSMan

from fleetcheck.lab.host import FaultSpec, LabHost
from fleetcheck.lab.hostserver import close_shells, start_winrm_listener, stop_listener
from fleetcheck.lab.machine import LabUser, MachineState, WinRMSettings
from fleetcheck.lab.tls import LabTLS

USER = "fleetcheck"
PASSWORD = "Lab-Passw0rd!"
_T = TypeVar("_T")


@dataclass
class Endpoint:
    host: LabHost
    address: str
    port: int
    https: bool
    ca_path: str | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.address}:{self.port}/wsman"

    def wsman(self, *, auth: str = "ntlm", password: str = PASSWORD, **kwargs: Any) -> WSMan:
        """A pypsrp WSMan with short timeouts and no reconnection retries (tests stay quick)."""
        options: dict[str, Any] = {"read_timeout": 10, "operation_timeout": 5, "reconnection_retries": 0}
        options.update(kwargs)
        return WSMan(
            self.address,
            port=self.port,
            ssl=self.https,
            username=USER,
            password=password,
            auth=auth,
            cert_validation=self.ca_path if self.https else False,  # type: ignore[arg-type]  # a CA path works too
            **options,
        )


def make_host(
    name: str = "srv01",
    *,
    faults: list[FaultSpec] | None = None,
    winrm: dict[str, Any] | None = None,
    users: list[LabUser] | None = None,
    **machine: Any,
) -> LabHost:
    state = MachineState(
        hostname=name.upper(),
        winrm=WinRMSettings(**(winrm or {})),
        users=users or [LabUser(name=USER, password=PASSWORD)],
        **machine,
    )
    return LabHost(name=name, machine=state, faults=faults or [])


@contextlib.asynccontextmanager
async def serve(
    host: LabHost,
    *,
    https: bool = False,
    tls: LabTLS | None = None,
    tmp_path: Path | None = None,
    bad_cert: str | None = None,
) -> AsyncIterator[Endpoint]:
    """Run `host` on 127.0.0.1:<free port>; HTTPS with a trustme CA when asked."""
    ctx = der = None
    ca_path = None
    if https:
        tls = tls or LabTLS()
        if bad_cert:
            ctx, der = tls.bad_cert_context("127.0.0.1", kind=bad_cert)
        else:
            ctx, der = tls.server_context("127.0.0.1")
        assert tmp_path is not None
        ca_path = str(tls.write_ca(tmp_path / "lab-ca.pem"))
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
