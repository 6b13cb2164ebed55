"""The one interface every transport implements (httpx-style: small, async, swappable).

A transport runs one static PowerShell script with one JSON argument on one host and
returns what came back, or raises one `fleetcheck.errors.HostError` subclass (the library's
exceptions are mapped inside the transport, see `transports.errors.map_exceptions`). It never
builds PowerShell from inventory or playbook values: the JSON argument reaches the script as
a PSRP parameter (psrp) or base64 inside a fixed bootstrap (winrm, ssh).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import itertools
import logging
import socket
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleetcheck.transports.errors import (
    WSMAN_RULES,
    DeadlineExceeded,
    FailureContext,
    RunCancelled,
    TooSlow,
    map_exceptions,
)
from fleetcheck.transports.kerberos import options_for
from fleetcheck.transports.target import Target


@dataclass
class ScriptOutput:
    """What a script produced: its text output and any error records."""

    stdout: str = ""
    errors: list[str] = field(default_factory=list)
    failed: bool = False  # terminating error / non-zero exit
    exit_code: int | None = None
    auth_mechanism: str | None = None  # what authenticated: kerberos, ntlm, basic, credssp, certificate


class Transport(ABC):
    """Run `script` with the single parameter `-ArgsJson <json>` on one host."""

    #: The name hosts select it by (`transport: psrp`) and the registry files it under.
    name: str = ""

    @abstractmethod
    async def run(self, target: Target, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        """Connect, authenticate, run, close; raise a `HostError` on failure."""


def failure_context(target: Target, timeout: float) -> FailureContext:
    """What the exception mapper needs to know about one attempt on `target`."""
    return FailureContext(
        transport=target.transport,
        address=target.address,
        port=target.port,
        auth=target.auth,
        timeout=timeout,
        secrets=target.secrets(),
        kerberos=options_for(target.settings, None) if target.auth in ("kerberos", "negotiate") else None,
    )

#: Output cap per host (facts documents are tens of KiB; anything near this is a fault).
MAX_OUTPUT_BYTES = 16 * 1024 * 1024


class _Watchdog:
    """One daemon thread that fires callbacks at given monotonic times (cheaper than a Timer per request).

    Socket timeouts bound each read, not the total: a host that trickles one byte a second
    keeps every read alive. The watchdog bounds the whole request from outside.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[int], None]]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, when: float, callback: Callable[[int], None]) -> int:
        """Call `callback(token)` at monotonic time `when` unless `disarm(token)` comes first."""
        with self._cond:
            token = next(self._ids)
            heapq.heappush(self._heap, (when, token, callback))
            self._live.add(token)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="fleetcheck-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
            return token

    def disarm(self, token: int) -> None:
        with self._cond:
            self._live.discard(token)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(5.0)
                    continue
                when, token, callback = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(token)
            with contextlib.suppress(Exception):
                callback(token)


_WATCHDOG = _Watchdog()
#: Seconds the watchdog waits past a request's socket timeout before cutting it.
WATCHDOG_SLACK = 0.3
#: Seconds past the hard deadline a shell Create may still answer before it is cut.
CREATE_GRACE_S = 0.6


