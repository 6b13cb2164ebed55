"""Sans-IO pieces of the native PSRP client: WSMan envelopes, replies, PSRP framing, encryption.

Everything here is plain functions over bytes and strings, so it is unit-testable without a
socket. The asyncio shell (`psrp_native`) strings them together. Failures are raised as
pypsrp's own exception types so `transports.errors.classify` treats both clients alike.

CPU is the point of this module: envelopes are string templates, not ElementTree builds, and
the CLIXML of the messages that are the same for every host (runspace pool open, the
CreatePipeline of one bundle) is serialized once per run and only framed per host.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import re
import struct
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from psrpcore.types import PSCryptoProvider
from pypsrp.exceptions import WinRMError, WSManFaultError

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmv": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wsmanfault": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
PS_RESOURCE_URI = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"

ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACTION_COMMAND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
ACTION_RECEIVE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
ACTION_SEND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"
ACTION_SIGNAL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"
SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"

#: What a client may send before the server's protocol version is known, and after >= 2.2.
DEFAULT_MAX_ENVELOPE = 153600
MODERN_MAX_ENVELOPE = 512000
#: Room kept in an envelope for the headers around a base64 payload (pypsrp keeps ~the same).
_ENVELOPE_SKELETON = 2048

# PSRP message types (MS-PSRP 2.2.1)
SESSION_CAPABILITY = 0x00010002
INIT_RUNSPACEPOOL = 0x00010004
APPLICATION_PRIVATE_DATA = 0x00021009
RUNSPACEPOOL_STATE = 0x00021005
CREATE_PIPELINE = 0x00021006
PIPELINE_OUTPUT = 0x00041004
ERROR_RECORD = 0x00041005
PIPELINE_STATE = 0x00041006

# RunspacePoolState / PSInvocationState values
POOL_OPENED = 2
PIPE_COMPLETED, PIPE_FAILED, PIPE_STOPPED = 4, 5, 3

_ENVELOPE = (
    '<s:Envelope xmlns:s="{s}" xmlns:wsa="{wsa}" xmlns:wsman="{wsman}" xmlns:wsmv="{wsmv}" xmlns:rsp="{rsp}">'
    "<s:Header>"
    '<wsa:Action s:mustUnderstand="true">%(action)s</wsa:Action>'
    '<wsmv:DataLocale s:mustUnderstand="false" xml:lang="en-US"/>'
    '<wsman:Locale s:mustUnderstand="false" xml:lang="en-US"/>'
    '<wsman:MaxEnvelopeSize s:mustUnderstand="true">%(max_env)d</wsman:MaxEnvelopeSize>'
    "<wsa:MessageID>%(message_id)s</wsa:MessageID>"
    "<wsman:OperationTimeout>PT%(timeout)dS</wsman:OperationTimeout>"
    "<wsa:ReplyTo><wsa:Address s:mustUnderstand=\"true\">"
    "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:Address></wsa:ReplyTo>"
    '<wsman:ResourceURI s:mustUnderstand="true">%(resource)s</wsman:ResourceURI>'
    '<wsmv:SessionId s:mustUnderstand="false">%(session)s</wsmv:SessionId>'
    "<wsa:To>%(to)s</wsa:To>%(options)s%(selectors)s"
    "</s:Header><s:Body>%(body)s</s:Body></s:Envelope>"
).format(**NS)


@dataclass(frozen=True)
class Envelope:
    """One request: its MessageID (to match RelatesTo) and its UTF-8 bytes."""

    message_id: str
    data: bytes


_MUST_COMPLY = ' MustComply="true"'


@functools.lru_cache(maxsize=32)
def _option_set(options: tuple[tuple[str, str, bool], ...]) -> str:
    opts = "".join(
        f"<wsman:Option Name={quoteattr(n)}{_MUST_COMPLY if mc else ''}>{escape(v)}</wsman:Option>"
        for n, v, mc in options
    )
    return f'<wsman:OptionSet s:mustUnderstand="true">{opts}</wsman:OptionSet>' if opts else ""


def new_message_id() -> str:
    return f"uuid:{str(uuid.uuid4()).upper()}"


def build_envelope(
    action: str,
    *,
    to: str,
    session_id: str,
    max_envelope: int,
    timeout_s: int,
    shell_id: str | None = None,
    options: Iterable[tuple[str, str, bool]] = (),
    body: str = "",
    resource_uri: str = PS_RESOURCE_URI,
) -> Envelope:
    """A WSMan request envelope; `options` are (name, value, must_comply)."""
    opts = _option_set(tuple(options))
    sel = f'<wsman:SelectorSet><wsman:Selector Name="ShellId">{escape(shell_id)}</wsman:Selector></wsman:SelectorSet>' if shell_id else ""
    message_id = new_message_id()
    text = _ENVELOPE % {
        "action": action,
        "max_env": max_envelope,
        "message_id": message_id,
        "timeout": max(1, int(timeout_s)),
        "resource": escape(resource_uri),
        "session": session_id,
        "to": escape(to),
        "options": opts,
        "selectors": sel,
        "body": body,
    }
    return Envelope(message_id, text.encode("utf-8"))


# --- bodies -----------------------------------------------------------------------------


def create_body(shell_id: str, creation_b64: str) -> str:
    return (
        f'<rsp:Shell ShellId="{shell_id}"><rsp:InputStreams>stdin pr</rsp:InputStreams>'
        "<rsp:OutputStreams>stdout</rsp:OutputStreams>"
        f'<creationXml xmlns="http://schemas.microsoft.com/powershell">{creation_b64}</creationXml></rsp:Shell>'
    )


def receive_body(command_id: str | None = None) -> str:
    attr = f' CommandId="{command_id}"' if command_id else ""
    return f"<rsp:Receive><rsp:DesiredStream{attr}>stdout</rsp:DesiredStream></rsp:Receive>"


def command_body(command_id: str, arguments_b64: str) -> str:
    return (
        f'<rsp:CommandLine CommandId="{command_id}"><rsp:Command/>'
        f"<rsp:Arguments>{arguments_b64}</rsp:Arguments></rsp:CommandLine>"
    )


def send_body(command_id: str, data_b64: str) -> str:
    return f'<rsp:Send><rsp:Stream Name="stdin" CommandId="{command_id}">{data_b64}</rsp:Stream></rsp:Send>'


def signal_body(command_id: str, code: str = SIGNAL_TERMINATE) -> str:
    return f'<rsp:Signal CommandId="{command_id}"><rsp:Code>{code}</rsp:Code></rsp:Signal>'


CREATE_OPTIONS = (("protocolversion", "2.3", True),)
RECEIVE_OPTIONS = (("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "True", False),)
COMMAND_OPTIONS = (("WINRS_SKIP_CMD_SHELL", "False", False),)


# --- replies ----------------------------------------------------------------------------


def parse_fault(text: bytes | str) -> WSManFaultError:
    """A SOAP fault body as pypsrp's `WSManFaultError(code, machine, reason, ...)`; ParseError if not XML."""
    root = ET.fromstring(text)
    code: int | str | None = None
    reason = machine = provider = provider_path = provider_fault = None
    fault = root.find("s:Body/s:Fault", NS)
    if fault is not None:
        el = fault.find("s:Code/s:Subcode/s:Value", NS)
        if el is None:
            el = fault.find("s:Code/s:Value", NS)
        code = el.text if el is not None else None
        el = fault.find("s:Reason/s:Text", NS)
        reason = el.text if el is not None else None
        wf = fault.find("s:Detail/wsmanfault:WSManFault", NS)
        if wf is not None:
            code = wf.attrib.get("Code", code)
            machine = wf.attrib.get("Machine")
            msg = wf.find("wsmanfault:Message", NS)
            if msg is not None:
                reason = msg.text or reason
                pf = msg.find("wsmanfault:ProviderFault", NS)
                if pf is not None:
                    provider, provider_path, provider_fault = pf.attrib.get("provider"), pf.attrib.get("path"), pf.text
    with contextlib.suppress(TypeError, ValueError):
        code = int(code or "")
    reason = reason.strip() if reason else None
    provider_fault = provider_fault.strip() if provider_fault else None
    return WSManFaultError(code, machine, reason, provider, provider_path, provider_fault)


