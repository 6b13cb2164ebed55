"""A dispatcher without a broker: batches run in this process, events through a queue.

It proves the dispatch contract without Redis (unit tests) and checks a site from the
coordinator itself. Each batch runs as a task with the same `worker.run_batch` as a Celery
worker; `sites` says which sites have a "worker" here (the others never answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Collection

from fleetcheck.dispatch.wire import Batch, Event
from fleetcheck.dispatch.worker import run_batch


class _QueueSink:
    def __init__(self, queue: asyncio.Queue[Event]) -> None:
        self.queue = queue

    async def emit(self, event: Event) -> None:
        await self.queue.put(event)


class LocalDispatcher:
    """Implements `fleetcheck.dispatch.base.Dispatcher` in-process."""

    def __init__(self, sites: Collection[str], *, forks: int = 10, deliveries: int = 1) -> None:
        self.run_id = uuid.uuid4().hex
        self.sites = set(sites)
        self.forks = forks
        #: >1 delivers every batch that many times (a redelivery's duplicate results).
        self.deliveries = deliveries
        self.submitted: list[Batch] = []
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._tasks: set[asyncio.Task[int]] = set()
        self._closed = False

    async def submit(self, batch: Batch) -> None:
        self.submitted.append(batch)
        if batch.site not in self.sites:
            return
        for n in range(self.deliveries):
            task = asyncio.create_task(
                run_batch(batch, _QueueSink(self._events), forks=self.forks, worker=f"local-{n}", closed=self._is_closed)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _is_closed(self) -> bool:
        return self._closed

    async def events(self) -> AsyncIterator[Event]:
        while not self._closed:
            try:
                yield await asyncio.wait_for(self._events.get(), 0.1)
            except TimeoutError:
                continue

    async def stop(self, *, revoke: bool) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        return None

    def trouble(self) -> str | None:
        return None
