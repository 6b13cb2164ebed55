"""WSMan SOAP for the PSRP shell (MS-WSMV), sans-IO: requests built from string templates, replies
read with ElementTree, faults mapped into fleetcheck's `HostError` tree, and the
multipart/encrypted framing of message encryption over HTTP.

String templates rather than an XML builder because an envelope is built several times per host
and per Receive; the values placed in them are ids and base64 we generate, or XML-escaped.
"""

from __future__ import annotations

import base64
import functools
import re
import struct
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fleetcheck.errors import HostError, ProtocolError
from fleetcheck.transports.errors import FailureContext, wsman_fault_error

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsmv": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "wsmanfault": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
}
PS_RESOURCE_URI = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"

ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACTION_COMMAND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
ACTION_RECEIVE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
ACTION_SEND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"
ACTION_SIGNAL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"
SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"

#: What a client may send before the server's protocol version is known, and from 2.2 on.
DEFAULT_MAX_ENVELOPE = 153600
MODERN_MAX_ENVELOPE = 512000
#: Bytes kept in an envelope for everything around the base64 payload.
ENVELOPE_OVERHEAD = 2048

_TEMPLATE = (
    '<s:Envelope xmlns:s="{s}" xmlns:wsa="{wsa}" xmlns:wsman="{wsman}" xmlns:wsmv="{wsmv}" xmlns:rsp="{rsp}">'
    "<s:Header>"
    '<wsa:Action s:mustUnderstand="true">%(action)s</wsa:Action>'
    '<wsmv:DataLocale s:mustUnderstand="false" xml:lang="en-US"/>'
    '<wsman:Locale s:mustUnderstand="false" xml:lang="en-US"/>'
    '<wsman:MaxEnvelopeSize s:mustUnderstand="true">%(max_env)d</wsman:MaxEnvelopeSize>'
    "<wsa:MessageID>%(message_id)s</wsa:MessageID>"
    "<wsman:OperationTimeout>PT%(timeout)dS</wsman:OperationTimeout>"
    '<wsa:ReplyTo><wsa:Address s:mustUnderstand="true">'
    "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:Address></wsa:ReplyTo>"
    '<wsman:ResourceURI s:mustUnderstand="true">%(resource)s</wsman:ResourceURI>'
    '<wsmv:SessionId s:mustUnderstand="false">%(session)s</wsmv:SessionId>'
    "<wsa:To>%(to)s</wsa:To>%(options)s%(selectors)s"
    "</s:Header><s:Body>%(body)s</s:Body></s:Envelope>"
).format(**NS)


@dataclass
class Envelope:
    """One request: its MessageID (the reply's RelatesTo must repeat it) and its UTF-8 bytes."""

    message_id: str
    data: bytes

    def take(self) -> bytes:
        """The bytes, once. The envelope stays in every frame of its call chain until the answer
        comes; without its bytes (a 60 KB bundle) that costs nothing at 500 hosts in flight."""
        data, self.data = self.data, b""
        return data


