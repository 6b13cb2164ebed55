"""What a run does once with psrpcore for all its hosts: the messages it sends and the ones it reads.

Every host gets the same pool-open and CreatePipeline payloads but for the ids in each message
header, and every host of one server build answers the opening and the pipeline's end with the
same bytes but for the ids. `PayloadCache` keeps psrpcore's work on the first host and applies
it to the next ones through psrpcore's public `state` / `their_capability` attributes; the
fragment helpers below are MS-PSRP 2.2.4's framing, read without psrpcore's private parts.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psrpcore
from psrpcore.types import HostInfo, PSInvocationState, RunspacePoolState

_FRAGMENT = struct.Struct(">QQBI")


def _fragments(payload: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(offset, flags, data offset, data length) of each fragment whose header fits in `payload`.

    MS-PSRP 2.2.4: a fragment is object id, fragment id, flags (1 = start, 2 = end) and length,
    then the data; a message starts with destination, type, RPID and PID (data bytes 8..24 and
    24..40).
    """
    pos = 0
    while pos + _FRAGMENT.size <= len(payload):
        _oid, _fid, flags, length = _FRAGMENT.unpack_from(payload, pos)
        start = pos + _FRAGMENT.size
        yield pos, flags, start, length
        pos = start + length


def rewrite_ids(payload: bytes, ids: dict[bytes, bytes]) -> bytes:
    """`payload` with the runspace pool / pipeline ids of each message header replaced."""
    out = bytearray(payload)
    for _pos, flags, start, length in _fragments(payload):
        if flags & 1 and length >= 40:
            for lo in (start + 8, start + 24):
                new = ids.get(bytes(out[lo : lo + 16]))
                if new is not None:
                    out[lo : lo + 16] = new
    return bytes(out)


def whole_messages(payload: bytes) -> bool:
    """Whether `payload` is only whole messages (each fragment both start and end): what a
    message's own bytes decide, with nothing carried over from an earlier payload."""
    end = 0
    for _pos, flags, start, length in _fragments(payload):
        if flags & 3 != 3:
            return False
        end = start + length
    return end == len(payload) > 0


_APPLICATION_PRIVATE_DATA = 0x00021009


def without_private_data(payload: bytes) -> bytes:
    """The pool's payload without its ApplicationPrivateData message (when whole in one fragment).

    It carries the server's PSVersionTable, which this client never reads; building it is the
    largest object psrpcore deserializes per host. Everything else goes to psrpcore unchanged.
    """
    out = []
    end = 0
    for pos, flags, start, length in _fragments(payload):
        end = start + length
        private = (
            flags & 3 == 3
            and length >= 8
            and struct.unpack_from("<I", payload, start + 4)[0] == _APPLICATION_PRIVATE_DATA
        )
        if not private:
            out.append(payload[pos:end])
    return b"".join(out) if end == len(payload) else payload


