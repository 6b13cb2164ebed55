"""Where lab hosts listen: one loopback address each with the standard ports, or 127.0.0.1 with
ports of their own when extra addresses or low ports are not available.

Own addresses make the inventory look like a real one (every host on 5985/5986/22), which is
what the product's defaults assume; the ports fallback keeps the lab usable in containers and
on systems where 127.0.1.x is not routed or port 22 is held by a real sshd on every address.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Sequence
from typing import Protocol

from fleetcheck.lab.fleetmodel import STANDARD_PORTS, Addressing, FleetConfigError

#: Addresses tried for one host before giving up (others may be held by a parallel fleet,
#: e.g. the first 5,000 of a 10,000-host bench lab served by two processes).
HUNT_LIMIT = 32768


def loopback_address(index: int) -> str:
    """The index-th host address: 127.0.1.1, ... 127.0.1.254, 127.0.2.1, ... (no .0 or .255)."""
    block, offset = divmod(index, 254)
    block += 1
    if block > 0xFFFF:
        raise FleetConfigError("out of loopback addresses")
    return f"127.{block >> 8}.{block & 0xFF}.{offset + 1}"


class Listener(Protocol):
    """What asyncio's Server and asyncssh's SSHAcceptor both offer."""

    @property
    def sockets(self) -> Sequence[object | None] | None: ...

    def close(self) -> None: ...


def require_listening(listener: Listener, address: str, port: int) -> None:
    """Close `listener` and raise EADDRINUSE when it holds no live socket.

    Two processes may bind one address at once (SO_REUSEADDR, neither listening yet); the
    second to call listen() fails. asyncio raises that error; uvloop passes it to the loop's
    exception handler and closes the listener, which then reports no socket. Either way the
    caller moves on to the next address, as after a failed bind.
    """
    sockets = listener.sockets
    if not sockets or any(sock is None for sock in sockets):
        listener.close()
        raise OSError(errno.EADDRINUSE, f"{address}:{port} was taken by another process before it could listen")


def detect_addressing(requested: Addressing, endpoints: list[str]) -> Addressing:
    """loopback-ips when extra loopback addresses work and the standard ports can be bound
    there (not privileged for us, not held by a wildcard listener such as a real sshd)."""
    if requested != "auto":
        return requested
    probes: list[socket.socket] = []
    try:
        for kind in endpoints:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(probe)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.2", STANDARD_PORTS[kind]))  # below the fleets' 127.0.1.x range
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probes.append(other)
        other.bind((loopback_address(0), 0))
    except OSError:
        return "ports"
    finally:
        for probe in probes:
            probe.close()
    return "loopback-ips"


class AddressHunter:
    """Hands out loopback addresses whose standard ports are all free, from `first` upward.

    Parallel fleets (pytest -n 2) start from the same index; an address held by another fleet
    is skipped. Sockets kept for refused hosts stay bound (never listened), so a connection
    gets RST, the same as a real server with no WinRM listener.
    """

    def __init__(self, first: int, endpoints: list[str]) -> None:
        self.cursor = first
        self.endpoints = endpoints
        self.reserved: list[socket.socket] = []

    def _try_bind(self, address: str, keep: bool) -> list[socket.socket]:
        socks: list[socket.socket] = []
        try:
            for kind in self.endpoints:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                if not keep:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((address, STANDARD_PORTS[kind]))
        except OSError:
            for s in socks:
                s.close()
            raise
        return socks

    def next(self, keep: bool) -> str:
        """Next free address (its ports kept bound, unlistened, when `keep`)."""
        for _ in range(HUNT_LIMIT):
            address = loopback_address(self.cursor)
            self.cursor += 1
            try:
                socks = self._try_bind(address, keep)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            if keep:
                self.reserved += socks
            else:
                for s in socks:
                    s.close()
            return address
        raise OSError(errno.EADDRINUSE, "no free loopback address found for a lab host")

    def refused_ports(self, address: str) -> dict[str, int]:
        """A bound, never-listened port per endpoint on `address` (ports addressing)."""
        ports: dict[str, int] = {}
        for kind in self.endpoints:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((address, 0))
            self.reserved.append(s)
            ports[kind] = s.getsockname()[1]
        return ports

    def release(self) -> None:
        """Close every reserved socket (the fleet is stopping)."""
        for s in self.reserved:
            with contextlib.suppress(OSError):
                s.close()
        self.reserved = []
