"""The worker side: run one batch with the same async runner as `fleetcheck run`.

The runner keeps each host's deadline, retries and fork limit; a thin transport wrapper
keeps the last output of each host so the worker sends back what the host printed (the
coordinator judges it). Events leave in order through one sender: `started` when a host
takes a fork slot, `done` as soon as it finishes, `alive` every `heartbeat` seconds. Nothing
outlives the batch: no journal, no saved facts, a fresh runner per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from fleetcheck import runner
from fleetcheck.dispatch.wire import Batch, Event, HostOutcome
from fleetcheck.errors import ProtocolError
from fleetcheck.transports import TransportOptions, Transports, transport_name, worker_pool
from fleetcheck.transports.base import ScriptOutput, Transport
from fleetcheck.transports.target import Target

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0


class EventSink(Protocol):
    """Where a worker's events go (a Redis stream, an in-process queue)."""

    async def emit(self, event: Event) -> None: ...


class _Keep(Transport):
    """The host's real transport, remembering the output of the attempt that succeeded."""

    name = "keep"

    def __init__(self, transports: Transports, psrp_client: str | None) -> None:
        self.transports = transports
        self.psrp_client = psrp_client
        self.outputs: dict[str, tuple[ScriptOutput, datetime]] = {}

    async def run(self, target: Target, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        try:
            inner = self.transports[transport_name(target, self.psrp_client)]
        except KeyError:
            raise ProtocolError(f"unknown transport {target.transport!r}", error_type="config") from None
        output = await inner.run(target, script, args_json, timeout=timeout)
        self.outputs[target.name] = (output, datetime.now(UTC))
        return output


async def run_batch(
    batch: Batch,
    sink: EventSink,
    *,
    forks: int,
    worker: str,
    closed: Callable[[], Awaitable[bool]],
    heartbeat: float = HEARTBEAT_S,
    ssh_known_hosts: str = "default",
) -> int:
    """Run the batch's hosts; returns how many finished. Stops early when the run is closed."""
    if await closed():
        return 0
    queue: asyncio.Queue[Event | None] = asyncio.Queue()
    stop = asyncio.Event()
    executor = worker_pool(max(1, forks))
    keep = _Keep(Transports(TransportOptions(executor=executor, ssh_known_hosts=ssh_known_hosts)), batch.psrp_client)
    finished = 0

    def on_event(event: runner.RunEvent) -> None:
        nonlocal finished
        if event.kind == "host_started" and event.host:
            queue.put_nowait(Event(kind="started", site=batch.site, worker=worker, batch=batch.batch, host=event.host))
        elif event.kind == "host_finished" and event.result is not None:
            finished += 1
            result = event.result
            kept = keep.outputs.pop(result.host, None)
            if kept is not None:
                outcome = HostOutcome.from_output(result.host, kept[0], result.attempts, kept[1])
            else:
                outcome = HostOutcome(
                    host=result.host, status=result.status, message=result.message,
                    error_type=result.error_type, attempts=result.attempts,
                )
            queue.put_nowait(Event(kind="done", site=batch.site, worker=worker, batch=batch.batch,
                                   host=result.host, outcome=outcome))

    async def send() -> None:
        while (event := await queue.get()) is not None:
            await sink.emit(event)

    async def beat() -> None:
        while not stop.is_set():
            queue.put_nowait(Event(kind="alive", site=batch.site, worker=worker, batch=batch.batch))
            with contextlib.suppress(Exception):
                if await closed():
                    stop.set()
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), heartbeat)

    sender = asyncio.create_task(send())
    beater = asyncio.create_task(beat())
    options = runner.RunOptions(
        forks=forks, timeout=batch.timeout, on_event=on_event, stop=stop,
        ssh_known_hosts=ssh_known_hosts, route=lambda _t: keep,
    )
    try:
        await runner.run_fleet(
            [t.to_target() for t in batch.targets], [], options,
            plan=runner.Plan(script=batch.script, args_json=batch.args_json),
        )
    finally:
        stop.set()
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater
        queue.put_nowait(None)
        await sender  # every event is out before the batch is acknowledged
        executor.shutdown(wait=False, cancel_futures=True)
    return finished