def ids_end(payload: bytes) -> int:
    """The offset just past the last message header's ids in `payload`, rounded up to a multiple
    of 3 so that base64 of the bytes after it is a suffix of base64 of the whole."""
    end = 0
    for _pos, flags, start, length in _fragments(payload):
        if flags & 1 and length >= 40:
            end = start + 40
    return min(len(payload), -(-end // 3) * 3)


@dataclass(frozen=True)
class _Encoded:
    """One payload as sent: the bytes holding the ids, and base64 text of everything after them."""

    head: bytes
    tail_b64: str

    @classmethod
    def of(cls, payload: bytes) -> _Encoded:
        cut = ids_end(payload)
        return cls(payload[:cut], base64.b64encode(payload[cut:]).decode())

    def with_ids(self, ids: dict[bytes, bytes]) -> str:
        return base64.b64encode(rewrite_ids(self.head, ids)).decode() + self.tail_b64


def script_command(script: str) -> psrpcore.Command:
    """`script` as a pipeline command, serialized once (pypsrp's form).

    psrpcore repeats a command's text as its `<ToString>`, which doubles every byte of the
    bundle on the wire (encrypted, signed, encoded and parsed on both ends); Windows reads
    only `Cmd`, and pypsrp, which Windows has always accepted, sends no ToString.
    """
    command = psrpcore.Command(script, is_script=True)
    command.PSObject.to_string = ""
    return command


class PayloadCache:
    """The pool-open and CreatePipeline payloads, serialized by psrpcore once per run.

    They are the same for every host but for the ids in each message header, and psrpcore's
    serializer costs milliseconds per host (about 3.5 ms for the pool open, 19 ms for a 29 KB
    bundle). The first host's payloads (`data_to_send()`) are kept, already base64-encoded
    past their ids; later hosts send a copy with their own ids, and their state machines are
    moved to the state `open()`/`start()` would have left (the public `state` attributes).
    """

    _MAX_PIPELINES = 8
    _MAX_OPENINGS = 16  # distinct opening and Completed messages (a few per server build)

    def __init__(self) -> None:
        self._open: tuple[_Encoded, bytes] | None = None  # payload, the rpid inside it
        self._pipelines: dict[tuple[str, str, int, str], tuple[list[_Encoded], bytes, bytes]] = {}
        self._opening: dict[bytes, Any] = {}  # opening message without its pool id -> capability or Opened
        self._completed: set[bytes] = set()  # Completed state messages without their ids
        # The pipeline's host information is serialized into its CreatePipeline only, which
        # is built once per run; a fresh HostInfo per host (psrpcore's default) was half of
        # ClientPowerShell's construction (50-70 us of 90-130 us a host, measured hot).
        self._host_info = HostInfo()

    def open_payload(self, pool: psrpcore.ClientRunspacePool) -> str:
        """The pool's opening messages for a Create, as base64 text."""
        rpid = pool.runspace_pool_id.bytes_le
        if self._open is None:
            pool.open()
            payload = pool.data_to_send()
            assert payload is not None
            self._open = (_Encoded.of(payload.data), rpid)
            return base64.b64encode(payload.data).decode()
        encoded, old = self._open
        pool.state = RunspacePoolState.Opening
        return encoded.with_ids({old: rpid})

    def opening_from_cache(self, pool: psrpcore.ClientRunspacePool, chunk: bytes) -> bool:
        """Apply to `pool` what psrpcore made of `chunk` for an earlier host, when `chunk` is the
        same message but for the pool id: the server's capability, or the Opened state.

        Every host of one server build answers the pool's opening with the same bytes, and
        psrpcore turns them into the same events at about 0.25 ms per host (5% of a host's CPU);
        the first host's outcome is applied through the pool's public attributes, as
        `open_payload` does on the sending side.
        """
        effect = self._opening.get(self._pool_key(pool, chunk))
        if effect is None:
            return False
        if effect is RunspacePoolState.Opened:
            pool.state = RunspacePoolState.Opened
        else:
            pool.their_capability = effect
        return True

    def remember_opening(self, pool: psrpcore.ClientRunspacePool, chunk: bytes, events: list[Any]) -> None:
        """Keep what psrpcore made of one opening message: a capability, or the Opened state."""
        if len(events) != 1 or len(self._opening) >= self._MAX_OPENINGS or not whole_messages(chunk):
            return
        event = events[0]
        if isinstance(event, psrpcore.SessionCapabilityEvent) and pool.their_capability is not None:
            self._opening[self._pool_key(pool, chunk)] = pool.their_capability
        elif (
            isinstance(event, psrpcore.RunspacePoolStateEvent)
            and event.state == RunspacePoolState.Opened
            and pool.state == RunspacePoolState.Opened
        ):
            self._opening[self._pool_key(pool, chunk)] = RunspacePoolState.Opened

    def completed_from_cache(self, ps: psrpcore.ClientPowerShell, chunk: bytes) -> bool:
        """Move `ps` to Completed when `chunk` is, but for its ids, a Completed state message
        psrpcore already read this run (0.11 ms per host, as for the pool's opening)."""
        if self._pipeline_key(ps, chunk) not in self._completed:
            return False
        ps.state = PSInvocationState.Completed
        return True

    def remember_completed(self, ps: psrpcore.ClientPowerShell, chunk: bytes, events: list[Any]) -> None:
        if (
            len(events) == 1
            and whole_messages(chunk)
            and isinstance(events[0], psrpcore.PipelineStateEvent)
            and events[0].state == PSInvocationState.Completed
            and ps.state == PSInvocationState.Completed
            and len(self._completed) < self._MAX_OPENINGS
        ):
            self._completed.add(self._pipeline_key(ps, chunk))

    @staticmethod
    def _pipeline_key(ps: psrpcore.ClientPowerShell, chunk: bytes) -> bytes:
        zero = bytes(16)
        return rewrite_ids(chunk, {ps.runspace_pool.runspace_pool_id.bytes_le: zero, ps.pipeline_id.bytes_le: zero})

    @staticmethod
    def _pool_key(pool: psrpcore.ClientRunspacePool, chunk: bytes) -> bytes:
        return rewrite_ids(chunk, {pool.runspace_pool_id.bytes_le: bytes(16)})

    def pipeline_payloads(
        self, pool: psrpcore.ClientRunspacePool, script: str, parameters: dict[str, Any], room: int
    ) -> tuple[psrpcore.ClientPowerShell, list[str]]:
        """A started pipeline running `script`, and its payloads for the Command and Sends, as base64 text."""
        version = str(pool.their_capability.protocolversion) if pool.their_capability else ""
        key = (script, repr(sorted(parameters.items())), room, version)
        ps = psrpcore.ClientPowerShell(pool, host=self._host_info)
        rpid, pid = pool.runspace_pool_id.bytes_le, ps.pipeline_id.bytes_le
        cached = self._pipelines.get(key)
        if cached is None:
            ps.add_command(script_command(script))
            for name, value in parameters.items():
                ps.add_parameter(name, value)
            ps.start()
            payloads = []
            while (more := pool.data_to_send(room)) is not None:
                payloads.append(more.data)
            if len(self._pipelines) >= self._MAX_PIPELINES:
                self._pipelines.pop(next(iter(self._pipelines)))
            self._pipelines[key] = ([_Encoded.of(p) for p in payloads], rpid, pid)
            return ps, [base64.b64encode(p).decode() for p in payloads]
        encoded, old_rpid, old_pid = cached
        ps.state = PSInvocationState.Running
        ids = {old_rpid: rpid, old_pid: pid}
        return ps, [e.with_ids(ids) for e in encoded]
