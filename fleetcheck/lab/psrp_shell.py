"""The PowerShell remoting shell (`.../powershell/Microsoft.PowerShell`) on psrpcore's server side.

psrpcore is sans-IO: we feed it the base64 payloads from Create/Command/Send, it queues
replies, and we route every outgoing payload to the queue of its target (the pool or one
pipeline) because WSMan Receives are targeted and psrpcore cannot be asked per target.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import struct
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from psrpcore import (
    CreatePipelineEvent,
    EndOfPipelineInputEvent,
    GetAvailableRunspacesEvent,
    GetCommandMetadataEvent,
    PSRPEvent,
    PSRPPayload,
    ResetRunspaceStateEvent,
    ServerPipeline,
    ServerRunspacePool,
    SetMaxRunspacesEvent,
    SetMinRunspacesEvent,
    StreamType,
)
from psrpcore.types import (
    CommandOrigin,
    CommandTypes,
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    HostMethodIdentifier,
    InvocationInfo,
    NETException,
    PipelineState,
    PSCustomObject,
    PSInvocationState,
    PSPrimitiveDictionary,
    PSRPMessageType,
    PSVersion,
    RunspacePoolState,
    SessionCapability,
)

from fleetcheck.lab.engine import LabErrorRecord, PSVersionValue, ScriptOutcome, ScriptRequest, run_script
from fleetcheck.lab.faults import pick_fault
from fleetcheck.lab.host import LabHost
from fleetcheck.lab.render import out_string_lines
from fleetcheck.lab.shellbase import LabShell
from fleetcheck.lab.wsman import (
    NS_RSP,
    StreamChunk,
    WSManFault,
    WsmanRequest,
    invalid_selectors,
    receive_response,
    unknown_command,
)

_FRAGMENT_SIZE = 32768
_TERMINAL = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)


#: Sessions open with the same client constants and scripts; psrpcore's CLIXML work for them
#: is most of the lab's CPU. Both caches hold what psrpcore produced the first time, read only.
_CACHE_MAX_ENTRIES = 64
_CACHE_MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class _OpenReply:
    """What psrpcore answered to one pool-open payload, and the pool state it left."""

    messages: tuple[bytes, ...]  # whole server messages, with the pool id of `rpid`
    rpid: bytes
    capability: Any
    host: Any
    arguments: Any
    min_runspaces: int
    max_runspaces: int


_OPEN_REPLIES: OrderedDict[tuple[Any, ...], _OpenReply] = OrderedDict()
_PIPELINES: OrderedDict[bytes, Any] = OrderedDict()  # CreatePipeline CLIXML -> PowerShell metadata


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    if len(cache) > _CACHE_MAX_ENTRIES:
        cache.popitem(last=False)


_KNOWN_COMMANDS = {
    "Get-Command": "Microsoft.PowerShell.Core",
    "Get-Service": "Microsoft.PowerShell.Management",
    "Get-Process": "Microsoft.PowerShell.Management",
    "Get-ItemProperty": "Microsoft.PowerShell.Management",
    "Get-Content": "Microsoft.PowerShell.Management",
    "New-PSSession": "Microsoft.PowerShell.Core",
    "Invoke-Command": "Microsoft.PowerShell.Core",
    "ConvertTo-Json": "Microsoft.PowerShell.Utility",
    "ConvertFrom-Json": "Microsoft.PowerShell.Utility",
    "Write-Output": "Microsoft.PowerShell.Utility",
}


def _os_build(host: LabHost) -> str:
    """`[Environment]::OSVersion.Version` of the simulated host, e.g. 10.0.17763.5830."""
    os_info = host.machine.os
    major_minor = ".".join(os_info.version.split(".")[:2]) or "10.0"
    return f"{major_minor}.{os_info.build_number}.{os_info.ubr or 0}"


_BOM = b"\xef\xbb\xbf"
_HEADER = struct.Struct(">QQBI")


def _whole_messages(data: bytes) -> list[bytes]:
    """The messages in a payload whose every message is one fragment (psrpcore without a size)."""
    out: list[bytes] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        _oid, _fid, flags, length = _HEADER.unpack_from(data, pos)
        if flags & 3 == 3:
            out.append(data[pos + _HEADER.size : pos + _HEADER.size + length])
        pos += _HEADER.size + length
    return out


def _fragments(object_id: int, message: bytes, size: int = _FRAGMENT_SIZE) -> list[bytes]:
    room = size - _HEADER.size
    parts = [message[i : i + room] for i in range(0, len(message), room)] or [b""]
    last = len(parts) - 1
    return [
        _HEADER.pack(object_id, fid, (1 if fid == 0 else 0) | (2 if fid == last else 0), len(part)) + part
        for fid, part in enumerate(parts)
    ]


def _message_type(fragment: bytes) -> int | None:
    """The message type of a start fragment (None for a continuation)."""
    _oid, _fid, flags, length = _HEADER.unpack_from(fragment)
    if not flags & 1 or length < 8:
        return None
    return int(struct.unpack_from("<I", fragment, _HEADER.size + 4)[0])


def _b64(text: str | None) -> bytes:
    try:
        return base64.b64decode((text or "").strip(), validate=True)
    except binascii.Error:
        raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "The stream data is not valid base64.", "s:Sender") from None


def _private_data(version: str, os_build: str) -> dict[str, Any]:
    """ApplicationPrivateData as Windows PowerShell 5.1 sends it: a PSPrimitiveDictionary whose
    BuildVersion is the OS build (10.0.17763.x on Server 2019), with PSCompatibleVersions."""
    return {"PSVersionTable": _version_table(version, os_build)}


@functools.lru_cache(maxsize=64)
def _version_table(version: str, os_build: str) -> PSPrimitiveDictionary:
    """One table per (PowerShell version, OS build), shared by every shell of a lab process:
    psrpcore only reads it (its defaults are keys the table already has), and building it was
    a twentieth of the lab's CPU per session."""
    ps = PSVersion(version)
    compatible = [PSVersion(v) for v in ("1.0", "2.0", "3.0", "4.0", "5.0", "5.1.0.0")]
    if ps.major < 5:
        compatible = [v for v in compatible if v.major <= ps.major]
    table = PSPrimitiveDictionary(
        {
            "PSRemotingProtocolVersion": PSVersion("2.3"),
            "PSEdition": "Desktop",
            "PSCompatibleVersions": compatible,
            "BuildVersion": PSVersion(os_build),
            "CLRVersion": PSVersion("4.0.30319.42000"),
            "PSVersion": ps,
            "WSManStackVersion": PSVersion("3.0"),
            "SerializationVersion": PSVersion("1.1.0.1"),
        }
    )
    return table


