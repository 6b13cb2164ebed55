"""The native client's HTTP/1.1 layer (httptools framing) and WSMan envelope helpers, against tiny loopback servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import spnego
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcheck.errors import AuthRejected, ProtocolError, TimedOut, Unreachable
from fleetcheck.transports.psrp_client import envelope as wsman
from fleetcheck.transports.psrp_client.connection import (
    MAX_RESPONSE_BYTES,
    Credentials,
    Deadline,
    HttpConnection,
    WSManConnection,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Any]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

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
    await conn.connect(Deadline(5))
    first = await conn.request(b"hello", [("X-Test", "1")], Deadline(5))
    assert (first.status, first.body, conn.usable) == (200, b"abc", True)
    second = await conn.request(b"", [], Deadline(5))
    assert (second.body, conn.usable) == (b"def", False)  # the host said close: reconnect (and re-auth) next
    assert seen[0].startswith(b"POST /wsman HTTP/1.1\r\n") and b"content-length: 5" in seen[0].lower()
    assert seen[0].endswith(b"\r\n\r\nhello") and b"X-Test: 1" in seen[0]
    conn.close()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"", Unreachable),  # closed before answering
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Unreachable),  # cut mid-body
        (b"SSH-2.0-OpenSSH\r\n\r\n", ProtocolError),  # not HTTP
        (f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_RESPONSE_BYTES + 1}\r\n\r\n".encode(), ProtocolError),
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
    await conn.connect(Deadline(5))
    with pytest.raises(error):
        await conn.request(b"x", [], Deadline(5))
    assert not conn.usable
    conn.close()


async def test_endless_chunked_body_is_cut_at_the_cap(serve: Callable[[Handler], Any]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        try:
            for _ in range(MAX_RESPONSE_BYTES // 65536 + 8):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass

    port = await serve(handler)
    conn = HttpConnection("127.0.0.1", port, None)
    await conn.connect(Deadline(5))
    with pytest.raises(ProtocolError, match="too large"):
        await conn.request(b"x", [], Deadline(10))
    conn.close()


async def test_silent_host_times_out_within_the_deadline(serve: Callable[[Handler], Any]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    port = await serve(handler)
    conn = HttpConnection("127.0.0.1", port, None)
    await conn.connect(Deadline(5))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(TimedOut):
        await conn.request(b"x", [], Deadline(0.3))
    assert loop.time() - t0 < 1.0
    conn.close()


async def test_refused_port_is_unreachable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn = HttpConnection("127.0.0.1", port, None)
    with pytest.raises(Unreachable, match="refused"):
        await conn.connect(Deadline(5))


async def test_fault_and_http_errors_map_to_host_errors(serve: Callable[[Handler], Any]) -> None:
    fault_xml = (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        b'xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"><s:Body><s:Fault><s:Detail>'
        b'<f:WSManFault Code="2147943418"><f:Message>marked for deletion</f:Message></f:WSManFault>'
        b"</s:Detail></s:Fault></s:Body></s:Envelope>"
    )
    answers = [(500, fault_xml), (500, b"Server Error"), (401, b""), (503, b"")]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            await _read_request(reader)
            status, body = answers.pop(0)
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
            await writer.drain()

    port = await serve(handler)
    conn = WSManConnection("127.0.0.1", port, "https", Credentials("basic", "u", "p"), None)
    conn.ssl_ctx = None  # plain TCP for this test: the framing is what is checked
    env = wsman.build(wsman.ACTION_CREATE, to="x", session_id="uuid:1", max_envelope=153600, timeout_s=5)
    with pytest.raises(ProtocolError) as fault:
        await conn.post(env, Deadline(5))
    assert fault.value.wsman_code == 2147943418 and "marked for deletion" in fault.value.message
    with pytest.raises(ProtocolError, match="HTTP 500"):
        await conn.post(env, Deadline(5))
    with pytest.raises(AuthRejected):
        await conn.post(env, Deadline(5))
    with pytest.raises(Unreachable) as busy:
        await conn.post(env, Deadline(5))
    assert busy.value.transient
    conn.close()


def test_reply_relates_to_is_checked_string_exact() -> None:
    reply = (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        b'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header>'
        b"<a:RelatesTo>uuid:ABC</a:RelatesTo></s:Header><s:Body/></s:Envelope>"
    )
    assert wsman.parse_reply(reply, "uuid:ABC") is not None
    with pytest.raises(ProtocolError, match="relates to"):
        wsman.parse_reply(reply, "uuid:abc")
    with pytest.raises(ProtocolError, match="not valid XML"):
        wsman.parse_reply(b"<s:Envelope", "uuid:ABC")


def test_timeout_fault_is_a_transient_timeout_and_quota_a_transient_protocol_error() -> None:
    timeout = wsman.fault_error(wsman.Fault(2150858793, "timed out"))
    quota = wsman.fault_error(wsman.Fault(2150859173, "quota"))
    assert isinstance(timeout, TimedOut) and timeout.transient and timeout.error_type == "wsman_timeout"
    assert isinstance(quota, ProtocolError) and quota.transient and quota.error_type == "quota"
    assert isinstance(wsman.fault_error(wsman.Fault(2147942405, "denied")), AuthRejected)


def test_encryption_roundtrip_with_real_ntlm_contexts_and_length_check(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "ntlm-users"
    creds.write_text(":u:p\n", encoding="utf-8")  # domain:user:password
    monkeypatch.setenv("NTLM_USER_FILE", str(creds))
    client = spnego.client("u", "p", protocol="ntlm", options=spnego.NegotiateOptions.wrapping_winrm)
    server = spnego.server(protocol="ntlm", options=spnego.NegotiateOptions.wrapping_winrm)
    token = client.step()
    assert token is not None
    challenge = server.step(token)
    token = client.step(challenge)
    assert token is not None
    server.step(token)
    message = b"<s:Envelope>" + b"x" * 5000 + b"</s:Envelope>"
    body = wsman.wrap(message, client.wrap_winrm)
    # the server side decrypts it the way the lab does
    from fleetcheck.lab import encryption

    assert encryption.unwrap(server, body) == message
    reply = encryption.wrap(server, message)
    assert wsman.unwrap(reply, encryption.CONTENT_TYPE, client.unwrap_winrm) == message
    reply = encryption.wrap(server, message)  # the next sequence number: a valid seal...
    lying = reply.replace(b"Length=%d" % len(message), b"Length=%d" % (len(message) + 1))  # ...wrong length
    with pytest.raises(ProtocolError, match="length"):
        wsman.unwrap(lying, encryption.CONTENT_TYPE, client.unwrap_winrm)


def test_only_a_whole_application_private_data_message_is_skipped() -> None:
    import struct

    from fleetcheck.transports.psrp_client.payloads import without_private_data

    def frag(oid: int, flags: int, msg_type: int) -> bytes:
        data = struct.pack("<iI", 1, msg_type) + b"\x00" * 32 + b"<Obj/>"
        return struct.pack(">QQBI", oid, 0, flags, len(data)) + data

    cap, apd, state = frag(1, 3, 0x00010002), frag(2, 3, 0x00021009), frag(3, 3, 0x00021005)
    assert without_private_data(cap + apd + state) == cap + state
    partial = frag(2, 1, 0x00021009)  # a first fragment only: left to psrpcore
    assert without_private_data(cap + partial) == cap + partial
    assert without_private_data(b"\x00garbage") == b"\x00garbage"


async def test_ntlm_starts_with_its_token_and_falls_back_to_the_ntlm_scheme(serve: Callable[[Handler], Any]) -> None:
    """No anonymous probe: the first request carries the NTLM token under Negotiate; a host that
    offers only `NTLM` gets the same token again under that name; Basic only is a clear refusal."""
    seen: list[str] = []
    offers = [b"NTLM", b'Basic realm="x"', b'Basic realm="x"']

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while offers:
            head = (await _read_request(reader)).decode()
            seen.append(next((line.split(": ", 1)[1] for line in head.split("\r\n") if line.startswith("Authorization")), ""))
            writer.write(b"HTTP/1.1 401 X\r\nWWW-Authenticate: %s\r\nContent-Length: 0\r\n\r\n" % offers.pop(0))
            await writer.drain()

    port = await serve(handler)
    conn = WSManConnection("127.0.0.1", port, "http", Credentials("ntlm", "u", "p"), None)
    env = wsman.build(wsman.ACTION_CREATE, to="x", session_id="uuid:1", max_envelope=153600, timeout_s=5)
    with pytest.raises(AuthRejected, match="rejected"):
        await conn.post(env, Deadline(5))
    assert [s.split()[0] for s in seen] == ["Negotiate", "NTLM"]
    assert seen[0].split()[1] == seen[1].split()[1]  # the same first token
    with pytest.raises(AuthRejected, match="no NTLM offered"):
        await conn.post(env, Deadline(5))
    assert len(seen) == 3 and seen[2].startswith("Negotiate ")
    conn.close()


_XML_CHARS = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="".join(chr(c) for c in range(32) if c not in (9, 10, 13))
)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_the_envelope_escapes_text_as_xml_sax_saxutils_does(text: str) -> None:
    """The envelope's own escape (saxutils is not imported at start-up) gives saxutils' text."""
    from xml.sax.saxutils import escape

    assert wsman.escape(text) == escape(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_XML_CHARS))
def test_a_quoted_attribute_reads_back_as_the_text(text: str) -> None:
    """quoteattr's value, quotes, tabs and line breaks included, is what an XML parser reads back."""
    import xml.etree.ElementTree as ET

    quoted = wsman.quoteattr(text)
    assert quoted.startswith('"') and quoted.endswith('"')
    assert ET.fromstring(f"<a b={quoted}/>").get("b") == text
