"""The native client's HTTP layer, per-run caches and transport selection (loopback, no lab)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr
from pypsrp.exceptions import WinRMTransportError

from fleetcheck.errors import AuthRejected
from fleetcheck.inventory.model import Host
from fleetcheck.results import HostStatus
from fleetcheck.transports.errors import DeadlineExceeded, FailureContext, OutputTooLarge, classify
from fleetcheck.transports.psrp_native import (
    MAX_RESPONSE_BYTES,
    HttpConnection,
    NativePsrpTransport,
    _MessageCache,
)
from fleetcheck.transports.target import PsrpSettings, Target

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


async def _serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Any]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server, port = await _serve(handler)
        servers.append(server)
        return port

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    return head + await reader.readexactly(length)


async def test_keep_alive_chunked_and_connection_close(serve: Callable[[Handler], Any]) -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
        seen.append(await _read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    port = await serve(handler)
    conn = HttpConnection("127.0.0.1", port, None)
    await conn.connect(2)
    first = await conn.request(b"hello", {"X-Test": "1"}, 2)
    assert (first.status, first.body, conn.reusable) == (200, b"abc", True)
    second = await conn.request(b"", {}, 2)
    assert (second.body, conn.reusable) == (b"def", False)  # the host said close: reconnect (and re-auth) next
    assert seen[0].startswith(b"POST /wsman HTTP/1.1\r\n") and b"Content-Length: 5" in seen[0]
    assert seen[0].endswith(b"\r\n\r\nhello") and b"X-Test: 1" in seen[0]
    conn.close()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"", ConnectionResetError),  # closed before answering
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", ConnectionResetError),  # cut mid-body
        (b"SSH-2.0-OpenSSH\r\n\r\n", WinRMTransportError),  # not HTTP
        (f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_RESPONSE_BYTES + 1}\r\n\r\n".encode(), OutputTooLarge),
    ],
)
async def test_broken_answers(serve: Callable[[Handler], Any], answer: bytes, error: type[BaseException]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    port = await serve(handler)
    conn = HttpConnection("127.0.0.1", port, None)
    await conn.connect(2)
    with pytest.raises(error):
        await conn.request(b"x", {}, 2)
    conn.close()


async def test_silent_host_times_out(serve: Callable[[Handler], Any]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    port = await serve(handler)
    conn = HttpConnection("127.0.0.1", port, None)
    await conn.connect(2)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(DeadlineExceeded):
        await conn.request(b"x", {}, 0.3)
    assert loop.time() - t0 < 1.0
    conn.close()


def _host(**kw: Any) -> Host:
    base: dict[str, Any] = {"name": "h", "address": "127.0.0.1", "scheme": "http", "username": "u", "password": SecretStr("Passw0rd!")}
    return Host(**{**base, **kw})


def _target(**kw: Any) -> Target:
    return _host(**kw).to_target()


def _settings(**kw: Any) -> PsrpSettings:
    settings = _target(**kw).settings
    assert isinstance(settings, PsrpSettings)
    return settings


async def test_http_500_with_fault_and_without(serve: Callable[[Handler], Any]) -> None:
    """A 500 with a SOAP fault raises pypsrp's WSManFaultError (by code); garbage keeps the HTTP code."""
    fault_xml = (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        b'xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"><s:Body><s:Fault><s:Detail>'
        b'<f:WSManFault Code="2147943418"><f:Message>marked for deletion</f:Message></f:WSManFault>'
        b"</s:Detail></s:Fault></s:Body></s:Envelope>"
    )
    answers = [fault_xml, b"Server Error"]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            await _read_request(reader)
            body = answers.pop(0)
            writer.write(b"HTTP/1.1 500 Error\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()

    port = await serve(handler)
    t = NativePsrpTransport()
    # basic: no 401 dance, straight to the request
    from fleetcheck.transports.base import Budget
    from fleetcheck.transports.psrp_native import WSManSession
    from fleetcheck.transports.wsman_client import ACTION_CREATE

    auth = t._auth(_settings(scheme="https", auth="basic", port=port))
    assert auth is not None
    session = WSManSession(_target(auth="basic", port=port), auth, None, Budget(5))
    with pytest.raises(Exception) as fault:
        await session.post(session.envelope(ACTION_CREATE))
    with pytest.raises(WinRMTransportError) as plain:
        await session.post(session.envelope(ACTION_CREATE))
    session.close()
    assert classify(fault.value).error_type == "wsman_800703FA"
    assert plain.value.code == 500 and classify(plain.value).status is HostStatus.PROTOCOL_ERROR


def test_nt_hash_computed_once_per_password() -> None:
    t = NativePsrpTransport()
    a = t._auth(_settings(auth="ntlm"))  # negotiate goes to pypsrp where gssapi is installed
    b = t._auth(_settings(auth="ntlm", name="other"))
    assert a is not None and b is not None
    # MS-NLMP's test vector: NTOWFv1("Password") = a4f49c406510bdcab6824ee7c30fd852
    assert t._ntlm_secret("Password").endswith(":a4f49c406510bdcab6824ee7c30fd852")
    assert a.password == b.password and "Passw0rd!" not in a.password
    assert len(t._hashes) == 2  # "Passw0rd!" and "Password": one entry each, however many hosts


def test_basic_over_http_refused_like_pypsrp() -> None:
    with pytest.raises(AuthRejected) as exc:
        NativePsrpTransport()._auth(_settings(auth="basic"))
    assert exc.value.error_type == "auth_config"
    assert exc.value.message == classify(ValueError(
        "Cannot use message encryption with auth 'basic', either set encryption='never', use ssl=True "
        "or use one of the following auth providers: credssp, kerberos, negotiate, ntlm"
    ), FailureContext(auth="basic")).message  # the same sentence pypsrp's refusal maps to


def test_kerberos_and_friends_go_to_pypsrp() -> None:
    assert NativePsrpTransport()._auth(_settings(auth="kerberos")) is None
    assert NativePsrpTransport()._auth(_settings(auth="credssp")) is None


def test_messages_serialized_once_and_decodable() -> None:
    from psrpcore._crypto import PSRemotingCrypto
    from psrpcore.types import deserialize

    cache = _MessageCache()
    assert cache.open_messages() is cache.open_messages()
    types = [t for t, _ in cache.open_messages()]
    assert types == [0x00010002, 0x00010004]
    body = cache.create_pipeline("Write-Output $ArgsJson", '{"a": "<&>"}', True)
    assert cache.create_pipeline("Write-Output $ArgsJson", '{"a": "<&>"}', True) is body
    legacy = cache.create_pipeline("Write-Output $ArgsJson", '{"a": "<&>"}', False)
    assert b"MergeError" in body and b"MergeError" not in legacy  # protocol 2.1 hosts get the old shape
    obj: Any = deserialize(ET.fromstring(body), PSRemotingCrypto())
    cmd = obj.PowerShell.Cmds[0]
    assert cmd.Cmd == "Write-Output $ArgsJson" and cmd.IsScript
    assert [(a.N, a.V) for a in cmd.Args] == [("ArgsJson", '{"a": "<&>"}')]


def test_run_option_and_inventory_select_the_client() -> None:
    from fleetcheck.playbook import load_playbook
    from fleetcheck.runner import RunOptions, _Fleet, build_plan
    from fleetcheck.transports import transport_name
    from fleetcheck.transports.psrp import PsrpTransport
    from fleetcheck.transports.winrm import WinrmTransport

    plan = build_plan([load_playbook("system-state-backup")])
    pyp = _target()
    nat = _target(psrp_client="native")
    fleet = _Fleet([pyp, nat], [], plan, RunOptions())
    assert [transport_name(h) for h in (pyp, nat)] == ["psrp", "psrp:native"]
    assert isinstance(fleet.transport_for(nat), NativePsrpTransport)
    assert isinstance(fleet.transport_for(pyp), PsrpTransport)
    forced = _Fleet([pyp], [], plan, RunOptions(psrp_client="native"))
    assert transport_name(pyp, "native") == "psrp:native"
    assert isinstance(forced.transport_for(pyp), NativePsrpTransport)
    assert isinstance(forced.transport_for(_target(transport="winrm")), WinrmTransport)
    fleet.close()
    forced.close()


def test_inventory_psrp_client_key(tmp_path: Any) -> None:
    from fleetcheck.inventory.errors import InventoryError
    from fleetcheck.inventory.loader import load_inventory

    good = tmp_path / "inv.yml"
    good.write_text("vars:\n  psrp_client: native\nhosts:\n  a: {}\n  b: {psrp_client: pypsrp}\n")
    hosts = {h.name: h.psrp_client for h in load_inventory(good).hosts}
    assert hosts == {"a": "native", "b": "pypsrp"}
    bad = tmp_path / "bad.yml"
    bad.write_text("hosts:\n  a:\n    psrp_client: fast\n")
    with pytest.raises(InventoryError) as exc:
        load_inventory(bad)
    assert str(exc.value).endswith("line 3: 'hosts.a.psrp_client': got 'fast'; expected 'pypsrp' or 'native'")


async def test_connection_close_means_a_new_connection(serve: Callable[[Handler], Any]) -> None:
    """After `Connection: close` the next request goes over a fresh connection (and authenticates again)."""
    from fleetcheck.transports.base import Budget
    from fleetcheck.transports.psrp_native import WSManSession
    from fleetcheck.transports.wsman_client import ACTION_DELETE

    connections: list[list[bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mine: list[bytes] = []
        connections.append(mine)
        req = await _read_request(reader)
        mine.append(req)
        message_id = req.split(b"<wsa:MessageID>")[1].split(b"<")[0]
        body = (
            b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            b'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header><a:RelatesTo>'
            + message_id
            + b"</a:RelatesTo></s:Header><s:Body/></s:Envelope>"
        )
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    port = await serve(handler)
    auth = NativePsrpTransport()._auth(_settings(scheme="https", auth="basic", port=port))
    assert auth is not None
    session = WSManSession(_target(auth="basic", port=port), auth, None, Budget(5))
    for _ in range(2):
        await session.post(session.envelope(ACTION_DELETE, shell_id="S"))
    session.close()
    assert len(connections) == 2
    assert all(b"Authorization: Basic " in c[0] for c in connections)