def _child(parent: ET.Element | None, tag: str) -> ET.Element | None:
    """First direct child with this `{ns}name` tag (cheaper than ElementPath for one level)."""
    if parent is None:
        return None
    for el in parent:
        if el.tag == tag:
            return el
    return None


_S = "{" + NS["s"] + "}"
_WSA = "{" + NS["wsa"] + "}"
_WSMAN = "{" + NS["wsman"] + "}"
_RSP = "{" + NS["rsp"] + "}"


def parse_reply(data: bytes, message_id: str) -> ET.Element:
    """The reply's root after checking RelatesTo string-exact (as pypsrp does)."""
    root = ET.fromstring(data)
    rel = _child(_child(root, _S + "Header"), _WSA + "RelatesTo")
    relates_to = rel.text if rel is not None else ""
    if relates_to != message_id:
        raise WinRMError(
            f"Received related id does not match related expected message id: Sent: {message_id}, Received: {relates_to}"
        )
    return root


def created_shell_id(root: ET.Element) -> str:
    """The ShellId selector of ResourceCreated: the only place pypsrp takes it from, so ours too."""
    node = _child(root, _S + "Body")
    for tag in ("{http://schemas.xmlsoap.org/ws/2004/09/transfer}ResourceCreated", _WSA + "ReferenceParameters",
                _WSMAN + "SelectorSet"):
        node = _child(node, tag)
    for sel in node if node is not None else ():
        if sel.tag == _WSMAN + "Selector" and sel.attrib.get("Name") == "ShellId" and sel.text:
            return sel.text
    raise WinRMError("Create response carries no ShellId selector")


