"""The coordinator side of a multi-site run: hosts of other sites as one "remote" transport.

The runner hands every host whose `site` is not `local` to `SiteTransport.run`; the host
takes no fork slot here. Hosts are grouped by site into batches and queued through a
`Dispatcher`; the workers' events resolve each host's wait with the output the worker got,
which the runner then judges here exactly as for a local host (facts remote, judgement
local), so journal, table, history and reports cannot differ from a local run.

Bounded waits, per host:
- not yet started by any worker: fails as `unreachable` once its site has been silent
  (no batch taken, no heartbeat) for `site_wait` seconds;
- started: fails as `timeout` when no result arrives within its deadline plus
  `RESULT_GRACE` of its (latest) start; a redelivered batch restarts the clock.
The first result for a host wins; a second delivery of the same host is counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from fleetcheck.dispatch.base import Dispatcher
from fleetcheck.dispatch.wire import Batch, Event, HostOutcome, WireTarget
from fleetcheck.errors import HostError, TimedOut, Unreachable
from fleetcheck.transports.base import ScriptOutput, Transport
from fleetcheck.transports.target import Target

log = logging.getLogger(__name__)

LOCAL_SITE = "local"
DEFAULT_SITE_WAIT = 30.0
#: A worker runs one batch at a time: its concurrency is min(--forks, batch size).
DEFAULT_BATCH_SIZE = 100
#: Past a started host's deadline: the worker's own grace, judging and the trip back.
RESULT_GRACE = 3.0
WATCH_INTERVAL = 0.2
CLOSE_WAIT_S = 3.0


@dataclass
class _Pending:
    target: Target
    future: asyncio.Future[HostOutcome]
    timeout: float
    queued_at: float
    started_at: float | None = None


@dataclass
class SiteStats:
    """What the dispatch did, for notes and tests."""

    batches: int = 0
    results: int = 0
    duplicates: int = 0
    by_site: dict[str, int] = field(default_factory=dict)


class SiteTransport(Transport):
    """Runs each host on a worker of its site; see the module's docstring."""

    name = "site"
    remote = True

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        password_envs: Mapping[str, str | None] | None = None,
        site_wait: float = DEFAULT_SITE_WAIT,
        batch_size: int = DEFAULT_BATCH_SIZE,
        run_timeout: float | None = None,
        psrp_client: Literal["pypsrp", "native"] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.password_envs = dict(password_envs or {})
        self.site_wait = site_wait
        self.batch_size = max(1, batch_size)
        self.run_timeout = run_timeout
        self.psrp_client = psrp_client
        self.stats = SiteStats()
        self._pending: dict[str, _Pending] = {}
        self._unsent: dict[str, list[_Pending]] = {}
        self._seen: dict[str, float] = {}
        self._plan: tuple[str, str] | None = None
        self._flush: asyncio.Handle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._submits: set[asyncio.Task[None]] = set()

    async def run(self, target: Target, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        loop = asyncio.get_running_loop()
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._watch())]
        self._plan = (script, args_json)
        pending = _Pending(target, loop.create_future(), timeout, loop.time())
        self._pending[target.name] = pending
        self._unsent.setdefault(target.site, []).append(pending)
        if self._flush is None:  # every host task of the run registers before the first batch leaves
            self._flush = loop.call_soon(self._send)
        try:
            outcome = await pending.future
        finally:
            if self._pending.get(target.name) is pending:
                del self._pending[target.name]
        return outcome.output()

    def _send(self) -> None:
        self._flush = None
        if self._plan is None:
            return
        script, args_json = self._plan
        now = asyncio.get_running_loop().time()
        for site, hosts in self._unsent.items():
            for i in range(0, len(hosts), self.batch_size):
                chunk = hosts[i : i + self.batch_size]
                for p in chunk:
                    p.queued_at = now
                batch = Batch(
                    run=self.dispatcher.run_id, batch=uuid.uuid4().hex[:12], site=site, script=script,
                    args_json=args_json, timeout=self.run_timeout, psrp_client=self.psrp_client,
                    targets=[WireTarget.from_target(p.target, self.password_envs.get(p.target.name)) for p in chunk],
                )
                task = asyncio.create_task(self._submit(batch))
                self._submits.add(task)
                task.add_done_callback(self._submits.discard)
        self._unsent.clear()

    async def _submit(self, batch: Batch) -> None:
        try:
            await self.dispatcher.submit(batch)
            self.stats.batches += 1
        except Exception as exc:  # the broker refused: the site's wait classifies these hosts
            log.warning("could not queue a batch for site %s: %s", batch.site, type(exc).__name__)

    async def _read(self) -> None:
        async for event in self.dispatcher.events():
            try:
                self._on_event(event)
            except Exception:  # one odd event must not stop the results of the others
                log.exception("event for %s could not be handled", event.host or event.site)

    def _on_event(self, event: Event) -> None:
        now = asyncio.get_running_loop().time()
        self._seen[event.site] = now
        if event.kind == "started":
            pending = self._pending.get(event.host)
            if pending is not None:
                pending.started_at = now
        elif event.kind == "done" and event.outcome is not None:
            pending = self._pending.get(event.host)
            if pending is None or pending.future.done():
                self.stats.duplicates += 1
                return
            self.stats.results += 1
            self.stats.by_site[event.site] = self.stats.by_site.get(event.site, 0) + 1
            pending.future.set_result(event.outcome)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = asyncio.get_running_loop().time()
            for pending in list(self._pending.values()):
                if pending.future.done():
                    continue
                failure = self._overdue(pending, now)
                if failure is not None:
                    pending.future.set_exception(failure)

    def _overdue(self, pending: _Pending, now: float) -> HostError | None:
        site = pending.target.site
        trouble = self.dispatcher.trouble()
        tail = f" ({trouble})" if trouble else ""
        if pending.started_at is None:
            if now - max(pending.queued_at, self._seen.get(site, 0.0)) > self.site_wait:
                return Unreachable(
                    f"no worker for site {site} answered within {self.site_wait:g} s{tail}", error_type="no_worker"
                )
            return None
        if now - pending.started_at > pending.timeout + RESULT_GRACE:
            return TimedOut(
                f"no result from site {site} within {pending.timeout:g} s of the host's start "
                f"(its worker stopped or lost the broker){tail}",
                error_type="worker_lost",
            )
        return None

    async def close(self, *, interrupted: bool) -> None:
        """Tell the workers the run is over (revoking queued batches when interrupted)."""
        try:
            await self.dispatcher.stop(revoke=interrupted)
        except Exception as exc:
            log.warning("could not tell the workers the run ended: %s", type(exc).__name__)
        tasks = [*self._tasks, *self._submits]
        for task in tasks[1:]:
            task.cancel()
        if tasks:  # the reader ends by itself once the dispatcher stopped; cancel it only if it lingers
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)
            tasks[0].cancel()
        await self.dispatcher.close()


def remote_sites(targets: list[Target]) -> list[str]:
    return sorted({t.site for t in targets if t.site != LOCAL_SITE})