def escape(text: str) -> str:
    """XML character data: `&`, `<`, `>` escaped (xml.sax.saxutils' rule, without importing
    saxutils, which brings urllib.request, http.client and email into every run's start-up)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quoteattr(text: str) -> str:
    """A double-quoted XML attribute value, its quotes and line breaks as character references."""
    escaped = escape(text).replace('"', "&quot;")
    return '"' + escaped.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;") + '"'


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


def build(
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
    """A WSMan request; `options` are (name, value, must_comply)."""
    selectors = (
        f'<wsman:SelectorSet><wsman:Selector Name="ShellId">{escape(shell_id)}</wsman:Selector></wsman:SelectorSet>'
        if shell_id
        else ""
    )
    message_id = new_message_id()
    text = _TEMPLATE % {
        "action": action,
        "max_env": max_envelope,
        "message_id": message_id,
        "timeout": max(1, int(timeout_s)),
        "resource": escape(resource_uri),
        "session": session_id,
        "to": escape(to),
        "options": _option_set(tuple(options)),
        "selectors": selectors,
        "body": body,
    }
    return Envelope(message_id, text.encode("utf-8"))


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


def send_body(command_id: str | None, data_b64: str, stream: str = "stdin") -> str:
    attr = f' CommandId="{command_id}"' if command_id else ""
    return f'<rsp:Send><rsp:Stream Name="{stream}"{attr}>{data_b64}</rsp:Stream></rsp:Send>'


def signal_body(command_id: str, code: str = SIGNAL_TERMINATE) -> str:
    return f'<rsp:Signal CommandId="{command_id}"><rsp:Code>{code}</rsp:Code></rsp:Signal>'


CREATE_OPTIONS = (("protocolversion", "2.3", True),)
RECEIVE_OPTIONS = (("WSMAN_CMDSHELL_OPTION_KEEPALIVE", "True", False),)
COMMAND_OPTIONS = (("WINRS_SKIP_CMD_SHELL", "False", False),)


def max_payload(max_envelope: int) -> int:
    """Raw PSRP bytes that fit one envelope once base64-encoded."""
    return (max_envelope - ENVELOPE_OVERHEAD) // 4 * 3


# --- replies ------------------------------------------------------------------------------

_S = "{" + NS["s"] + "}"
_WSA = "{" + NS["wsa"] + "}"
_WSMAN = "{" + NS["wsman"] + "}"
_RSP = "{" + NS["rsp"] + "}"
_X = "{" + NS["x"] + "}"


def _child(parent: ET.Element | None, tag: str) -> ET.Element | None:
    """First direct child with this `{ns}name` tag (cheaper than ElementPath for one level)."""
    if parent is None:
        return None
    for el in parent:
        if el.tag == tag:
            return el
    return None


def _xml(data: bytes) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise ProtocolError("malformed WinRM response (not valid XML)", error_type="malformed") from exc


def parse_reply(data: bytes, message_id: str) -> ET.Element:
    """The reply's root, once its RelatesTo names our request (string-exact, as Windows echoes it)."""
    root = _xml(data)
    rel = _child(_child(root, _S + "Header"), _WSA + "RelatesTo")
    relates_to = rel.text if rel is not None else None
    if relates_to != message_id:
        raise ProtocolError(
            f"WinRM protocol error: reply relates to {relates_to!r}, not to request {message_id}",
            error_type="wsman",
        )
    return root


def created_shell_id(root: ET.Element) -> str:
    """The ShellId selector of ResourceCreated."""
    node = _child(root, _S + "Body")
    for tag in (_X + "ResourceCreated", _WSA + "ReferenceParameters", _WSMAN + "SelectorSet"):
        node = _child(node, tag)
    for sel in node if node is not None else ():
        if sel.tag == _WSMAN + "Selector" and sel.attrib.get("Name") == "ShellId" and sel.text:
            return sel.text
    raise ProtocolError("WinRM protocol error: Create response carries no ShellId", error_type="wsman")


def received_streams(root: ET.Element) -> tuple[list[bytes], bool]:
    """The decoded rsp:Stream payloads of a ReceiveResponse, in order, and whether the command is Done."""
    resp = _child(_child(root, _S + "Body"), _RSP + "ReceiveResponse")
    if resp is None:
        raise ProtocolError(
            "WinRM protocol error: Receive response has no ReceiveResponse", error_type="wsman"
        )
    chunks = [base64.b64decode(s.text) for s in resp if s.tag == _RSP + "Stream" and s.text]
    state = _child(resp, _RSP + "CommandState")
    done = state is not None and state.attrib.get("State", "").endswith("/Done")
    return chunks, done


@dataclass(frozen=True)
class Fault:
    """A SOAP fault as Windows words it: the WSMan code, the message, the provider's text."""

    code: int | None
    reason: str
    machine: str | None = None
    provider_fault: str | None = None


