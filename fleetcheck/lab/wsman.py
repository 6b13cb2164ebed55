"""WS-Management envelopes: namespace-aware request parsing, response and fault building.

Responses copy the shape of real Windows Server answers (`../shared/winrm-captures/`):
the same prefixes, element order, `RelatesTo` string-equal to the request's MessageID.
They are built as text (cheaper than a DOM) from escaped values.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

NS_S = "http://www.w3.org/2003/05/soap-envelope"
NS_A = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
NS_X = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
NS_W = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
NS_P = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
NS_RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
NS_F = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
NS_PS = "http://schemas.microsoft.com/powershell"
NS_CFG = "http://schemas.microsoft.com/wbem/wsman/1/config"

ACTION_TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer/"
ACTION_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
ACTION_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
PSRP_URI_PREFIX = "http://schemas.microsoft.com/powershell/"
CMD_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
COMMAND_STATE_DONE = ACTION_SHELL + "CommandState/Done"
COMMAND_STATE_RUNNING = ACTION_SHELL + "CommandState/Running"

_ENVELOPE_OPEN = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    "{extra}"
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" '
    'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
)
_ENVELOPE_OPEN_PLAIN = (
    '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" '
    'xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
)
_DURATION = re.compile(r"^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$")


class WSManFault(Exception):
    """A request the service answers with a SOAP fault (HTTP 500)."""

    def __init__(
        self,
        code: int,
        subcode: str,
        message: str,
        value: str = "s:Receiver",
        *,
        reason: str | None = None,
        detail: str | None = None,
        provider: tuple[str, str] | None = None,
        provider_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.message = message  # f:Message (inside f:ProviderFault when `provider` is set)
        self.value = value
        self.reason = reason or message  # s:Reason/s:Text
        self.detail = detail  # w:FaultDetail URI
        self.provider = provider  # (provider name, dll path)
        self.provider_code = provider_code  # a nested f:WSManFault inside the ProviderFault


@dataclass
class WsmanRequest:
    """The parts of a request envelope the service acts on."""

    action: str
    message_id: str
    resource_uri: str
    to: str = ""
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    max_envelope_size: int = 153600
    operation_timeout: float = 60.0
    body: ET.Element | None = None
    garbage: bool = False  # fault: answer with an undecryptable body

    @property
    def verb(self) -> str:
        """Create, Command, Send, Receive, Signal, Delete, Get, ..."""
        return self.action.rsplit("/", 1)[-1]


def parse_duration(text: str | None, default: float) -> float:
    match = _DURATION.match((text or "").strip())
    if not match:
        return default
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _text(root: ET.Element, path: str) -> str:
    node = root.find(path)
    return (node.text or "").strip() if node is not None else ""


def parse_request(data: bytes) -> WsmanRequest:
    """Parse by namespace URI, never by prefix (pypsrp and pywinrm use different prefixes)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "The request is not well-formed XML.", "s:Sender") from None
    if root.tag != f"{{{NS_S}}}Envelope":
        raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "The request is not a SOAP envelope.", "s:Sender")
    header = root.find(f"{{{NS_S}}}Header")
    if header is None:
        raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "The SOAP header is missing.", "s:Sender")
    request = WsmanRequest(
        action=_text(header, f"{{{NS_A}}}Action"),
        message_id=_text(header, f"{{{NS_A}}}MessageID"),
        resource_uri=_text(header, f"{{{NS_W}}}ResourceURI"),
        to=_text(header, f"{{{NS_A}}}To"),
        body=root.find(f"{{{NS_S}}}Body"),
    )
    size = _text(header, f"{{{NS_W}}}MaxEnvelopeSize")
    if size.isdigit():
        request.max_envelope_size = int(size)
    timeout_text = _text(header, f"{{{NS_W}}}OperationTimeout")
    if timeout_text and not _DURATION.match(timeout_text):
        raise WSManFault(
            2150858767,
            "a:InvalidMessageInformationHeader",
            f"The WS-Management service cannot process the request. The XML contains an invalid timeout field in "
            f"the SOAP header: {timeout_text}. ",
            "s:Sender",
            reason="The WS-Management service cannot process the request. The request contains one or more invalid "
            "SOAP headers. ",
        )
    request.operation_timeout = parse_duration(timeout_text, 60.0)
    for sel in header.iterfind(f"{{{NS_W}}}SelectorSet/{{{NS_W}}}Selector"):
        request.selectors[sel.get("Name", "")] = (sel.text or "").strip()
    for opt in header.iterfind(f"{{{NS_W}}}OptionSet/{{{NS_W}}}Option"):
        request.options[opt.get("Name", "")] = (opt.text or "").strip()
    if not request.action or not request.message_id:
        raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "Action or MessageID is missing.", "s:Sender")
    return request


def new_uuid() -> str:
    return str(uuid.uuid4()).upper()


_X_NS = 'xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '


def envelope(request: WsmanRequest, body: str, *, with_rsp: bool = True, extra_ns: str = "") -> bytes:
    """A response envelope for `request` with `body` (already XML) inside s:Body.

    Like Windows, PowerShell-plugin answers carry a p:ActivityId and WinRS answers do not.
    """
    opening = _ENVELOPE_OPEN.format(extra=extra_ns) if with_rsp else _ENVELOPE_OPEN_PLAIN
    activity = f"<p:ActivityId>{new_uuid()}</p:ActivityId>" if request.resource_uri.startswith(PSRP_URI_PREFIX) else ""
    return (
        f"{opening}<s:Header><a:Action>{escape(request.action)}Response</a:Action>"
        f"<a:MessageID>uuid:{new_uuid()}</a:MessageID>{activity}"
        f"<a:To>{ANONYMOUS}</a:To><a:RelatesTo>{escape(request.message_id)}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def create_response(request: WsmanRequest, shell_id: str, shell_xml: str) -> bytes:
    body = (
        f"<x:ResourceCreated><a:Address>{escape(request.to)}</a:Address><a:ReferenceParameters>"
        f"<w:ResourceURI>{escape(request.resource_uri)}</w:ResourceURI><w:SelectorSet>"
        f'<w:Selector Name="ShellId">{escape(shell_id)}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
        f"</x:ResourceCreated>{shell_xml}"
    )
    return envelope(request, body, extra_ns=_X_NS)


def shell_xml(
    shell_id: str,
    resource_uri: str,
    owner: str,
    client_ip: str,
    idle_timeout_s: float,
    input_streams: str,
    output_streams: str,
    state: str = "Connected",
    *,
    run_time_s: float = 0.0,
    inactivity_s: float = 0.0,
    memory_mb: int | None = None,
    child_processes: int = 0,
) -> str:
    """The informational rsp:Shell block Windows returns on Create and Get (shorter for WinRS);
    a Get adds the shell host's MemoryUsed and ChildProcesses (`memory_mb` set)."""
    psrp = resource_uri.startswith(PSRP_URI_PREFIX)
    process = f"<rsp:ProcessId>{1000 + (hash(shell_id) % 8000)}</rsp:ProcessId>" if psrp else ""
    head = (
        f'<rsp:Shell xmlns:rsp="{NS_RSP}"><rsp:ShellId>{escape(shell_id)}</rsp:ShellId>'
        f"<rsp:ResourceUri>{escape(resource_uri)}</rsp:ResourceUri><rsp:Owner>{escape(owner)}</rsp:Owner>"
        f"<rsp:ClientIP>{escape(client_ip)}</rsp:ClientIP>{process}"
        f"<rsp:IdleTimeOut>PT{idle_timeout_s:.3f}S</rsp:IdleTimeOut><rsp:InputStreams>{escape(input_streams)}</rsp:InputStreams>"
        f"<rsp:OutputStreams>{escape(output_streams)}</rsp:OutputStreams>"
    )
    middle = (
        "<rsp:MaxIdleTimeOut>PT2147483.647S</rsp:MaxIdleTimeOut><rsp:Locale>en-US</rsp:Locale>"
        "<rsp:DataLocale>en-US</rsp:DataLocale><rsp:CompressionMode>NoCompression</rsp:CompressionMode>"
        "<rsp:ProfileLoaded>Yes</rsp:ProfileLoaded><rsp:Encoding>UTF8</rsp:Encoding><rsp:BufferMode>Block</rsp:BufferMode>"
        f"<rsp:State>{escape(state)}</rsp:State>"
        if psrp
        else ""
    )
    usage = (
        f"<rsp:MemoryUsed>{memory_mb}MB</rsp:MemoryUsed><rsp:ChildProcesses>{child_processes}</rsp:ChildProcesses>"
        if memory_mb is not None and psrp
        else ""
    )
    return (
        f"{head}{middle}<rsp:ShellRunTime>{_dhms(run_time_s)}</rsp:ShellRunTime>"
        f"<rsp:ShellInactivity>{_dhms(inactivity_s)}</rsp:ShellInactivity>{usage}</rsp:Shell>"
    )


def _dhms(seconds: float) -> str:
    """xs:duration as WinRM writes it: P0DT0H1M2S."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"P{days}DT{hours}H{minutes}M{secs}S"


def command_response(request: WsmanRequest, command_id: str) -> bytes:
    body = f"<rsp:CommandResponse><rsp:CommandId>{escape(command_id)}</rsp:CommandId></rsp:CommandResponse>"
    return envelope(request, body, extra_ns=_X_NS)


def simple_response(request: WsmanRequest, element: str) -> bytes:
    """Send/Signal: an empty `rsp:<element>`."""
    return envelope(request, f"<rsp:{element}/>", extra_ns=_X_NS)


def delete_response(request: WsmanRequest) -> bytes:
    return envelope(request, "", with_rsp=False)


@dataclass
class StreamChunk:
    name: str  # stdout | stderr
    data: bytes
    end: bool = False


def receive_response(
    request: WsmanRequest,
    command_id: str | None,
    chunks: list[StreamChunk],
    *,
    done: bool,
    exit_code: int | None = None,
    running_state: bool = False,
) -> bytes:
    """`rsp:ReceiveResponse`: one Stream element per chunk, then the CommandState when known."""
    import base64

    cid = f" CommandId={quoteattr(command_id)}" if command_id else ""
    parts = ["<rsp:ReceiveResponse>"]
    for chunk in chunks:
        end = ' End="true"' if chunk.end else ""
        parts.append(f'<rsp:Stream Name="{chunk.name}"{cid}{end}>{base64.b64encode(chunk.data).decode("ascii")}</rsp:Stream>')
    if command_id and done:
        code = f"<rsp:ExitCode>{exit_code}</rsp:ExitCode>" if exit_code is not None else ""
        parts.append(f'<rsp:CommandState{cid} State="{COMMAND_STATE_DONE}">{code}</rsp:CommandState>')
    elif command_id and running_state:
        parts.append(f'<rsp:CommandState{cid} State="{COMMAND_STATE_RUNNING}"/>')
    parts.append("</rsp:ReceiveResponse>")
    return envelope(request, "".join(parts))


def fault_envelope(relates_to: str | None, fault: WSManFault, machine: str) -> bytes:
    """The SOAP fault Windows sends with HTTP 500."""
    relates = f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>" if relates_to else ""
    detail = f"<w:FaultDetail>{escape(fault.detail)}</w:FaultDetail>" if fault.detail else ""
    message = _fault_message(fault, machine)
    return (
        '<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
        'xmlns:e="http://schemas.xmlsoap.org/ws/2004/08/eventing" xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">'
        f"<s:Header><a:Action>{ACTION_FAULT}</a:Action><a:MessageID>uuid:{new_uuid()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To>{relates}</s:Header><s:Body><s:Fault><s:Code><s:Value>{escape(fault.value)}</s:Value>"
        f"<s:Subcode><s:Value>{escape(fault.subcode)}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason><s:Detail>{detail}'
        f'<f:WSManFault xmlns:f="{NS_F}" Code="{fault.code}" Machine={quoteattr(machine)}>'
        f"<f:Message>{message}</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"
    ).encode()


def _fault_message(fault: WSManFault, machine: str) -> str:
    """f:Message, with Windows' f:ProviderFault nesting when a plugin raised the fault."""
    if fault.provider is None:
        return escape(fault.message)
    name, path = fault.provider
    inner = escape(fault.message)
    if fault.provider_code is not None:
        inner = (
            f'<f:WSManFault xmlns:f="{NS_F}" Code="{fault.provider_code}" Machine={quoteattr(machine)}>'
            f"<f:Message>{inner}</f:Message></f:WSManFault>"
        )
    return f"<f:ProviderFault provider={quoteattr(name)} path={quoteattr(path)}>{inner}</f:ProviderFault>"


def timed_out() -> WSManFault:
    return WSManFault(
        2150858793,
        "w:TimedOut",
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ",
    )


_UNEXPECTED_SELECTORS = "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors"
_INVALID_SELECTORS = (
    "The WS-Management service cannot process the request because the request contained invalid selectors "
    "for the resource. "
)


def invalid_selectors() -> WSManFault:
    """An unknown ShellId, as the shell provider of WsmSvc.dll words it."""
    return WSManFault(
        2150858843,
        "w:InvalidSelectors",
        _INVALID_SELECTORS,
        "s:Sender",
        detail=_UNEXPECTED_SELECTORS,
        provider=("Shell provider", "%systemroot%\\system32\\WsmSvc.dll"),
        provider_code=2150858843,
    )


def unknown_command() -> WSManFault:
    """A CommandId the shell does not know (completed or never created)."""
    return WSManFault(
        2150858843,
        "w:InvalidSelectors",
        "The Windows Remote Shell received a request to perform an operation on a command identifier that does "
        "not exist. Either the command has completed execution or the client specified an invalid command "
        "identifier. ",
        "s:Sender",
        reason=_INVALID_SELECTORS,
        detail=_UNEXPECTED_SELECTORS,
    )


def shell_quota(limit: int) -> WSManFault:
    return WSManFault(
        2150859173,
        "w:QuotaLimit",
        f"The WS-Management service cannot process the request. This user is allowed a maximum number of {limit} "
        "concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. ",
    )


def generic_fault(code: int) -> WSManFault:
    """A fault for an injected code; known codes get their real subcode and wording."""
    if code == 2150858793:
        return timed_out()
    if code == 2150858843:
        return invalid_selectors()
    if code == 2150859173:
        return shell_quota(30)
    if code == 2150859174:
        return WSManFault(
            code,
            "w:QuotaLimit",
            "The WS-Management service cannot process the request. This user is allowed a maximum number of 15 "
            "concurrent operations, which has been exceeded. Close existing operations for this user, or raise the "
            "quota for this user. ",
        )
    if code == 2147943418:
        return WSManFault(code, "w:InternalError", "Illegal operation attempted on a registry key that has been marked for deletion. ")
    return WSManFault(code, "w:InternalError", "The WS-Management service cannot process the request. ")