def _invocation(record: LabErrorRecord) -> InvocationInfo:
    """Where the error happened, as PowerShell records it for a command typed at line 1."""
    line = record.command or ""
    return InvocationInfo(
        BoundParameters={},
        CommandOrigin=CommandOrigin.Internal,
        ExpectingInput=False,
        HistoryId=1,
        InvocationName=line,
        Line=line,
        OffsetInLine=1,
        PipelineLength=0,
        PipelinePosition=0,
        PositionMessage=f"At line:1 char:1\n+ {line}\n+ {'~' * max(1, len(line))}" if line else "",
        PSCommandPath=None,
        PSScriptRoot="",
        ScriptLineNumber=1,
        ScriptName="",
        UnboundArguments=[],
    )


def _write_error(pipe: ServerPipeline, record: LabErrorRecord) -> None:
    """A non-terminating error with the parts Windows serializes (InvocationInfo, iteration, stack)."""
    exc, info = _error_record(record)
    pipe.write_error(
        exc,
        info,
        target_object=record.target,
        fully_qualified_error_id=record.fully_qualified_error_id,
        invocation_info=_invocation(record),
        pipeline_iteration_info=[0, 0],
        script_stack_trace="at <ScriptBlock>, <No file>: line 1",
    )


def _error_record(record: LabErrorRecord) -> tuple[NETException, ErrorCategoryInfo]:
    exc = NETException(
        Message=record.message,
        HResult=-2146233087,
        Data={},
        HelpLink=None,
        InnerException=None,
        Source="System.Management.Automation",
        StackTrace="   at System.Management.Automation.CommandDiscovery.LookupCommandInfo(String commandName)",
        TargetSite=None,
    )
    exc.PSObject.type_names = [record.exception_type, "System.SystemException", "System.Exception", "System.Object"]
    try:
        category = ErrorCategory[record.category]
    except KeyError:
        category = ErrorCategory.NotSpecified
    info = ErrorCategoryInfo(
        Category=category,
        Reason=record.reason,
        TargetName=record.target or "",
        TargetType="String" if record.target else "",
    )
    return exc, info


