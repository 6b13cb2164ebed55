"""The event loop that drives a run's hosts: uvloop where it is installed, else asyncio's own.

A run is one Python thread waiting on hundreds of sockets. Most of its CPU per host that is not
protocol work goes to the loop itself: waking up when an answer arrives, and the bookkeeping of
asyncio's pure-Python selector loop around each callback. uvloop (libuv, in C) does the same
work with less code between a socket becoming readable and our callback, which is what a wake-up
costs on a virtual machine whose idle vCPU comes back with cold caches. Measured on the lab
(2 vCPUs, Firecracker), per wake-up after 1 ms idle: 113 us asyncio, 68 us uvloop; instructions
per host of a 200-host run: 3 % fewer.

uvloop does not exist on Windows; there, or when it is not installed, or with
`FLEETCHECK_EVENT_LOOP=asyncio`, runs use asyncio's default loop: everything fleetcheck does
works on both (the test suite runs on uvloop and its loop tests on both).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fleetcheck.errors import UserError

T = TypeVar("T")

#: Environment variable choosing the loop: `auto` (default), `uvloop` or `asyncio`.
ENV = "FLEETCHECK_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's default loop (see the module's docstring).

    Raises UserError for a value of FLEETCHECK_EVENT_LOOP it does not know, or `uvloop` asked
    for where it is not installed."""
    choice = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise UserError(f"{ENV}={choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise UserError(
                f"{ENV}=uvloop: uvloop is not installed (pip install uvloop; not available on Windows)"
            ) from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the chosen loop."""
    try:
        factory = loop_factory()
    except UserError:
        main.close()  # never awaited: no "coroutine was never awaited" warning on the way out
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def loop_name() -> str:
    """`uvloop` or `asyncio`: which loop is running (the tests ask it from inside a run)."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.split(".")[0] == "uvloop" else "asyncio"