class Budget:
    """A per-attempt deadline plus a cancel flag, shared between asyncio and a worker thread.

    The synchronous clients (pypsrp, pywinrm) cannot be interrupted from outside, so the
    transports call `check()` before every WSMan request and size socket timeouts with
    `remaining()`: a hung host then costs at most the deadline, and Ctrl-C is honoured at
    the next request. `close_reserve` seconds at the end are kept for closing the shell.
    """

    def __init__(self, timeout: float, *, close_reserve: float | None = None) -> None:
        self._clock = time.monotonic
        self.timeout = timeout
        self.close_reserve = close_reserve if close_reserve is not None else min(2.0, max(0.2, timeout * 0.1))
        self.started = self._clock()
        self.deadline = self.started + timeout
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._conns: list[Any] = []
        self._in_flight = False
        self._abortable = True
        self.aborted = False  # cancel() cut a request short: the connection is unusable
        self.expired = False  # the watchdog cut a request short at the deadline
        self.accepted = False  # the host answered an authenticated request (any status but 401)
        self.rejected_mid_session = False  # ...and later answered 401 (credentials revoked, session lost)
        self.closing = False
        self._alarm: int | None = None

    def cancel(self) -> None:
        """Flag the attempt as cancelled; abort the socket only if a request is in flight.

        An idle connection stays usable, so the worker can still delete its shell with one
        request; an aborted one forces the close over a fresh, re-authenticated connection.
        """
        with self._lock:
            self._cancelled.set()
            # A close request (Signal, Delete) is never cut: it is what frees the host's shell
            # quota, and the watchdog still bounds it by the deadline.
            if not self._in_flight or not self._abortable or self.closing:
                return
        self._abort()

    def _expire(self, alarm: int) -> None:
        """The watchdog's callback: the request outlived its phase, cut it (even a Create)."""
        with self._lock:
            if not self._in_flight or self._alarm != alarm:  # that request ended; another one runs
                return
            self.expired = True
        self._abort()

    def _abort(self) -> None:
        with self._lock:
            self.aborted = True
            conns, self._conns = self._conns, []
        for conn in conns:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                # the plain socket call: safe from another thread, also under TLS
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def begin_request(self, *, abortable: bool = True) -> float:
        """Mark a request in flight, then `check()`; pair with `end_request()`.

        A shell Create is not abortable: cutting it short could leave a shell on the host
        whose id we never learn; it runs to its socket timeout and the shell is then deleted.
        """
        with self._lock:
            self._in_flight = True
            self._abortable = abortable
        try:
            left = self.check()
        except BaseException:
            self.end_request()
            raise
        # An abortable request ends with its phase; a Create (see above) at the hard deadline.
        # WATCHDOG_SLACK lets a silent host meet its socket timeout first ("no answer"); the
        # watchdog then only ends hosts that keep sending too slowly.
        # Close requests (Signal, Delete) are bounded by their socket timeouts only: freeing
        # the host's shell quota is worth more than ending the host on the dot.
        if self.closing:
            return left
        # A Create is cut only well past the hard deadline: cutting it may leave a shell whose
        # id we never learn, so it gets every chance to answer first.
        end = self._clock() + left + WATCHDOG_SLACK if abortable else self.deadline + CREATE_GRACE_S
        with self._lock:
            self._alarm = _WATCHDOG.arm(end, self._expire)
        return left

    def end_request(self) -> None:
        with self._lock:
            self._in_flight = False
            alarm, self._alarm = self._alarm, None
        if alarm is not None:
            _WATCHDOG.disarm(alarm)

    def overrun(self) -> TooSlow:
        """The error to report when the watchdog ended a request: the host kept sending too slowly."""
        return TooSlow(f"the exchange with the host did not complete within {round(self.timeout, 1):g} s")

    def note_status(self, status: int) -> None:
        """Remember HTTP statuses: a 401 after an accepted request means the session was rejected."""
        if status == 401 and self.accepted:
            self.rejected_mid_session = True
        elif status != 401:
            self.accepted = True

    def check_progress(self) -> None:
        """Raise `TooSlow` when a response is still being read after the phase's end.

        Never for a Create (its shell id must be learnt) nor while closing (the Delete, or the
        authentication before it, must be read to the end); the watchdog bounds those.
        """
        if self.closing or not self._abortable:
            return
        if self.remaining() <= 0:
            self.expired = True
            raise self.overrun()

    def track(self, conn: Any) -> None:
        """Remember an HTTP connection so `cancel` can abort it."""
        with self._lock:
            self._conns.append(conn)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def remaining(self) -> float:
        """Seconds left for the current phase (work phase ends `close_reserve` early)."""
        end = self.deadline if self.closing else self.deadline - self.close_reserve
        return end - self._clock()

    def check(self) -> float:
        """Raise if cancelled (outside closing) or out of time; else return the seconds left."""
        if self.cancelled and not self.closing:
            raise RunCancelled("run interrupted")
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(f"deadline of {self.timeout:g} s reached")
        return left

    def start_closing(self, minimum: float = 0.5) -> None:
        """Switch to the close phase; guarantee at least `minimum` seconds for it."""
        self.closing = True
        self.deadline = max(self.deadline, self._clock() + minimum)