def _to_ps_value(value: Any) -> Any:
    if isinstance(value, PSVersionValue):
        return PSVersion(value.text)
    return value


class _PipelineSink:
    """Engine output into one psrpcore pipeline (`Out-String -Stream` turns objects into lines)."""

    def __init__(self, shell: PsrpShell, pipe: ServerPipeline, as_text: bool) -> None:
        self.shell = shell
        self.pipe = pipe
        self.as_text = as_text

    def write_output(self, value: Any) -> None:
        if self.pipe.state != PSInvocationState.Running:
            return
        if self.as_text:
            for line in out_string_lines(value):
                self.pipe.write_output(line)
        else:
            self.pipe.write_output(_to_ps_value(value))
        self.shell.flush()

    def write_error(self, record: LabErrorRecord) -> None:
        if self.pipe.state != PSInvocationState.Running:
            return
        _write_error(self.pipe, record)
        self.shell.flush()


def script_request(pipe: ServerPipeline, user: str) -> tuple[ScriptRequest, bool]:
    """Turn a CreatePipeline's command list into (request, output-as-text)."""
    commands: list[Any] = list(getattr(pipe.metadata, "commands", []))
    if not commands:
        return ScriptRequest(script="", transport="psrp", user=user), False
    first = commands[0]
    as_text = any(c.command_text.lower() == "out-string" for c in commands[1:])
    params: dict[str, Any] = {}
    positional: list[Any] = []
    for name, value in first.parameters:
        if name is None:
            positional.append(value)
        else:
            params[name] = value
    if not first.is_script and first.command_text.lower() in ("invoke-expression", "iex"):
        script = params.pop("Command", positional[0] if positional else "")
        return ScriptRequest(script=str(script), transport="psrp", user=user), as_text
    if positional:
        params["args"] = positional
    return ScriptRequest(script=first.command_text, parameters=params, transport="psrp", user=user), as_text