def parse_fault(data: bytes) -> Fault | None:
    """The fault in a reply body, or None when the body is not a SOAP fault."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    fault = root.find("s:Body/s:Fault", NS)
    if fault is None:
        return None
    code_text: str | None = None
    el = fault.find("s:Code/s:Subcode/s:Value", NS)
    el = el if el is not None else fault.find("s:Code/s:Value", NS)
    code_text = el.text if el is not None else None
    el = fault.find("s:Reason/s:Text", NS)
    reason = el.text if el is not None and el.text else ""
    machine = provider = None
    wf = fault.find("s:Detail/wsmanfault:WSManFault", NS)
    if wf is not None:
        code_text = wf.attrib.get("Code", code_text)
        machine = wf.attrib.get("Machine")
        msg = wf.find("wsmanfault:Message", NS)
        if msg is not None:
            reason = "".join(msg.itertext()) or reason
            pf = msg.find("wsmanfault:ProviderFault", NS)
            if pf is not None:
                provider = "".join(pf.itertext()).strip() or None
    code: int | None
    try:
        code = int(code_text or "")
    except ValueError:
        code = None
    return Fault(code, " ".join(reason.split()), machine, provider)


def fault_error(fault: Fault, ctx: FailureContext | None = None) -> HostError:
    """The `HostError` a WSMan fault means for the admin reading the table (shared wording)."""
    return wsman_fault_error(fault.code, fault.reason, ctx or FailureContext())


# --- message encryption (MS-WSMV 2.2.9.1.1) -----------------------------------------------------

ENC_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENC_CONTENT_TYPE = f'multipart/encrypted;protocol="{ENC_PROTOCOL}";boundary="Encrypted Boundary"'
#: After the `Kerberos` scheme (a listener with Negotiate off) the framing names Kerberos instead.
KERBEROS_PROTOCOL = "application/HTTP-Kerberos-session-encrypted"


def enc_content_type(protocol: str = ENC_PROTOCOL) -> str:
    return f'multipart/encrypted;protocol="{protocol}";boundary="Encrypted Boundary"'
_BOUNDARY = b"--Encrypted Boundary"


def wrap(message: bytes, wrap_winrm: Callable[[bytes], tuple[bytes, bytes, int]], protocol: str = ENC_PROTOCOL) -> bytes:
    header, data, padding = wrap_winrm(message)
    return b"".join(
        [
            _BOUNDARY,
            b"\r\n\tContent-Type: ",
            protocol.encode(),
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
    """Decrypt a multipart/encrypted body; the declared Length must match the plaintext."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ProtocolError("encrypted WinRM response without a boundary", error_type="decrypt")
    boundary = m.group(1).encode()
    parts = [p for p in _boundary_splitter(boundary).split(body) if p]
    out = []
    for i in range(0, len(parts) - 1, 2):
        try:
            expected = int(parts[i].strip().split(b"Length=")[1])
        except (IndexError, ValueError):
            raise ProtocolError("encrypted WinRM response without a Length", error_type="decrypt") from None
        payload = parts[i + 1]
        end = b"--" + boundary + b"--\r\n"
        if payload.endswith(end):
            payload = payload[: -len(end)]
        payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
        if len(payload) < 4:
            raise ProtocolError("encrypted WinRM response too short", error_type="decrypt")
        hlen = struct.unpack("<i", payload[:4])[0]
        try:
            plain = unwrap_winrm(payload[4 : 4 + hlen], payload[4 + hlen :])
        except Exception as exc:  # pyspnego's SpnegoError family: the seal does not verify
            msg = f"message encryption failed ({type(exc).__name__}) - the response could not be decrypted"
            raise ProtocolError(msg, error_type="decrypt") from exc
        if len(plain) != expected:
            raise ProtocolError(
                "decrypted WinRM response length does not match its Length", error_type="decrypt"
            )
        out.append(plain)
    return b"".join(out)
