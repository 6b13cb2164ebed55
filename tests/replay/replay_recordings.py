"""Recorded WinRM/PSRP conversations with real Windows hosts, split and judged for replay.

A recording file (pypsrp's test data, see tests/data/pypsrp-recordings/SOURCE.md) holds a list of
request/response pairs of decrypted SOAP. It may hold several shells one after the other; each
Create..Delete stretch is one `Conversation`. A conversation *fits* the native client when it
is exactly what the client does: Create of a PowerShell shell, pool Receives, one Command,
pipeline-input Sends, pipeline Receives (TimedOut faults included), an optional Signal, Delete,
with no host call or key exchange in between (the client has no host and sends no key).
"""

from __future__ import annotations

import base64
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DATA = Path(__file__).resolve().parent.parent / "data" / "pypsrp-recordings"
PS_RESOURCE = "http://schemas.microsoft.com/powershell/"

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}

#: PSRP message types that mean the client would have to answer (host calls, key exchange).
_NEEDS_ANSWER = {
    0x00041100: "pipeline host call",
    0x00021100: "pool host call",
    0x00010006: "session key",
    0x00010007: "public key request",
}


@dataclass
class Exchange:
    """One recorded request and the response Windows gave."""

    action: str  # last segment: Create, Receive, Command, Send, Signal, Delete, ...
    command_id: str | None  # CommandId of the request, if any (pipeline target)
    request: str
    response: str

    @property
    def fault(self) -> bool:
        return "<s:Fault>" in self.response


@dataclass
class Conversation:
    name: str
    exchanges: list[Exchange] = field(default_factory=list)
    resource: str = ""

    def by(self, action: str, pipeline: bool) -> list[Exchange]:
        return [e for e in self.exchanges if e.action == action and (e.command_id is not None) == pipeline]

    def why_not(self) -> str | None:
        """None when the native client's sequence fits; else the reason it does not."""
        if not self.resource.startswith(PS_RESOURCE):
            return f"not a PowerShell shell ({self.resource.rsplit('/', 1)[-1] or 'WSMan only'})"
        if not self.resource.endswith("Microsoft.PowerShell"):
            return f"custom endpoint {self.resource.rsplit('/', 1)[-1]}"
        actions = [e.action + ("C" if e.command_id else "") for e in self.exchanges]
        text = " ".join(actions)
        if not re.fullmatch(r"Create( Receive)+ CommandC( SendC)*( ReceiveC)+( SignalC)? Delete", text):
            return f"sequence {text}"
        for ex in self.exchanges:
            for mtype in message_types(ex.request) + message_types(ex.response):
                if mtype in _NEEDS_ANSWER:
                    return _NEEDS_ANSWER[mtype]
        return None


def _action(xml: str) -> str:
    m = re.search(r"<[a-z]+:Action[^>]*>([^<]+)<", xml)
    return m.group(1).rsplit("/", 1)[-1] if m else ""


def load(path: Path) -> list[Conversation]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    convs: list[Conversation] = []
    current: Conversation | None = None
    for item in data["messages"]:
        req, resp = str(item["request"]), str(item["response"])
        action = _action(req)
        cid = re.search(r'CommandId="([^"]+)"', req)
        if action == "Create":
            current = Conversation(f"{path.stem}#{len(convs)}")
            res = re.search(r"ResourceURI[^>]*>([^<]+)<", req)
            current.resource = res.group(1) if res else ""
            convs.append(current)
        if current is None:
            continue  # a WSMan Get before any shell (configuration read)
        current.exchanges.append(Exchange(action, cid.group(1) if cid else None, req, resp))
        if action == "Delete":
            current = None
    return convs


def streams(xml: str) -> list[bytes]:
    """The base64 payloads of rsp:Stream / Arguments / creationXml elements, decoded."""
    return [
        base64.b64decode(m.group(1))
        for m in re.finditer(r"<(?:rsp:Stream|rsp:Arguments|creationXml)\b[^>]*>([^<]+)<", xml)
    ]


def message_types(xml: str) -> list[int]:
    out = []
    for data in streams(xml):
        pos = 0
        while pos + 21 <= len(data):
            _oid, _fid, flags, length = struct.unpack_from(">QQBI", data, pos)
            if flags & 1 and length >= 8:
                out.append(struct.unpack_from("<I", data, pos + 21 + 4)[0])
            pos += 21 + length
    return out


@dataclass
class Message:
    msg_type: int
    data: bytes


def messages(payloads: list[bytes]) -> list[Message]:
    """Whole PSRP messages from fragments spread over payloads (the test's own reassembly)."""
    partial: dict[int, bytes] = {}
    out = []
    for data in payloads:
        pos = 0
        while pos < len(data):
            oid, _fid, flags, length = struct.unpack_from(">QQBI", data, pos)
            chunk = data[pos + 21 : pos + 21 + length]
            pos += 21 + length
            whole = (b"" if flags & 1 else partial.pop(oid, b"")) + chunk
            if flags & 2:
                out.append(Message(struct.unpack_from("<I", whole, 4)[0], whole[40:]))
            else:
                partial[oid] = whole
    return out


def shell_id(conv: Conversation) -> str:
    root = ET.fromstring(conv.exchanges[0].response)
    sel = root.find(".//w:Selector[@Name='ShellId']", NS)
    assert sel is not None and sel.text
    return sel.text