def track_connections(session: Any, budget: Budget) -> None:  # requests.Session (untyped pools)
    """Make every connection a requests session opens known to `budget` (for a prompt Ctrl-C).

    Wraps the urllib3 pool factories of the session's adapters, as pypsrp itself does, so
    each new pool registers the connections it creates. Idempotent per session.
    """
    if getattr(session, "_fleetcheck_tracked", False):
        return
    session._fleetcheck_tracked = True
    for adapter in session.adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        if manager is None:
            continue
        manager.pool_classes_by_scheme = {
            scheme: _tracking_factory(factory, budget) for scheme, factory in manager.pool_classes_by_scheme.items()
        }


def _tracking_factory(factory: Callable[..., Any], budget: Budget) -> Callable[..., Any]:
    def make_pool(*args: Any, **kwargs: Any) -> Any:
        pool = factory(*args, **kwargs)
        # `ConnectionCls` is the pool's public connection factory (pypsrp wraps it the same way).
        connection_cls = pool.ConnectionCls

        def tracked_connection(*cargs: Any, **ckwargs: Any) -> Any:
            conn = connection_cls(*cargs, **ckwargs)
            budget.track(conn)
            return conn

        pool.ConnectionCls = tracked_connection
        return pool

    return make_pool


#: Loggers whose DEBUG output carries authentication tokens (NTLM/SPNEGO messages).
#: Loggers that print auth tokens at DEBUG (pywinrm's vendored requests_kerberos logs the whole
#: `Authorization: Negotiate <AP-REQ>` header, a replayable Kerberos ticket and authenticator).
TOKEN_LOGGERS = ("spnego", "requests_ntlm", "requests_kerberos", "requests_credssp", "winrm.vendor.requests_kerberos")


def quiet_token_loggers() -> None:
    """Keep token-bearing DEBUG records from ever reaching a handler, even with `-v` / root DEBUG."""
    for name in TOKEN_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.INFO:
            logger.setLevel(logging.INFO)


#: How long a cancelled host's worker thread gets to close its remote shell before we stop waiting.
CANCEL_GRACE = 10.0


#: Name prefix of the transports' worker threads.
WORKER_THREAD_PREFIX = "fleetcheck-worker"
_workers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_workers_lock = threading.Lock()


def _register_worker() -> None:
    with _workers_lock:
        _workers.add(threading.current_thread())


def worker_pool(max_workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """A bounded executor for the synchronous clients whose threads `stop_workers` can wait for."""
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=max_workers, thread_name_prefix=WORKER_THREAD_PREFIX, initializer=_register_worker
    )


def stop_workers(grace: float) -> int:
    """Wait up to `grace` seconds for the worker threads; return how many still run.

    After an interrupted run a worker may still be closing a remote shell (a scarce quota on
    Windows) or be stuck in a hung read; the caller decides whether to leave without it.
    """
    deadline = time.monotonic() + max(0.0, grace)
    with _workers_lock:
        threads = [t for t in _workers if t is not threading.current_thread()]
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sum(1 for t in threads if t.is_alive())


class ThreadedTransport(Transport):
    """A transport over a synchronous client library, one worker thread per host.

    The runner owns the executor (bounded by --forks, see `worker_pool`); subclasses only say
    how one host runs, and their library's exceptions are mapped here, once.
    """

    def __init__(self, executor: concurrent.futures.Executor | None = None) -> None:
        self._executor = executor

    @abstractmethod
    def run_sync(self, target: Target, script: str, args_json: str, budget: Budget) -> ScriptOutput:
        """Connect, run and close in the calling thread; raise the FIRST failure."""

    async def run(self, target: Target, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        budget = Budget(timeout)
        loop = asyncio.get_running_loop()
        with map_exceptions(failure_context(target, timeout), WSMAN_RULES):
            fut = loop.run_in_executor(self._executor, self.run_sync, target, script, args_json, budget)
            return await await_worker(fut, budget)


async def await_worker(fut: asyncio.Future[ScriptOutput], budget: Budget) -> ScriptOutput:
    """Await a worker thread; on cancellation let it close its shell briefly, then give up."""
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        budget.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(fut), CANCEL_GRACE)
        raise