def received_stdout(root: ET.Element) -> tuple[bytes, bool]:
    """The concatenated stdout of a Receive reply and whether the command said Done."""
    resp = _child(_child(root, _S + "Body"), _RSP + "ReceiveResponse")
    if resp is None:
        raise WinRMError("Receive response has no ReceiveResponse")
    chunks = [base64.b64decode(s.text) for s in resp if s.tag == _RSP + "Stream" and s.text]
    state = _child(resp, _RSP + "CommandState")
    done = state is not None and state.attrib.get("State", "").endswith("/Done")
    return b"".join(chunks), done


# --- PSRP framing -------------------------------------------------------------------------


def max_fragment_payload(max_envelope: int) -> int:
    """Raw PSRP bytes that fit one envelope once base64-encoded."""
    return (max_envelope - _ENVELOPE_SKELETON) // 4 * 3


def frame_message(msg_type: int, data: bytes, rpid: uuid.UUID, pid: uuid.UUID | None) -> bytes:
    """A client->server PSRP message: the per-host header before the shared CLIXML body."""
    return (
        struct.pack("<iI", 2, msg_type)
        + rpid.bytes_le
        + (pid.bytes_le if pid is not None else b"\x00" * 16)
        + data
    )


def fragment(object_id: int, message: bytes, max_payload: int) -> list[bytes]:
    """Split one message into fragments of at most `max_payload` bytes each (header included)."""
    room = max_payload - 21
    if room <= 0:
        raise ValueError("envelope too small for a PSRP fragment")
    parts = [message[i : i + room] for i in range(0, len(message), room)] or [b""]
    out = []
    last = len(parts) - 1
    for fid, part in enumerate(parts):
        flags = (1 if fid == 0 else 0) | (2 if fid == last else 0)
        out.append(struct.pack(">QQBI", object_id, fid, flags, len(part)) + part)
    return out


def pack_payloads(fragments: Iterable[bytes], max_payload: int) -> list[bytes]:
    """Group whole fragments into payloads of at most `max_payload` bytes."""
    payloads: list[bytes] = []
    cur: list[bytes] = []
    size = 0
    for frag in fragments:
        if cur and size + len(frag) > max_payload:
            payloads.append(b"".join(cur))
            cur, size = [], 0
        cur.append(frag)
        size += len(frag)
    if cur:
        payloads.append(b"".join(cur))
    return payloads


