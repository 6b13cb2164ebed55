"""The lab's SSH endpoint: Windows OpenSSH with cmd.exe as the default shell.

A real Windows host runs each exec request as `cmd.exe /c <command line>`, so cmd.exe's
8191-character limit applies, and PowerShell is reached as `powershell ... -EncodedCommand
<b64>` or `powershell ... -Command -` (script on stdin). Errors arrive on stderr as CLIXML,
which is what Windows PowerShell writes when its streams are redirected. fleetcheck's own
bootstrap (`fleetcheck.transports.bootstrap`) is recognised by its marker: the argument line
and the script then come on stdin and reach the engine as `-ArgsJson`.

A shell request (no command) gets cmd.exe's banner and prompt and runs one command line per
input line until `exit`. The SSH exit-status carries the low byte of the exit code, as asyncssh
and OpenSSH clients read it.

`start_ssh_listener(host, address, port)` serves one `LabHost`; faults (`on: connect | auth |
Command | *`) and engine faults apply as on the WinRM endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncssh

from fleetcheck.lab.addressing import require_listening
from fleetcheck.lab.cmdline import (
    CMD_LINE_LIMIT,
    PowerShellInvocation,
    is_powershell,
    parse_powershell_args,
    split_command_line,
)
from fleetcheck.lab.engine import LabErrorRecord, ScriptRequest, run_script, whoami
from fleetcheck.lab.faults import pick_fault
from fleetcheck.lab.host import LabHost
from fleetcheck.lab.machine import LabUser
from fleetcheck.lab.render import clixml_errors, console_text, error_text
from fleetcheck.transports.bootstrap import BOOTSTRAP_MARKER, parse_bootstrap_stdin

CMD_TOO_LONG = "The command line is too long.\r\n"
SERVER_VERSION = "OpenSSH_for_Windows_8.1"
MAX_STDIN_BYTES = 64 * 1024 * 1024  # bound what one exec may send us

_host_key: asyncssh.SSHKey | None = None


def host_key() -> asyncssh.SSHKey:
    """One host key per process, shared by every simulated host (generation is not free)."""
    global _host_key
    if _host_key is None:
        _host_key = asyncssh.generate_private_key("ssh-ed25519")
    return _host_key


def use_host_key(private_key_pem: bytes) -> asyncssh.SSHKey:
    """Adopt a key made elsewhere (a fleet's parent), so all its worker processes present one key."""
    global _host_key
    _host_key = asyncssh.import_private_key(private_key_pem)
    return _host_key


def known_hosts_line(address: str, port: int, aliases: tuple[str, ...] = ()) -> str:
    """An OpenSSH known_hosts entry for this process's host key at address:port."""
    names = [address if port == 22 else f"[{address}]:{port}", *aliases]
    return f"{','.join(names)} {host_key().export_public_key().decode().strip()}"


# --- executing one command line (transport-neutral core, async for the engine) ----------


@dataclass
class ExecResult:
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0


class _CollectSink:
    def __init__(self) -> None:
        self.outputs: list[Any] = []
        self.errors: list[LabErrorRecord] = []

    def write_output(self, value: Any) -> None:
        self.outputs.append(value)

    def write_error(self, record: LabErrorRecord) -> None:
        self.errors.append(record)


StdinReader = Callable[[], Awaitable[bytes]]  # all of stdin on the first call, b"" after


async def run_powershell(
    host: LabHost, inv: PowerShellInvocation, read_stdin: StdinReader, user: str
) -> ExecResult:
    """Run one powershell.exe invocation against the engine and render it as console bytes."""
    if inv.error:
        return ExecResult(stderr=(inv.error + "\r\n").encode("utf-8"), exit_code=1)
    script = inv.script
    parameters: dict[str, Any] = {}
    if inv.from_stdin or script is None:
        script = (await read_stdin()).decode("utf-8", errors="replace")
    if BOOTSTRAP_MARKER in script:
        try:
            script, args_json = parse_bootstrap_stdin(await read_stdin())
        except (ValueError, UnicodeDecodeError):
            rec = LabErrorRecord(
                message='Exception calling "FromBase64String" with "1" argument(s): "The input is not a valid '
                "Base-64 string as it contains a non-base 64 character, more than two padding characters, or "
                'an illegal character among the padding characters. "',
                exception_type="System.Management.Automation.MethodInvocationException",
                reason="MethodInvocationException",
                fully_qualified_error_id="FormatException",
            )
            return ExecResult(stderr=clixml_errors([error_text(rec)]).encode("utf-8"), exit_code=1)
        parameters = {"ArgsJson": args_json}
    sink = _CollectSink()
    outcome = await run_script(host, ScriptRequest(script, parameters, "ssh", user), sink)
    text = console_text(sink.outputs)
    errors = list(sink.errors)
    if outcome.terminating is not None:
        errors.append(outcome.terminating)
    exit_code = outcome.exit_code
    if errors and exit_code == 0:
        exit_code = 1
    stderr = clixml_errors([error_text(r, script) for r in errors]).encode("utf-8") if errors else b""
    return ExecResult(stdout=text.encode("utf-8"), stderr=stderr, exit_code=exit_code)


def _cmd_builtin(host: LabHost, argv: list[str], line: str, user: str) -> ExecResult:
    """The few cmd.exe commands a smoke test uses; anything else is 'not recognized' (9009)."""
    exe = argv[0].lower().removesuffix(".exe")
    if exe == "hostname":
        return ExecResult(stdout=(host.machine.hostname + "\r\n").encode())
    if exe == "whoami":
        return ExecResult(stdout=(whoami(host, user) + "\r\n").encode())
    if exe == "echo":  # cmd echoes the rest of the line verbatim, quotes included
        rest = line.strip().split(None, 1)[1] if len(argv) > 1 else "ECHO is on."
        return ExecResult(stdout=(rest + "\r\n").encode())
    if exe == "ver":
        return ExecResult(stdout=f"\r\nMicrosoft Windows [Version {host.machine.os.version}]\r\n".encode())
    if exe == "exit":
        code = argv[-1] if len(argv) > 1 else "0"
        return ExecResult(exit_code=int(code) if code.lstrip("-").isdigit() else 0)
    msg = (
        f"'{argv[0]}' is not recognized as an internal or external command,\r\n"
        "operable program or batch file.\r\n"
    )
    return ExecResult(stderr=msg.encode(), exit_code=9009)


async def execute_command_line(host: LabHost, command: str, read_stdin: StdinReader, user: str) -> ExecResult:
    """What `cmd.exe /c <command>` does with the lab's engine behind powershell.exe."""
    if len(command) > CMD_LINE_LIMIT:
        return ExecResult(stderr=CMD_TOO_LONG.encode(), exit_code=1)
    argv = split_command_line(command)
    if not argv:
        return ExecResult()
    if is_powershell(argv[0]):
        return await run_powershell(host, parse_powershell_args(argv[1:]), read_stdin, user)
    return _cmd_builtin(host, argv, command, user)


# --- asyncssh glue ------------------------------------------------------------------------


def _account(username: str) -> str:
    """Windows OpenSSH accepts `user`, `DOMAIN\\user` and `user@domain`."""
    if "\\" in username:
        return username.rsplit("\\", 1)[1]
    return username.split("@", 1)[0]


def find_user(host: LabHost, username: str) -> LabUser | None:
    name = _account(username).lower()
    return next((u for u in host.machine.users if u.name.lower() == name), None)


class _WindowsSession(asyncssh.SSHServerProcess[bytes]):
    """A session as Windows' sshd runs it: exec and shell requests, and no subsystem at all
    (a stock sshd_config has no `Subsystem powershell` line, so the request is refused)."""

    def subsystem_requested(self, subsystem: str) -> bool:
        return False


class _LabSSHServer(asyncssh.SSHServer):
    def __init__(self, host: LabHost, live: set[asyncssh.SSHServerConnection]) -> None:
        self._host = host
        self._live = live
        self._conn: asyncssh.SSHServerConnection | None = None
        self._handler = _make_process_handler(host)

    def session_requested(self) -> asyncssh.SSHServerSession[bytes]:
        return _WindowsSession(self._handler, None, 0, False)

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._live.add(conn)
        self._host.counters.requests += 1
        spec = pick_fault(self._host, "connect", ("reset", "refuse"))
        if spec is not None:
            conn.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._live.discard(self._conn)
            for task in _RUNNING.pop(self._conn, set()):  # asyncssh leaves them running
                task.cancel()

    def begin_auth(self, username: str) -> bool:
        user = find_user(self._host, username)
        if user is not None and user.authorized_keys and self._conn is not None:
            self._conn.set_authorized_keys(asyncssh.import_authorized_keys("\n".join(user.authorized_keys)))
        return True

    def password_auth_supported(self) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_password(self, username: str, password: str) -> bool:
        if await _auth_fault(self._host):
            return False
        user = find_user(self._host, username)
        return user is not None and user.password == password

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if await _auth_fault(self._host):
            return False
        user = find_user(self._host, username)
        if user is None or not user.authorized_keys:
            return False
        allowed = asyncssh.import_authorized_keys("\n".join(user.authorized_keys))
        return allowed.validate(key, "", "") is not None


async def _auth_fault(host: LabHost) -> bool:
    spec = pick_fault(host, "auth", ("http401", "hang", "latency"))
    if spec is None:
        return False
    if spec.kind == "latency" and spec.value:
        await asyncio.sleep(spec.value)
        return False
    if spec.kind == "hang":
        await asyncio.Event().wait()
    return spec.kind == "http401"


async def _read_to_eof(stream: Any, cap: int) -> bytes:
    """All of stdin up to EOF (a read returns whatever has arrived, so loop); over `cap` is cut."""
    chunks: list[bytes] = []
    size = 0
    while size < cap:
        block = await stream.read(min(65536, cap - size))
        if not block:
            break
        chunks.append(block)
        size += len(block)
    return b"".join(chunks)


async def _interactive_cmd(host: LabHost, process: asyncssh.SSHServerProcess[bytes]) -> int:
    """A shell request: cmd.exe's banner and prompt, one command line per input line, `exit`."""
    user = _account(process.get_extra_info("username") or "")
    prompt = f"C:\\Users\\{user}>".encode()
    process.stdout.write(f"Microsoft Windows [Version {host.machine.os.version}]\r\n".encode())
    process.stdout.write(b"(c) Microsoft Corporation. All rights reserved.\r\n\r\n" + prompt)
    last = 0
    while True:
        raw = await process.stdin.readline()
        if not raw:
            return last
        line = raw.decode("utf-8", errors="replace").strip()
        process.stdout.write(line.encode() + b"\r\n")  # ECHO is on when cmd reads a pipe
        argv = split_command_line(line)
        if argv and argv[0].lower() == "exit":
            code = argv[-1] if len(argv) > 1 else str(last)
            return int(code) if code.lstrip("-").isdigit() else 0
        if line:
            result = await execute_command_line(host, line, _no_stdin, user)
            process.stdout.write(result.stdout)
            process.stderr.write(result.stderr)
            last = result.exit_code
        process.stdout.write(b"\r\n" + prompt)


async def _no_stdin() -> bytes:
    return b""


def _make_process_handler(host: LabHost) -> Any:
    async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
        conn = process.channel.get_connection()
        task = asyncio.current_task()
        if task is not None:
            _RUNNING.setdefault(conn, set()).add(task)
        host.counters.shell_opened()
        host.counters.requests += 1
        host.requests_by_action["ssh-exec"] = host.requests_by_action.get("ssh-exec", 0) + 1
        try:
            spec = pick_fault(host, "Command", ("latency", "hang", "reset"))
            if spec is not None:
                if spec.kind == "latency" and spec.value:
                    await asyncio.sleep(spec.value)
                elif spec.kind == "hang":
                    await asyncio.Event().wait()
                elif spec.kind == "reset":
                    process.channel.get_connection().abort()
                    return
            command = process.command
            if command is None:
                process.exit(await _interactive_cmd(host, process))
                return
            stdin_cache: list[bytes] = []

            async def read_stdin() -> bytes:
                if stdin_cache:
                    return b""
                data = await _read_to_eof(process.stdin, MAX_STDIN_BYTES)
                stdin_cache.append(data)
                return data

            user = process.get_extra_info("username") or ""
            result = await execute_command_line(host, command, read_stdin, user)
            if result.stdout:
                process.stdout.write(result.stdout)
            if result.stderr:
                process.stderr.write(result.stderr)
            process.exit(result.exit_code)
        except (asyncssh.BreakReceived, asyncssh.SignalReceived, asyncssh.TerminalSizeChanged):
            process.exit(1)
        except (BrokenPipeError, ConnectionError, asyncssh.Error):
            pass
        finally:
            host.counters.shell_closed()
            if task is not None:
                _RUNNING.get(conn, set()).discard(task)

    return handle


#: The exec handlers running on each connection, cancelled when it is lost.
_RUNNING: weakref.WeakKeyDictionary[asyncssh.connection.SSHConnection, set[asyncio.Task[Any]]] = (
    weakref.WeakKeyDictionary()
)
_LIVE: weakref.WeakKeyDictionary[asyncssh.SSHAcceptor, set[asyncssh.SSHServerConnection]] = (
    weakref.WeakKeyDictionary()
)


async def start_ssh_listener(host: LabHost, address: str, port: int) -> asyncssh.SSHAcceptor:
    """Serve `host` over SSH on address:port (port 0: pick one; read it with `.get_port()`)."""
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"the lab only listens on loopback addresses, not {address!r}")
    live: set[asyncssh.SSHServerConnection] = set()
    acceptor = await asyncssh.create_server(
        lambda: _LabSSHServer(host, live),
        address,
        port,
        server_host_keys=[host_key()],
        encoding=None,
        server_version=SERVER_VERSION,
        allow_scp=False,
        agent_forwarding=False,
        x11_forwarding=False,
        login_timeout=30,
        keepalive_interval=0,
    )
    require_listening(acceptor, address, port)
    _LIVE[acceptor] = live
    return acceptor


async def stop_ssh_listener(acceptor: asyncssh.SSHAcceptor) -> None:
    """Stop listening and drop every open connection (asyncssh's close() keeps them)."""
    acceptor.close()
    for conn in list(_LIVE.get(acceptor, ())):
        conn.abort()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(acceptor.wait_closed(), 2.0)
