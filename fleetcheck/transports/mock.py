"""A transport that answers from a function: drive the runner without a network or pypsrp.

    def handler(target: Target, script: str, args_json: str) -> ScriptOutput:
        if target.name == "SRV02":
            raise Unreachable("connection refused on SRV02:5986 - is WinRM listening?")
        return ScriptOutput(stdout=facts_json)

    outcome = await run_fleet(hosts, playbooks, RunOptions(transport=MockTransport(handler)))

The handler may be a plain or an async function. It returns what the host printed, or raises
a `fleetcheck.errors.HostError` for a host that fails; anything else it raises is classified
like a library's exception would be.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from fleetcheck.transports.base import ScriptOutput, Transport, failure_context
from fleetcheck.transports.errors import map_exceptions
from fleetcheck.transports.target import Target

Handler = Callable[[Target, str, str], ScriptOutput | Awaitable[ScriptOutput]]


class MockTransport(Transport):
    """Calls `handler(target, script, args_json)` for every host."""

    def __init__(self, handler: Handler, *, name: str = "mock") -> None:
        self.handler = handler
        self.name = name

    async def run(self, target: Target, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        with map_exceptions(failure_context(target, timeout)):
            result = self.handler(target, script, args_json)
            if inspect.isawaitable(result):
                result = await result
            return result
