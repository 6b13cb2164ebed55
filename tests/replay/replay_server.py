"""A WinRM endpoint on loopback that answers with one recorded Windows conversation.

Responses are chosen by action and target (pool or pipeline) in recorded order; a Receive beyond
the recorded ones gets Windows' OperationTimeout fault, Send/Signal/Delete without a recording
get Windows' empty responses. Before a response goes out, the ids the client chose replace the
recorded ones: RelatesTo takes the request's MessageID, ShellId/CommandId become the client's,
and the runspace pool and pipeline ids inside the PSRP message headers are rewritten.

Authentication is Basic over HTTPS or the lab's NTLM layer (with message encryption over HTTP).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from replay_recordings import Conversation, Exchange, streams

from fleetcheck.lab import encryption
from fleetcheck.lab.auth import ConnectionAuth, channel_bindings
from fleetcheck.lab.http import HttpError, format_response, read_request
from fleetcheck.lab.machine import LabUser, MachineState

USER = "replay"
PASSWORD = "Replay-Passw0rd!"

_TIMEOUT_FAULT = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">'
    "<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action>"
    "<a:MessageID>uuid:00000000-0000-0000-0000-000000000001</a:MessageID>"
    "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
    "<a:RelatesTo>uuid:00000000-0000-0000-0000-000000000000</a:RelatesTo></s:Header>"
    "<s:Body><s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:TimedOut</s:Value></s:Subcode>"
    '</s:Code><s:Reason><s:Text xml:lang="en-US">The WS-Management service cannot complete the operation within '
    "the time specified in OperationTimeout.  </s:Text></s:Reason><s:Detail>"
    '<f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="2150858793" '
    'Machine="127.0.0.1"><f:Message>The WS-Management service cannot complete the operation within the time '
    "specified in OperationTimeout.  </f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"
)


def _empty(action: str) -> str:
    return (
        '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing">'
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:00000000-0000-0000-0000-000000000002</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        "<a:RelatesTo>uuid:00000000-0000-0000-0000-000000000000</a:RelatesTo></s:Header><s:Body/></s:Envelope>"
    )


_CANNED = {
    "Send": _empty("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SendResponse"),
    "Signal": _empty("http://schemas.microsoft.com/wbem/wsman/1/windows/shell/SignalResponse"),
    "Delete": _empty("http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse"),
}


def rewrite_psrp(data: bytes, ids: dict[bytes, bytes], progress: dict[int, int]) -> bytes:
    """Replace recorded RPID/PID (message offsets 8..40) in fragments, across fragment borders."""
    out = bytearray(data)
    pos = 0
    while pos + 21 <= len(out):
        oid, _fid, flags, length = struct.unpack_from(">QQBI", out, pos)
        start = pos + 21
        done = 0 if flags & 1 else progress.get(oid, 0)
        # message bytes [done, done + length) sit at out[start : start + length]
        for lo in (8, 24):
            # an id is rewritten when this fragment holds it whole (Windows never splits a header)
            if done <= lo and done + length >= lo + 16:
                head_at = start + (lo - done)
                old = bytes(out[head_at : head_at + 16])
                if old in ids:
                    out[head_at : head_at + 16] = ids[old]
        progress[oid] = done + length
        pos = start + length
    return bytes(out)


@dataclass
class Replay:
    """The state of one replayed conversation: what is left to answer, and the id mapping."""

    conv: Conversation
    queues: dict[tuple[str, bool], list[Exchange]] = field(default_factory=dict)
    text_ids: dict[str, str] = field(default_factory=dict)
    bin_ids: dict[bytes, bytes] = field(default_factory=dict)
    progress: dict[int, int] = field(default_factory=dict)
    requests: list[tuple[str, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for ex in self.conv.exchanges:
            self.queues.setdefault((ex.action, ex.command_id is not None), []).append(ex)

    def _map(self, recorded: str, ours: str) -> None:
        self.text_ids[recorded.upper()] = ours.upper()
        self.text_ids[recorded.lower()] = ours.upper()

    def _map_binary(self, recorded_request: str, our_request: str, offset: int) -> None:
        """Map the id at `offset` of the first PSRP message header, as each side wrote it."""
        theirs, ours = streams(recorded_request), streams(our_request)
        if theirs and ours and len(theirs[0]) >= 61 and len(ours[0]) >= 61:
            self.bin_ids[theirs[0][21 + offset : 37 + offset]] = ours[0][21 + offset : 37 + offset]

    def answer(self, request: str) -> tuple[int, str]:
        action = re.search(r"<[a-z]+:Action[^>]*>([^<]+)<", request)
        name = action.group(1).rsplit("/", 1)[-1] if action else ""
        cid = re.search(r'CommandId="([^"]+)"', request)
        pipeline = cid is not None
        self.requests.append((name, pipeline))
        queue = self.queues.get((name, pipeline), [])
        recorded = queue.pop(0) if queue else None
        if name == "Create" and recorded is not None:
            ours = re.search(r'<rsp:Shell ShellId="([^"]+)"', request)
            theirs = re.search(r'<rsp:Shell ShellId="([^"]+)"', recorded.request)
            if ours and theirs:
                self._map(theirs.group(1), ours.group(1))
            sel = re.search(r'Name="ShellId">([^<]+)<', recorded.response)
            if sel and ours:
                self._map(sel.group(1), ours.group(1))
            self._map_binary(recorded.request, request, 8)
        if name == "Command" and recorded is not None and cid is not None and recorded.command_id:
            self._map(recorded.command_id, cid.group(1))
            self._map_binary(recorded.request, request, 24)
        if recorded is None:
            if name == "Receive":
                text = _TIMEOUT_FAULT
            elif name in _CANNED:
                text = _CANNED[name]
            else:
                return 500, _TIMEOUT_FAULT.replace("w:TimedOut", "w:ActionNotSupported")
        else:
            text = recorded.response
        message_id = re.search(r"<wsa:MessageID>([^<]+)<", request)
        text = re.sub(
            r"(<a:RelatesTo>)[^<]*(<)",
            lambda m: m.group(1) + (message_id.group(1) if message_id else "") + m.group(2),
            text,
        )
        for old, new in self.text_ids.items():
            text = text.replace(old, new)
        text = re.sub(
            r"(<rsp:Stream\b[^>]*>)([^<]+)(<)",
            lambda m: (
                m.group(1)
                + base64.b64encode(
                    rewrite_psrp(base64.b64decode(m.group(2)), self.bin_ids, self.progress)
                ).decode()
                + m.group(3)
            ),
            text,
        )
        return (500 if "<s:Fault>" in text else 200), text


@dataclass
class ReplayEndpoint:
    address: str
    port: int
    scheme: str
    replay: Replay


@contextlib.asynccontextmanager
async def serve(
    conv: Conversation,
    *,
    auth: str = "basic",
    ssl_ctx: ssl.SSLContext | None = None,
    cert_der: bytes | None = None,
) -> AsyncIterator[ReplayEndpoint]:
    """Serve `conv` on 127.0.0.1:<free port>: Basic over HTTPS (`ssl_ctx`) or NTLM over HTTP."""
    replay = Replay(conv)
    machine = MachineState(hostname="REPLAY", users=[LabUser(name=USER, password=PASSWORD)])

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        bindings = channel_bindings(cert_der) if cert_der else None
        conn_auth = ConnectionAuth(machine, bindings, basic_allowed=auth == "basic")
        try:
            while True:
                try:
                    request = await read_request(reader)
                except HttpError as exc:
                    writer.write(format_response(exc.status, [("Connection", "close")]))
                    break
                if request is None:
                    break
                step = conn_auth.step(request.headers.get("authorization"))
                if step.outcome != "ok":
                    extra = [("WWW-Authenticate", f"{step.scheme} {step.token}")] if step.token else []
                    if not extra:
                        extra = (
                            [("WWW-Authenticate", "Negotiate")]
                            if auth == "ntlm"
                            else [("WWW-Authenticate", 'Basic realm="WSMAN"')]
                        )
                    writer.write(format_response(401, extra))
                    await writer.drain()
                    continue
                if not request.body:
                    writer.write(format_response(200, []))
                    await writer.drain()
                    continue
                body = request.body
                encrypted = encryption.is_encrypted(request.headers.get("content-type", ""))
                if encrypted:
                    body = encryption.unwrap(conn_auth.context, body)
                status, text = replay.answer(body.decode("utf-8"))
                data = text.encode("utf-8")
                if encrypted:
                    headers = [("Content-Type", encryption.CONTENT_TYPE)]
                    data = encryption.wrap(conn_auth.context, data)
                else:
                    headers = [("Content-Type", "application/soap+xml;charset=UTF-8")]
                writer.write(format_response(status, headers, data))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=ssl_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        yield ReplayEndpoint("127.0.0.1", port, "https" if ssl_ctx else "http", replay)
    finally:
        server.close()
        await server.wait_closed()