@dataclass
class Message:
    """One reassembled server->client PSRP message."""

    msg_type: int
    pid: uuid.UUID | None
    data: bytes


@dataclass
class Defragmenter:
    """Reassembles fragments across Receive replies, with a cap on what it will hold."""

    limit: int
    _partial: dict[int, list[bytes]] = field(default_factory=dict)
    _held: int = 0

    def feed(self, data: bytes) -> list[Message]:
        out: list[Message] = []
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if len(view) - pos < 21:
                raise WinRMError("truncated PSRP fragment header")
            object_id, fid, flags, length = struct.unpack_from(">QQBI", view, pos)
            body = bytes(view[pos + 21 : pos + 21 + length])
            if len(body) != length:
                raise WinRMError("truncated PSRP fragment")
            pos += 21 + length
            parts = self._partial.setdefault(object_id, [])
            if fid != len(parts):
                raise WinRMError(f"PSRP fragment {fid} out of order (expected {len(parts)})")
            parts.append(body)
            self._held += length
            if self._held > self.limit:
                from fleetcheck.transports.errors import OutputTooLarge

                raise OutputTooLarge(f"more than {self.limit} bytes of PSRP data")
            if flags & 2:
                whole = b"".join(self._partial.pop(object_id))
                self._held -= len(whole)
                out.append(_unpack_message(whole))
        return out


_EMPTY_PID = b"\x00" * 16


def _unpack_message(raw: bytes) -> Message:
    if len(raw) < 40:
        raise WinRMError("truncated PSRP message")
    msg_type = struct.unpack_from("<I", raw, 4)[0]
    pid_raw = raw[24:40]
    pid = None if pid_raw == _EMPTY_PID else uuid.UUID(bytes_le=pid_raw)
    data = raw[40:]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return Message(msg_type, pid, data)


# --- reading the few CLIXML replies we care about ----------------------------------------------

_PROTOCOL_RE = re.compile(rb'<Version N="protocolversion">([0-9.]+)</Version>')
_POOL_STATE_RE = re.compile(rb'<I32 N="RunspaceState">(-?\d+)</I32>')
_PIPE_STATE_RE = re.compile(rb'<I32 N="PipelineState">(-?\d+)</I32>')


def protocol_version(data: bytes) -> tuple[int, ...]:
    m = _PROTOCOL_RE.search(data)
    if not m:
        raise WinRMError("SessionCapability without a protocol version")
    return tuple(int(p) for p in m.group(1).split(b"."))


def pool_state(data: bytes) -> int:
    m = _POOL_STATE_RE.search(data)
    if not m:
        raise WinRMError("RunspacePoolState without a state")
    return int(m.group(1))


def pipeline_state(data: bytes) -> int:
    m = _PIPE_STATE_RE.search(data)
    if not m:
        raise WinRMError("PipelineState without a state")
    return int(m.group(1))


def _no_key_provider() -> PSCryptoProvider:
    """psrpcore's public base provider: no session key, so a SecureString could not be read (none is expected)."""
    return PSCryptoProvider()


def clixml_string(value: str) -> str:
    """Undo CLIXML's `_xHHHH_` escapes (line breaks, control and astral characters)."""
    if "_x" not in value:
        return value
    from psrpcore.types import deserialize

    element = ET.Element("S")
    element.text = value
    return str(deserialize(element, _no_key_provider()))


def output_text(data: bytes) -> str:
    """A PipelineOutput item as text: strings directly, anything else through psrpcore."""
    if not data:
        return ""
    root = ET.fromstring(data)
    if root.tag == "S":
        return clixml_string(root.text or "")
    if root.tag == "Nil":
        return ""
    from psrpcore.types import deserialize

    return str(deserialize(root, _no_key_provider()))


def _prop(obj: ET.Element | None, name: str) -> str | None:
    if obj is None:
        return None
    for el in obj.iter():
        if el.attrib.get("N") == name and el.tag == "S" and el.text is not None:
            return clixml_string(el.text)
    return None


