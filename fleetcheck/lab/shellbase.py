"""What every WinRM shell (PSRP, WinRS) shares: identity, owner, idle timeout, long-poll wake-ups."""

from __future__ import annotations

import asyncio
from typing import Any

from fleetcheck.lab.host import LabHost
from fleetcheck.lab.wsman import WsmanRequest, shell_xml, timed_out


class LabShell:
    """One open shell of one user on one host (counted against MaxShellsPerUser)."""

    input_streams = "stdin"
    output_streams = "stdout stderr"

    def __init__(self, host: LabHost, shell_id: str, owner: str, resource_uri: str, client_ip: str) -> None:
        self.host = host
        self.shell_id = shell_id
        self.owner = owner
        self.resource_uri = resource_uri
        self.client_ip = client_ip
        self.closed = False
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        loop = asyncio.get_running_loop()
        self._created = loop.time()
        self._last_activity = loop.time()
        self.disconnected = False  # a PowerShell shell past its idle timeout (kept for reconnection)
        self._idle = host.machine.winrm.idle_timeout_s
        self._idle_handle: asyncio.TimerHandle | None = loop.call_later(self._idle, self._check_idle)
        host.shells[shell_id] = self
        host.counters.shell_opened()

    # -- lifecycle ---------------------------------------------------------------------------
    def touch(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        remaining = self._last_activity + self._idle - loop.time()
        if remaining > 0:
            self._idle_handle = loop.call_later(remaining, self._check_idle)
        else:
            self._idle_handle = None
            self.idle_expired()

    def idle_expired(self) -> None:
        """What the service does when IdleTimeOut passes: WinRS shells are deleted."""
        self.close()

    def set_idle_timeout(self, seconds: float) -> None:
        """The IdleTimeOut the client asked for in Create (Windows honours it up to MaxIdleTimeOut)."""
        if seconds <= 0 or self.closed:
            return
        self._idle = seconds
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._idle_handle = asyncio.get_running_loop().call_later(seconds, self._check_idle)

    def close(self) -> None:
        """Delete the shell: stop its work, forget it, wake any waiting Receive."""
        if self.closed:
            return
        self.closed = True
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.host.shells.pop(self.shell_id, None)
        self.host.counters.shell_closed()
        self.wake()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- long-poll ---------------------------------------------------------------------------
    def wake(self) -> None:
        self._changed.set()

    async def wait_change(self, deadline: float) -> None:
        """Wait for new output until `deadline` (loop time); then the real TimedOut fault."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise timed_out()
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except TimeoutError:
            raise timed_out() from None

    # -- WSMan verbs, overridden ---------------------------------------------------------------
    @property
    def display_owner(self) -> str:
        """`COMPUTER\\user` (or `DOMAIN\\user`) as Windows shows the shell's owner."""
        if "\\" in self.owner and not self.owner.startswith(".\\"):
            return self.owner
        name = self.owner.rpartition("\\")[2]
        for user in self.host.machine.users:
            if user.name.lower() == name.lower() and user.domain:
                return f"{user.domain}\\{user.name}"
        return f"{self.host.machine.hostname}\\{name}"

    def state_xml(self, *, get: bool = False) -> str:
        """The rsp:Shell block of a Create (`get` False) or of a shell Get."""
        now = asyncio.get_running_loop().time()
        return shell_xml(
            self.shell_id,
            self.resource_uri,
            self.display_owner,
            self.client_ip,
            self._idle,
            self.input_streams,
            self.output_streams,
            "Disconnected" if self.disconnected else "Connected",
            run_time_s=now - self._created if get else 0.0,
            inactivity_s=now - self._last_activity if get else 0.0,
            memory_mb=self.memory_used_mb() if get else None,
            child_processes=0,
        )

    def memory_used_mb(self) -> int:
        """wsmprovhost.exe's working set as a Get reports it (PowerShell hosts use 55-60 MB)."""
        return 57

    async def command(self, request: WsmanRequest) -> str:
        raise NotImplementedError

    async def send(self, request: WsmanRequest) -> None:
        raise NotImplementedError

    async def receive(self, request: WsmanRequest) -> bytes:
        raise NotImplementedError

    async def signal(self, request: WsmanRequest) -> None:
        raise NotImplementedError
