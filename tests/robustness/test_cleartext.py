"""No transport sends a password in clear: Basic over HTTP is refused before any byte is sent."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading

import pytest
from pydantic import SecretStr

from fleetcheck.errors import AuthRejected
from fleetcheck.transports.errors import cleartext_auth
from fleetcheck.transports.psrp import PsrpTransport
from fleetcheck.transports.psrp_client.transport import NativePsrpTransport
from fleetcheck.transports.target import PsrpSettings, Target, WinrmSettings
from fleetcheck.transports.winrm import WinrmTransport


class _Listener:
    """Accepts connections on loopback and records every byte sent to it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(1)
            with contextlib.suppress(OSError):
                self.received += conn.recv(65536)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.mark.parametrize("client", ["winrm", "pypsrp", "native"])
def test_basic_over_http_is_refused_by_every_wsman_transport(client: str) -> None:
    listener = _Listener()
    try:
        common = {"scheme": "http", "port": listener.port, "auth": "basic", "username": "u",
                  "password": SecretStr("Sentinel-Pw1")}
        settings = WinrmSettings(**common) if client == "winrm" else PsrpSettings(client=client, **common)
        target = Target(name="h", address="127.0.0.1", settings=settings, timeout=5)
        transport = {"winrm": WinrmTransport, "pypsrp": PsrpTransport, "native": NativePsrpTransport}[client]()
        with pytest.raises(AuthRejected) as caught:
            asyncio.run(transport.run(target, "Write-Output 1", "{}", timeout=5))
    finally:
        listener.close()
    assert caught.value.message == cleartext_auth("basic").message
    assert b"Authorization" not in listener.received