def _child_obj(obj: ET.Element, name: str) -> ET.Element | None:
    for holder in ("Props", "MS"):
        for el in obj.findall(f"{holder}/Obj"):
            if el.attrib.get("N") == name:
                return el
    return None


def error_record_text(record: ET.Element) -> str:
    """An ErrorRecord as PowerShell shows it first, exactly like the pypsrp transport words it."""
    details = _prop_direct(record, "ErrorDetails_Message")
    exc = _child_obj(record, "Exception")
    message = details or _prop_direct(exc, "Message") if exc is not None else details
    if not message:
        message = _prop_direct(record, "ErrorRecord") or _prop_direct(record, "Message")
    fqid = _prop_direct(record, "FullyQualifiedErrorId")
    text = message or "error record"
    return f"{text} ({fqid})" if fqid else text


def _prop_direct(obj: ET.Element | None, name: str) -> str | None:
    """A string property of this object itself (Props or MS), not of nested objects."""
    if obj is None:
        return None
    for holder in ("Props", "MS"):
        for el in obj.findall(f"{holder}/S"):
            if el.attrib.get("N") == name and el.text is not None:
                return clixml_string(el.text)
    return None


def error_record_from(data: bytes) -> str:
    return error_record_text(ET.fromstring(data))


def pipeline_state_error(data: bytes) -> str | None:
    """The ExceptionAsErrorRecord of a PipelineState message, as text."""
    root = ET.fromstring(data)
    rec = _child_obj(root, "ExceptionAsErrorRecord")
    return error_record_text(rec) if rec is not None else None


# --- message encryption (multipart/encrypted) -------------------------------------------------

ENC_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENC_CONTENT_TYPE = f'multipart/encrypted;protocol="{ENC_PROTOCOL}";boundary="Encrypted Boundary"'
_BOUNDARY = b"--Encrypted Boundary"


def wrap(message: bytes, wrap_winrm: Callable[[bytes], tuple[bytes, bytes, int]]) -> bytes:
    header, data, padding = wrap_winrm(message)
    return b"".join(
        [
            _BOUNDARY,
            b"\r\n\tContent-Type: ",
            ENC_PROTOCOL.encode(),
            b"\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=",
            str(len(message) + padding).encode(),
            b"\r\n",
            _BOUNDARY,
            b"\r\n\tContent-Type: application/octet-stream\r\n",
            struct.pack("<i", len(header)),
            header,
            data,
            _BOUNDARY,
            b"--\r\n",
        ]
    )


@functools.lru_cache(maxsize=8)
def _boundary_splitter(boundary: bytes) -> re.Pattern[bytes]:
    return re.compile(rb"--\s*" + re.escape(boundary) + rb"\r\n")


def unwrap(body: bytes, content_type: str, unwrap_winrm: Callable[[bytes, bytes], bytes]) -> bytes:
    """Decrypt a multipart/encrypted body; the declared Length must match, as both clients check."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise WinRMError("encrypted response without a boundary")
    boundary = m.group(1).encode()
    parts = [p for p in _boundary_splitter(boundary).split(body) if p]
    out = []
    for i in range(0, len(parts) - 1, 2):
        header = parts[i].strip()
        try:
            expected = int(header.split(b"Length=")[1])
        except (IndexError, ValueError) as exc:
            raise WinRMError("encrypted response without a Length") from exc
        payload = parts[i + 1]
        end = b"--" + boundary + b"--\r\n"
        if payload.endswith(end):
            payload = payload[: -len(end)]
        payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        if len(payload) < 4:
            raise WinRMError("encrypted response too short")
        hlen = struct.unpack("<i", payload[:4])[0]
        plain = unwrap_winrm(payload[4 : 4 + hlen], payload[4 + hlen :])
        if len(plain) != expected:
            raise WinRMError(
                "The encrypted length from the server does not match the expected length, "
                f"decryption failed, actual: {len(plain)} != expected: {expected}"
            )
        out.append(plain)
    return b"".join(out)
