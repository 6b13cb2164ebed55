"""Worker processes for fleets larger than one process holds (spawned, one `FleetSlice` each).

The parent talks to each worker over a pipe (ready, counters, reset, stop); the fleet-wide
open/peak shell gauges live in shared memory so "peak concurrent open shells" is exact across
processes, which per-worker peaks summed afterwards would overstate.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import signal
from typing import Any

from fleetcheck.lab.fleetmodel import FleetHost, WorkerConfig
from fleetcheck.lab.host import FleetCounters
from fleetcheck.lab.serving import FleetSlice

READY_TIMEOUT_S = 180.0
QUERY_TIMEOUT_S = 10.0


class SharedGauges:
    """Fleet-wide open/peak shells in shared memory (exact across worker processes)."""

    def __init__(self, ctx: Any) -> None:
        self.array = ctx.Array("q", 2)  # [open, peak], with its own lock

    def opened(self) -> None:
        with self.array.get_lock():
            self.array[0] += 1
            self.array[1] = max(self.array[1], self.array[0])

    def closed(self) -> None:
        with self.array.get_lock():
            self.array[0] -= 1

    def read(self) -> tuple[int, int]:
        with self.array.get_lock():
            return int(self.array[0]), int(self.array[1])

    def reset_peak(self) -> None:
        with self.array.get_lock():
            self.array[1] = self.array[0]


class SharedCounters(FleetCounters):
    """A worker's counters that also feed the fleet-wide shared gauges."""

    gauges: SharedGauges | None = None

    def shell_opened(self) -> None:
        super().shell_opened()
        if self.gauges is not None:
            self.gauges.opened()

    def shell_closed(self) -> None:
        super().shell_closed()
        if self.gauges is not None:
            self.gauges.closed()


def counters_dict(c: FleetCounters) -> dict[str, int]:
    """The counters as plain data (to cross a pipe, or print as JSON)."""
    return {
        "open_shells": c.open_shells,
        "peak_open_shells": c.peak_open_shells,
        "requests": c.requests,
        "sessions": c.sessions,
    }


def reset_counters(c: FleetCounters) -> None:
    """Zero requests/sessions and restart the peak from the shells open now."""
    c.requests = 0
    c.sessions = 0
    c.peak_open_shells = c.open_shells


def worker_main(conn: multiprocessing.connection.Connection, cfg: WorkerConfig, gauges: SharedGauges) -> None:
    """Entry point of a spawned worker: serve until the parent says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, cfg, gauges))


async def _serve(conn: multiprocessing.connection.Connection, cfg: WorkerConfig, gauges: SharedGauges) -> None:
    counters = SharedCounters()
    counters.gauges = gauges
    if cfg.ssh_host_key_pem is not None:
        from fleetcheck.lab.ssh import use_host_key

        use_host_key(cfg.ssh_host_key_pem)
    part = FleetSlice(cfg, counters)
    try:
        await part.start()
    except Exception as exc:
        await part.stop()
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", [h.detached() for h in part.hosts]))
    await _answer_until_stopped(conn, counters)
    await part.stop()
    with contextlib.suppress(OSError):
        conn.send("stopped")


async def _answer_until_stopped(conn: multiprocessing.connection.Connection, counters: FleetCounters) -> None:
    """Answer the parent's counters/reset queries; return on stop, SIGTERM or a closed pipe."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_message() -> None:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # parent gone: stop too
            loop.remove_reader(conn.fileno())
            stop.set()
            return
        if msg == "counters":
            conn.send(counters_dict(counters))
        elif msg == "reset":
            reset_counters(counters)
            conn.send("ok")
        elif msg == "stop":
            loop.remove_reader(conn.fileno())
            stop.set()

    loop.add_reader(conn.fileno(), on_message)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def _recv(conn: multiprocessing.connection.Connection, timeout: float, proc: Any) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"lab worker {proc.name} did not answer within {timeout:.0f} s")
    try:
        return conn.recv()
    except EOFError:
        raise RuntimeError(f"lab worker {proc.name} exited (code {proc.exitcode})") from None


class WorkerPool:
    """The parent's side: spawn workers, wait until they serve, query and stop them."""

    def __init__(self) -> None:
        self.procs: list[Any] = []
        self.conns: list[multiprocessing.connection.Connection] = []
        self.gauges: SharedGauges | None = None

    async def start(self, configs: list[WorkerConfig]) -> list[FleetHost]:
        """Spawn one worker per config; the hosts they serve, once every one is ready."""
        ctx = multiprocessing.get_context("spawn")
        self.gauges = SharedGauges(ctx)
        for cfg in configs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main, args=(child, cfg, self.gauges), name=f"lab-worker-{cfg.index}", daemon=True
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        found: list[FleetHost] = []
        for conn, proc in zip(self.conns, self.procs, strict=True):
            msg = await asyncio.to_thread(_recv, conn, READY_TIMEOUT_S, proc)
            if msg[0] != "ready":
                raise RuntimeError(f"lab worker {proc.name} failed to start: {msg[1]}")
            found += msg[1]
        return found

    async def stop(self) -> None:
        """Ask each worker to stop; terminate the ones that do not within 10 s."""
        for conn in self.conns:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send("stop")
        for proc in self.procs:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.terminate()
                await asyncio.to_thread(proc.join, 5)
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []

    def dead(self) -> list[str]:
        return [f"{p.name} (exit code {p.exitcode})" for p in self.procs if not p.is_alive()]

    def counters(self) -> FleetCounters:
        """A fleet-wide snapshot: requests and sessions summed, shells from the shared gauges."""
        totals = FleetCounters()
        for conn, proc in zip(self.conns, self.procs, strict=True):
            conn.send("counters")
            data = _recv(conn, QUERY_TIMEOUT_S, proc)
            totals.requests += data["requests"]
            totals.sessions += data["sessions"]
        assert self.gauges is not None
        totals.open_shells, totals.peak_open_shells = self.gauges.read()
        return totals

    def reset(self) -> None:
        for conn, proc in zip(self.conns, self.procs, strict=True):
            conn.send("reset")
            _recv(conn, QUERY_TIMEOUT_S, proc)
        assert self.gauges is not None
        self.gauges.reset_peak()