class PsrpShell(LabShell):
    input_streams = "stdin pr"
    output_streams = "stdout"

    def __init__(self, host: LabHost, shell_id: str, owner: str, resource_uri: str, client_ip: str, creation: bytes) -> None:
        super().__init__(host, shell_id, owner, resource_uri, client_ip)
        version = host.machine.powershell.version
        protocol = host.machine.winrm.protocol_version
        os_build = _os_build(host)
        self.pool = ServerRunspacePool(application_private_data=_private_data(version, os_build))
        if protocol != "2.3":
            self.pool.our_capability = SessionCapability(
                PSVersion=PSVersion("2.0"),
                protocolversion=PSVersion(protocol),
                SerializationVersion=PSVersion("1.1.0.1"),
            )
        self.queues: dict[uuid.UUID | None, deque[bytes]] = {None: deque()}
        self.pipe_tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.command_ids: dict[str, uuid.UUID] = {}  # WSMan CommandId (upper) -> PSRP pipeline id
        self.command_names: dict[uuid.UUID, str] = {}  # and back, as the client spelled it
        self.user = owner
        self.min_runspaces = self.max_runspaces = 1
        self._object_id = 0
        self._sent_to_pool: list[bytes] | None = None
        self._open((version, protocol, os_build), creation)
        if pick_fault(host, "Create", ("broken_pool",)) is not None:
            self._break_pool()

    def _open(self, constants: tuple[str, ...], creation: bytes) -> None:
        """Open the pool: through psrpcore the first time, from its cached answer afterwards."""
        messages = _whole_messages(creation)
        rpid = messages[0][8:24] if messages and len(messages[0]) >= 40 else b""
        key = (constants, tuple(m[:8] + m[24:] for m in messages))
        cached = _OPEN_REPLIES.get(key) if rpid and sum(map(len, messages)) <= _CACHE_MAX_BYTES else None
        if cached is None:
            self._sent_to_pool = []
            self.feed(creation, None)
            sent, self._sent_to_pool = self._sent_to_pool, None
            if rpid and self.pool.state == RunspacePoolState.Opened:
                reply = _OpenReply(
                    tuple(sent),
                    self.pool.runspace_pool_id.bytes_le,
                    self.pool.their_capability,
                    self.pool.host,
                    self.pool.application_arguments,
                    self.pool.min_runspaces,
                    self.pool.max_runspaces,
                )
                _remember(_OPEN_REPLIES, key, reply)
                self.min_runspaces, self.max_runspaces = reply.min_runspaces, reply.max_runspaces
            return
        _OPEN_REPLIES.move_to_end(key)
        pool = self.pool
        pool.runspace_pool_id = uuid.UUID(bytes_le=rpid)
        pool.their_capability = cached.capability
        pool.host = cached.host
        pool.application_arguments = cached.arguments
        pool.state = RunspacePoolState.Opened
        self.min_runspaces, self.max_runspaces = cached.min_runspaces, cached.max_runspaces
        for message in cached.messages:
            self._emit(None, message[:8] + rpid + message[24:])
        self.wake()

    def _break_pool(self) -> None:
        """Answer the open with RunspacePoolState Broken instead of Opened."""
        queue = self.queues[None]
        kept = [f for f in queue if _message_type(f) != PSRPMessageType.RunspacePoolState]
        queue.clear()
        queue.extend(kept)
        exc = NETException(Message="The runspace pool is broken (simulated).", HResult=-2146233087)
        error = ErrorRecord(
            Exception=exc,
            CategoryInfo=ErrorCategoryInfo(Category=ErrorCategory.OpenError, Reason="PSRemotingTransportException"),
            FullyQualifiedErrorId="PSSessionStateBroken",
        )
        self.pool.state = RunspacePoolState.Opened
        self.pool.set_broken(error)
        self.flush()

    # -- psrpcore plumbing -------------------------------------------------------------------
    def feed(self, raw: bytes, pipeline_id: uuid.UUID | None) -> None:
        if pipeline_id is None:
            # pypsrp 0.9 names the call id `CI`; .NET binds properties case-insensitively
            raw = raw.replace(b'<I64 N="CI">', b'<I64 N="ci">')
        try:
            self.pool.receive_data(PSRPPayload(raw, StreamType.default, pipeline_id))
            while (event := self.pool.next_event()) is not None:
                if isinstance(event, CreatePipelineEvent):
                    pipe = self.pool.pipeline_table[event.pipeline_id]
                    if getattr(pipe.metadata, "no_input", True):
                        self._start(pipe)
                elif isinstance(event, EndOfPipelineInputEvent) and event.pipeline_id is not None:
                    self._start(self.pool.pipeline_table[event.pipeline_id])
                elif isinstance(event, GetCommandMetadataEvent):
                    self._command_metadata(self.pool.pipeline_table[event.pipeline_id], event)
                else:
                    self._availability(event)
        except WSManFault:
            raise
        except Exception as exc:
            raise WSManFault(2150858817, "w:InternalError", f"The PSRP data could not be processed: {type(exc).__name__}.") from None
        self.flush()

    def _availability(self, event: PSRPEvent) -> None:
        """SetMax/SetMinRunspaces, ResetRunspaceState, GetAvailableRunspaces: answered as Windows does."""
        pool = self.pool
        if isinstance(event, SetMaxRunspacesEvent):
            ok = event.count >= max(1, self.min_runspaces)
            self.max_runspaces = event.count if ok else self.max_runspaces
            pool.runspace_availability_response(event.ci, ok)
        elif isinstance(event, SetMinRunspacesEvent):
            ok = 1 <= event.count <= self.max_runspaces
            self.min_runspaces = event.count if ok else self.min_runspaces
            pool.runspace_availability_response(event.ci, ok)
        elif isinstance(event, ResetRunspaceStateEvent):
            running = any(p.state == PSInvocationState.Running for p in pool.pipeline_table.values())
            pool.runspace_availability_response(event.ci, not running)
        elif isinstance(event, GetAvailableRunspacesEvent):
            in_use = sum(1 for p in pool.pipeline_table.values() if p.state == PSInvocationState.Running)
            pool.runspace_availability_response(event.ci, max(0, self.max_runspaces - in_use))

    def _command_metadata(self, pipe: ServerPipeline, event: GetCommandMetadataEvent) -> None:
        """Get-Command through PSRP: a count object, then one CmdletInfo-like object per match."""
        import fnmatch

        patterns = [str(n).lower() for n in (event.pipeline.name or ["*"])]
        names = [n for n in _KNOWN_COMMANDS if any(fnmatch.fnmatchcase(n.lower(), p) for p in patterns)]
        pipe.start()
        count = PSCustomObject(Count=len(names))
        count.PSObject.type_names = [
            "Selected.Microsoft.PowerShell.Commands.GenericMeasureInfo",
            "System.Management.Automation.PSCustomObject",
            "System.Object",
        ]
        pipe.write_output(count)
        for name in names:
            info = PSCustomObject(
                Name=name,
                Namespace=_KNOWN_COMMANDS[name],
                HelpUri="",
                CommandType=CommandTypes.Cmdlet,
                ResolvedCommandName=None,
                OutputType=[],
                Parameters={},
            )
            info.PSObject.type_names = [
                "Selected.System.Management.Automation.CmdletInfo",
                "System.Management.Automation.PSCustomObject",
                "System.Object",
            ]
            pipe.write_output(info)
        pipe.complete()
        self.flush()

    def flush(self) -> None:
        """Drain psrpcore's outgoing buffer into per-target queues and wake Receives."""
        moved = False
        while (payload := self.pool.data_to_send()) is not None:
            for message in _whole_messages(payload.data):
                self._emit(payload.pipeline_id, message)
            moved = True
        if moved:
            self.wake()

    def _emit(self, target: uuid.UUID | None, message: bytes) -> None:
        """Queue one server message the way Windows frames it: a UTF-8 BOM before its CLIXML,
        fragments of at most 32 KiB, one fragment per rsp:Stream, object ids counted per shell."""
        if target is None and self._sent_to_pool is not None:
            self._sent_to_pool.append(message)
        if len(message) > 40 and not message[40:].startswith(_BOM):
            message = message[:40] + _BOM + message[40:]
        self._object_id += 1
        self.queues.setdefault(target, deque()).extend(_fragments(self._object_id, message))

    def _start(self, pipe: ServerPipeline) -> None:
        # Windows does not announce Running; the first thing the client sees is output.
        pipe.state = PSInvocationState.Running
        self.pipe_tasks[pipe.pipeline_id] = self.spawn(self._run(pipe))

    async def _run(self, pipe: ServerPipeline) -> None:
        request, as_text = script_request(pipe, self.user)
        outcome: ScriptOutcome = await run_script(self.host, request, _PipelineSink(self, pipe, as_text))
        if pipe.state != PSInvocationState.Running:
            return
        if outcome.should_exit is not None and self._client_has_host(pipe):
            # what PowerShell's `exit N` does in a remote pipeline: ask the client's host to exit
            self.pool.host_call(HostMethodIdentifier.SetShouldExit, [outcome.should_exit], pipe.pipeline_id)
        if outcome.terminating is not None:
            exc, info = _error_record(outcome.terminating)
            record = ErrorRecord(
                Exception=exc,
                CategoryInfo=info,
                FullyQualifiedErrorId=outcome.terminating.fully_qualified_error_id,
            )
            pipe.prepare_message(PipelineState(PipelineState=int(PSInvocationState.Failed), ExceptionAsErrorRecord=record))
            pipe.state = PSInvocationState.Failed
        else:
            pipe.complete()
        self.flush()

    def idle_expired(self) -> None:
        """A PowerShell session past its IdleTimeOut is disconnected, not deleted (Get says so)."""
        self.disconnected = True
        for task in list(self.pipe_tasks.values()):
            task.cancel()
        self.wake()

    def _client_has_host(self, pipe: ServerPipeline) -> bool:
        """Host calls go only to clients that sent a HostInfo with a host (pypsrp's PSHost, Ansible)."""
        for info in (getattr(pipe.metadata, "host", None), self.pool.host):
            if info is not None and not getattr(info, "IsHostNull", True):
                return True
        return False

    # -- WSMan verbs -------------------------------------------------------------------------
    def _pipeline_of(self, command_id: str | None) -> uuid.UUID | None:
        """The PSRP pipeline behind a WSMan CommandId (Windows keys pipelines by CommandId)."""
        if not command_id:
            return None
        pid = self.command_ids.get(command_id.upper())
        if pid is None:
            raise unknown_command()
        return pid

    async def command(self, request: WsmanRequest) -> str:
        line = request.body.find(f"{{{NS_RSP}}}CommandLine") if request.body is not None else None
        if line is None or not line.get("CommandId"):
            raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "CommandLine/CommandId is missing.", "s:Sender")
        command_id = line.get("CommandId", "").upper()
        arguments = line.find(f"{{{NS_RSP}}}Arguments")
        raw = _b64(arguments.text if arguments is not None else "")
        # The message header names the pipeline; older clients wrote that GUID in another byte
        # order than the CommandId, and Windows still accepts them, so trust the message.
        try:
            pid = uuid.UUID(bytes_le=raw[21 + 24 : 21 + 40])
        except ValueError:
            pid = uuid.UUID(command_id)
        self.command_ids[command_id] = pid
        self.command_names[pid] = line.get("CommandId", command_id)
        pipe = ServerPipeline(self.pool, pid)
        self.queues.setdefault(pid, deque())
        whole = _whole_messages(raw)
        clixml = whole[0][40:] if len(whole) == 1 and len(whole[0]) > 40 else b""
        create = bool(clixml) and _message_type(raw) == PSRPMessageType.CreatePipeline
        metadata = _PIPELINES.get(clixml) if create else None
        if metadata is None:
            self.feed(raw, pid)
            if create and len(clixml) <= _CACHE_MAX_BYTES and pipe.metadata is not None:
                _remember(_PIPELINES, clixml, pipe.metadata)
        else:  # the same CreatePipeline as an earlier session: psrpcore's object, read only
            _PIPELINES.move_to_end(clixml)
            pipe.metadata = metadata
            if getattr(metadata, "no_input", True):
                self._start(pipe)
        return line.get("CommandId", command_id)

    async def send(self, request: WsmanRequest) -> None:
        body = request.body
        for stream in body.iterfind(f".//{{{NS_RSP}}}Stream") if body is not None else []:
            self.feed(_b64(stream.text), self._pipeline_of(stream.get("CommandId")))

    def _target(self, request: WsmanRequest) -> uuid.UUID | None:
        desired = request.body.find(f".//{{{NS_RSP}}}DesiredStream") if request.body is not None else None
        return self._pipeline_of(desired.get("CommandId") if desired is not None else None)

    def _finished(self, target: uuid.UUID | None) -> bool:
        if target is None:
            return False
        pipe = self.pool.pipeline_table.get(target)
        return pipe is None or pipe.state in _TERMINAL

    async def receive(self, request: WsmanRequest) -> bytes:
        target = self._target(request)
        deadline = asyncio.get_running_loop().time() + request.operation_timeout
        queue = self.queues.setdefault(target, deque())
        while not queue:
            if self.closed:
                raise invalid_selectors()
            await self.wait_change(deadline)
        # raw bytes that fit once base64-encoded, with room for the envelope and each Stream tag
        budget = (request.max_envelope_size - 3072) // 4 * 3
        chunks: list[StreamChunk] = []
        used = 0
        while queue and (not chunks or used + len(queue[0]) + 120 <= budget):
            data = queue.popleft()
            used += len(data) + 120
            chunks.append(StreamChunk("stdout", data))
        done = not queue and self._finished(target)
        command_id = self.command_names.get(target) if target is not None else None
        self.touch()
        return receive_response(request, command_id, chunks, done=done, exit_code=0)

    async def signal(self, request: WsmanRequest) -> None:
        sig = request.body.find(f"{{{NS_RSP}}}Signal") if request.body is not None else None
        if sig is None:
            return
        code_el = sig.find(f"{{{NS_RSP}}}Code")
        code = (code_el.text or "") if code_el is not None else ""
        cid = sig.get("CommandId")
        pid = self.command_ids.get(cid.upper()) if cid else None
        pipe = self.pool.pipeline_table.get(pid) if pid else None
        if pipe is None:
            return
        if code.endswith(("ctrl_c", "crtl_c")) and pipe.state == PSInvocationState.Running:
            task = self.pipe_tasks.pop(pipe.pipeline_id, None)
            if task is not None:
                task.cancel()
            pipe.stop()
            self.flush()
        elif code.endswith("terminate"):
            if pipe.state == PSInvocationState.Running:
                pipe.stop()
            self.pool.pipeline_table.pop(pid, None)  # type: ignore[arg-type]
            self.queues.pop(pid, None)
