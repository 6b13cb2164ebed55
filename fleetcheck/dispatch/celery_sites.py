"""Sites on Celery with Redis: one queue per site, one Redis stream per run for the results.

Why a stream for results rather than Celery's result backend: a task has one result, but
the coordinator wants each host as soon as it finishes; a Redis stream (XADD by workers,
XREAD by the coordinator) delivers in order, is read again from the last id after a
reconnect (pub/sub would drop what was published meanwhile), and needs nothing beyond the
broker the workers already reach. Workers only ever connect out to Redis.

Delivery: tasks are acknowledged late and rejected when the worker process is lost, and a
batch left unacknowledged by a worker killed outright returns to its queue after the
worker's `redeliver_after` (kombu's visibility timeout), for another worker of the site.
The coordinator counts a host once, whoever delivers it. Each worker runs one batch at a
time (solo pool, prefetch 1); its concurrency is the runner's `forks` inside the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fleetcheck import eventloop
from fleetcheck.dispatch.wire import Batch, Event
from fleetcheck.dispatch.worker import run_batch

log = logging.getLogger(__name__)

TASK_NAME = "fleetcheck.run_batch"
QUEUE_PREFIX = "fleetcheck.site."
DEFAULT_REDELIVER_AFTER = 600.0
#: Events and stop flags of a finished run are kept this long for a late worker, then expire.
RUN_KEYS_TTL_S = 24 * 3600
READ_BLOCK_MS = 250
#: How long a worker keeps retrying to send one event while Redis is away.
EMIT_PATIENCE_S = 60.0


_T = TypeVar("_T")
#: Bound on each step of closing (stop flag, revoke): a broker that is away must not hold the run.
CLOSE_STEP_S = 3.0


async def in_thread(fn: Callable[[], _T]) -> _T:
    """Run a blocking Celery/kombu call in a daemon thread: unlike the loop's default executor,
    a call stuck on a dead broker cannot hold the process's exit."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def call() -> None:
        try:
            result: Any = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=call, name="fleetcheck-celery", daemon=True).start()
    return await future


def queue_name(site: str) -> str:
    return QUEUE_PREFIX + site


def stream_key(run: str) -> str:
    return f"fleetcheck:run:{run}:events"


def closed_key(run: str) -> str:
    return f"fleetcheck:run:{run}:closed"


def broker_label(url: str) -> str:
    """The broker as an admin may read it: scheme, host and port, never its password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}"


def make_app(broker: str, *, forks: int = 50, redeliver_after: float = DEFAULT_REDELIVER_AFTER) -> Any:
    """The Celery app of coordinator and workers; the task runs one batch with `forks`."""
    from celery import Celery

    app = Celery("fleetcheck", broker=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": redeliver_after,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
        task_default_queue=queue_name("local"),
    )

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)
    def run_batch_task(payload: dict[str, Any]) -> int:
        batch = Batch.model_validate(payload)
        return eventloop.run(_run_on_redis(batch, broker, forks))

    return app


class RedisSink:
    """XADD each event to the run's stream, retrying while Redis is away (bounded)."""

    def __init__(self, client: Any, run: str) -> None:
        self.client = client
        self.key = stream_key(run)

    async def emit(self, event: Event) -> None:
        import redis

        give_up = time.monotonic() + EMIT_PATIENCE_S
        delay = 0.1
        while True:
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.xadd(self.key, event.fields())
                    pipe.expire(self.key, RUN_KEYS_TTL_S)  # a run whose coordinator died still expires
                    await pipe.execute()
                return
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                if time.monotonic() > give_up:
                    log.error("event for %s lost: Redis unreachable for %g s", event.host or event.site, EMIT_PATIENCE_S)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)


async def _run_on_redis(batch: Batch, broker: str, forks: int) -> int:
    import redis.asyncio

    client = redis.asyncio.from_url(broker)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    async def closed() -> bool:
        try:
            return bool(await client.exists(closed_key(batch.run)))
        except (OSError, Exception):  # Redis away: keep working, the sink waits for it
            return False

    try:
        return await run_batch(batch, RedisSink(client, batch.run), forks=forks, worker=worker, closed=closed)
    finally:
        await client.aclose()


def run_worker(site: str, broker: str, *, forks: int, redeliver_after: float, loglevel: str = "WARNING") -> None:
    """`fleetcheck worker`: consume the site's queue until stopped (SIGTERM, Ctrl-C)."""
    app = make_app(broker, forks=forks, redeliver_after=redeliver_after)
    app.worker_main(
        argv=[
            "worker", "--queues", queue_name(site), "--pool", "solo", "--concurrency", "1",
            "--hostname", f"{site}.{os.getpid()}@{socket.gethostname()}",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", loglevel,
        ]
    )


class CeleryDispatcher:
    """The coordinator's side: send batches to site queues, read the run's event stream."""

    def __init__(self, broker: str) -> None:
        import redis.asyncio

        self.broker = broker
        self.app = make_app(broker)
        self.run_id = uuid.uuid4().hex
        self.task_ids: list[str] = []
        self._redis = redis.asyncio.from_url(broker)
        self._trouble: str | None = None
        self._closing = False

    async def submit(self, batch: Batch) -> None:
        payload = batch.model_dump(mode="json")

        def send() -> str:
            result = self.app.send_task(
                TASK_NAME, args=[payload], queue=queue_name(batch.site),
                retry=True, retry_policy={"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5},
            )
            return str(result.id)

        try:
            self.task_ids.append(await in_thread(send))
        except Exception:
            self._note("could not queue a batch")
            raise

    async def events(self) -> AsyncIterator[Event]:
        import redis

        key, last = stream_key(self.run_id), "0-0"
        while not self._closing:
            try:
                answer = await self._redis.xread({key: last}, block=READ_BLOCK_MS, count=500)
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._note("lost the connection")
                await asyncio.sleep(0.5)
                continue
            streams: list[Any] = list(answer or [])
            for _key, entries in streams:
                for entry_id, fields in entries:
                    last = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    try:
                        yield Event.from_fields(fields)
                    except ValueError:
                        log.warning("unreadable event %s on %s", last, key)

    def _note(self, what: str) -> None:
        self._trouble = f"the coordinator {what} to the broker {broker_label(self.broker)} at {time.strftime('%H:%M:%S')}"

    def trouble(self) -> str | None:
        return self._trouble

    async def stop(self, *, revoke: bool) -> None:
        self._closing = True  # the reader ends after its current read

        async def flag() -> None:
            await self._redis.set(closed_key(self.run_id), "1", ex=RUN_KEYS_TTL_S)
            await self._redis.expire(stream_key(self.run_id), RUN_KEYS_TTL_S)

        with contextlib.suppress(Exception):
            await asyncio.wait_for(flag(), CLOSE_STEP_S)
        if revoke and self.task_ids:
            ids = list(self.task_ids)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(in_thread(lambda: self.app.control.revoke(ids)), CLOSE_STEP_S)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._redis.aclose(), CLOSE_STEP_S)
        threading.Thread(target=self.app.close, name="fleetcheck-celery-close", daemon=True).start()
