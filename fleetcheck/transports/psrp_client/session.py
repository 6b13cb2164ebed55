"""The PSRP conversation with one host: open a runspace pool, run one pipeline, delete the shell.

psrpcore's public client state machines own the protocol (fragments, CLIXML, states, events);
this module only moves their payloads in and out of WSMan requests: `data_to_send()` becomes a
Create/Command/Send body, every Receive's streams go to `receive_data()`, and `next_event()`
yields typed events until the pool is opened and the pipeline has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import psrpcore
from psrpcore.types import (
    ErrorRecord,
    HostMethodIdentifier,
    InformationalRecord,
    PSInvocationState,
    PSVersion,
    RunspacePoolState,
)

from fleetcheck.errors import HostError, ProtocolError, TimedOut, Unsupported
from fleetcheck.transports.psrp_client import envelope as wsman
from fleetcheck.transports.psrp_client.connection import Deadline, WSManConnection
from fleetcheck.transports.psrp_client.payloads import PayloadCache, without_private_data

log = logging.getLogger(__name__)

#: Longest single Receive long-poll; the host answers a TimedOut fault after it and we ask again.
OPERATION_TIMEOUT = 10
#: Seconds granted to delete the shell after the deadline or a cancel.
CLOSE_GRACE = 5.0
#: Characters of output text kept per host; more is an error, not a truncation.
MAX_OUTPUT_CHARS = 32 * 1024 * 1024
#: Error records kept per host (the rest are counted, not held).
MAX_ERROR_RECORDS = 50

_FINAL = frozenset({PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped})
_MODERN = PSVersion("2.2")


@dataclass
class PipelineResult:
    """What one pipeline produced, as psrpcore deserialized it."""

    output: list[Any] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    state: PSInvocationState = PSInvocationState.NotStarted
    reason: ErrorRecord | None = None  # the terminating error of a Failed pipeline
    exit_code: int | None = None  # from a SetShouldExit host call
    protocol_version: str = ""
    other_records: int = 0  # progress, verbose, warning, debug, information
    unreadable: list[str] = field(default_factory=list)  # records psrpcore could not deserialize

    @property
    def failed(self) -> bool:
        return self.state == PSInvocationState.Failed


def output_text(item: Any) -> str:
    """One output object as text: strings as they are, objects by their .NET ToString."""
    if item is None:
        return ""
    if isinstance(item, str):
        return str(item)
    if isinstance(item, InformationalRecord):  # a merged debug/verbose/warning record: its message
        return str(item.Message)
    if isinstance(item, ErrorRecord):
        return str(item)
    meta = getattr(item, "PSObject", None)
    to_string = getattr(meta, "to_string", None) if meta is not None else None
    return to_string if isinstance(to_string, str) else str(item)


def plain(item: Any) -> Any:
    """An output object as plain Python data (str, int, float, bool, None, list, dict)."""
    if item is None or isinstance(item, bool):
        return item
    if isinstance(item, str):
        return str(item)
    if isinstance(item, int):
        return int(item)
    if isinstance(item, float):
        return float(item)
    if isinstance(item, dict):
        return {plain(k): plain(v) for k, v in item.items()}
    if isinstance(item, list | tuple):
        return [plain(v) for v in item]
    return output_text(item)


class PsrpSession:
    """One runspace pool with one pipeline on one host, over a `WSManConnection`."""

    def __init__(
        self,
        conn: WSManConnection,
        deadline: Deadline,
        *,
        session_id: str | None = None,
        cache: PayloadCache | None = None,
    ) -> None:
        self.conn = conn
        self.cache = cache or PayloadCache()
        self.deadline = deadline
        self.session_id = session_id or f"uuid:{str(uuid.uuid4()).upper()}"
        self.max_envelope = wsman.DEFAULT_MAX_ENVELOPE
        self.pool = psrpcore.ClientRunspacePool()
        self.shell_id: str | None = None
        self._create: asyncio.Future[Any] | None = None
        self.running: str | None = None  # the command id of a pipeline started and not ended
        self.unreadable: list[str] = []

    def _envelope(
        self, action: str, *, command: bool = True, options: Any = (), body: str = ""
    ) -> wsman.Envelope:
        left = self._left_seconds()
        return wsman.build(
            action,
            to=self.conn.endpoint,
            session_id=self.session_id,
            max_envelope=self.max_envelope,
            timeout_s=max(1, min(OPERATION_TIMEOUT, int(left) - 1)),
            shell_id=self.shell_id if command else None,
            options=options,
            body=body,
        )

    def _left_seconds(self) -> float:
        try:
            return self.deadline.left()
        except TimedOut:
            return 0.0

    async def _post(self, env: wsman.Envelope) -> Any:
        return await self.conn.post(env, self.deadline)

    async def open(self) -> None:
        """Create the shell with the pool's opening messages, then receive until it is Opened."""
        payload = self.cache.open_payload(self.pool)
        shell_id = str(self.pool.runspace_pool_id).upper()
        body = wsman.create_body(shell_id, payload)
        env = self._envelope(wsman.ACTION_CREATE, command=False, options=wsman.CREATE_OPTIONS, body=body)
        # Shielded: a Create cut short by a cancel could leave a shell whose id we never learn.
        self._create = asyncio.ensure_future(self._post(env))
        self.shell_id = wsman.created_shell_id(await asyncio.shield(self._create))
        while self.pool.state != RunspacePoolState.Opened:
            for event in await self._receive(None):
                if isinstance(event, psrpcore.RunspacePoolStateEvent) and event.state in (
                    RunspacePoolState.Broken,
                    RunspacePoolState.Closed,
                ):
                    why = str(event.reason) if event.reason else event.state.name
                    raise Unsupported(
                        f"the host refused the PowerShell runspace: {why}", error_type="broken_pool"
                    )
        their = self.pool.their_capability
        if their is not None and their.protocolversion >= _MODERN:
            self.max_envelope = wsman.MODERN_MAX_ENVELOPE

    async def _receive(self, ps: psrpcore.ClientPowerShell | None) -> list[psrpcore.PSRPEvent[Any, Any]]:
        """One Receive (pool or pipeline); the events its streams complete. A TimedOut fault is an empty answer."""
        pipeline_id = ps.pipeline_id if ps is not None else None
        command_id = str(pipeline_id).upper() if pipeline_id else None
        env = self._envelope(
            wsman.ACTION_RECEIVE, options=wsman.RECEIVE_OPTIONS, body=wsman.receive_body(command_id)
        )
        try:
            root = await self._post(env)
        except TimedOut as exc:
            if exc.error_type != "wsman_timeout":
                raise
            return []
        chunks, _ = wsman.received_streams(root)
        events: list[psrpcore.PSRPEvent[Any, Any]] = []
        for chunk in chunks:
            opening = ps is None and self.pool.state == RunspacePoolState.Opening
            if ps is None:
                chunk = without_private_data(chunk)
                if not chunk or (opening and self.cache.opening_from_cache(self.pool, chunk)):
                    continue
            elif self.cache.completed_from_cache(ps, chunk):
                continue
            first = len(events)
            self.pool.receive_data(psrpcore.PSRPPayload(chunk, psrpcore.StreamType.default, pipeline_id))
            while True:
                try:
                    event = self.pool.next_event()
                except psrpcore.PSRPCoreError as exc:  # framing or state: the conversation cannot go on
                    raise ProtocolError(f"PSRP protocol error: {exc}", error_type="psrp") from exc
                except Exception as exc:
                    # psrpcore consumed the message but could not build its object (e.g. 0.3.1
                    # on an InvocationInfo without SerializeExtent, as PowerShell 2.0 sends it):
                    # that one record is lost, the conversation goes on, the deadline bounds it.
                    self.unreadable.append(f"{type(exc).__name__}: {exc}")
                    if len(self.unreadable) > MAX_ERROR_RECORDS:
                        raise ProtocolError(
                            f"PSRP protocol error: unreadable records ({exc})", error_type="psrp"
                        ) from exc
                    continue
                if event is None:
                    break
                events.append(event)
            if ps is not None:
                self.cache.remember_completed(ps, chunk, events[first:])
            elif opening:
                self.cache.remember_opening(self.pool, chunk, events[first:])
        return events

    async def run(self, script: str, parameters: dict[str, Any]) -> PipelineResult:
        """Run `script` with `parameters` in the opened pool and collect everything it sends."""
        room = wsman.max_payload(self.max_envelope)
        ps, payloads = self.cache.pipeline_payloads(self.pool, script, parameters, room)
        command_id = str(ps.pipeline_id).upper()
        # Each payload leaves the list as its request is built: no copy of the bundle waits
        # with this host for an answer.
        body = wsman.command_body(command_id, payloads.pop(0))
        env = self._envelope(wsman.ACTION_COMMAND, options=wsman.COMMAND_OPTIONS, body=body)
        del body
        self.running = command_id  # from here a cut-short run leaves a pipeline to terminate
        await self._post(env)
        while payloads:
            body = wsman.send_body(command_id, payloads.pop(0))
            env = self._envelope(wsman.ACTION_SEND, body=body)
            del body
            await self._post(env)
        del env
        result = PipelineResult(
            protocol_version=str(self.pool.their_capability.protocolversion)
            if self.pool.their_capability
            else ""
        )
        chars = 0
        while result.state not in _FINAL:
            for event in await self._receive(ps):
                if isinstance(event, psrpcore.PipelineOutputEvent):
                    chars += len(output_text(event.data))
                    if chars > MAX_OUTPUT_CHARS:
                        raise ProtocolError(
                            f"output too large: more than {MAX_OUTPUT_CHARS} characters",
                            error_type="output_too_large",
                        )
                    result.output.append(event.data)
                elif isinstance(event, psrpcore.ErrorRecordEvent):
                    if len(result.errors) < MAX_ERROR_RECORDS:
                        result.errors.append(event.record)
                elif isinstance(event, psrpcore.PipelineStateEvent):
                    result.state = event.state
                    result.reason = event.reason
                elif isinstance(event, psrpcore.PipelineHostCallEvent):
                    if (
                        event.method_identifier == HostMethodIdentifier.SetShouldExit
                        and event.method_parameters
                    ):
                        result.exit_code = int(event.method_parameters[0])
                else:
                    result.other_records += 1
            if ps.state == PSInvocationState.Completed and result.state not in _FINAL:
                result.state = ps.state  # a Completed message known from an earlier host
        self.running = None
        with contextlib.suppress(psrpcore.PSRPCoreError):
            ps.close()
        result.unreadable = list(self.unreadable)
        return result

    async def close(self) -> None:
        """Delete the shell (best effort: a failure here never replaces the run's own outcome)."""
        if self.shell_id is None:
            return
        self.deadline.extend(CLOSE_GRACE if self._left_seconds() < 1 else 0)
        if self.running is not None:
            await self._terminate(self.running)
        try:
            await self._post(self._envelope(wsman.ACTION_DELETE))
        except asyncio.CancelledError:
            raise
        except (HostError, OSError) as exc:
            log.debug("deleting the shell on %s failed: %s", self.conn.address, exc)
        self.shell_id = None

    async def _terminate(self, command_id: str) -> None:
        """Signal a pipeline still running to stop, as PowerShell does before it deletes the shell
        (best effort: the Delete that follows ends it anyway)."""
        self.running = None
        body = wsman.signal_body(command_id)
        try:
            await self._post(self._envelope(wsman.ACTION_SIGNAL, body=body))
        except asyncio.CancelledError:
            raise
        except (HostError, OSError) as exc:
            log.debug("stopping the pipeline on %s failed: %s", self.conn.address, exc)

    async def close_after_cancel(self) -> None:
        """After a cancel: learn the id of a Create still in flight, then delete the shell."""
        if self.shell_id is None and self._create is not None:
            try:
                self.shell_id = wsman.created_shell_id(await self._create)
            except BaseException:
                return
        if self.conn.http is not None and not self.conn.http.usable:
            self.conn.close()
        await self.close()


async def run_script(
    conn: WSManConnection,
    script: str,
    parameters: dict[str, Any],
    timeout: float,
    cache: PayloadCache | None = None,
) -> PipelineResult:
    """Open, run, close: the whole exchange with one host within `timeout` seconds."""
    session = PsrpSession(conn, Deadline(timeout), cache=cache)
    try:
        try:
            await session.open()
            result = await session.run(script, parameters)
        except asyncio.CancelledError:
            session.deadline.extend(CLOSE_GRACE)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(session.close_after_cancel(), CLOSE_GRACE)
            raise
        except BaseException:
            if conn.http is not None and not conn.http.usable:
                conn.close()
            await close_uncut(session)
            raise
        await close_uncut(session)
        return result
    finally:
        conn.close()


async def close_uncut(session: PsrpSession) -> None:
    """Delete the shell; a cancel arriving meanwhile (Ctrl-C, SIGTERM) waits for it, within CLOSE_GRACE.

    A Delete cut short leaves the shell on the host, holding one of its few shells per user.
    """
    closing = asyncio.ensure_future(session.close())
    try:
        await asyncio.shield(closing)
    except asyncio.CancelledError:
        session.deadline.extend(CLOSE_GRACE)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(closing, CLOSE_GRACE)
        raise
