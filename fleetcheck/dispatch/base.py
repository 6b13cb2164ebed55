"""The dispatch interface: what the coordinator needs from a distributed engine.

A `Dispatcher` queues a batch for its site and yields the events the site's workers send
back for this run. Celery over Redis implements it (`celery_sites`); `local.LocalDispatcher`
runs batches in this process (tests, a site on the coordinator). Another engine replaces
Celery by implementing these four methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from fleetcheck.dispatch.wire import Batch, Event


class Dispatcher(Protocol):
    """Queues batches by site and streams back their workers' events."""

    #: Unique per run: names the event stream and the stop flag.
    run_id: str

    async def submit(self, batch: Batch) -> None:
        """Queue `batch` for a worker of `batch.site`; raise on a broker that cannot take it."""

    def events(self) -> AsyncIterator[Event]:
        """Every event of this run as it arrives; survives broker reconnects (see `trouble`)."""

    async def stop(self, *, revoke: bool) -> None:
        """The run is over: running batches stop, late deliveries are dropped; `revoke`
        also withdraws batches still queued (Ctrl-C)."""

    async def close(self) -> None:
        """Release connections."""

    def trouble(self) -> str | None:
        """The last broker problem seen during the run, for the admin's message (no secrets)."""
