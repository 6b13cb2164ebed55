"""The WinRS cmd shell (`.../windows/shell/cmd`): command lines as cmd.exe runs them.

Understands `powershell ... -EncodedCommand <b64>` (UTF-16-LE), `-Command -` (script on
stdin), fleetcheck's constant bootstrap (arguments and script on stdin), and a few cmd
built-ins. Output is console bytes; PowerShell errors go to stderr as CLIXML, exit code 1.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fleetcheck.lab.cmdline import CMD_LINE_LIMIT, is_powershell, parse_powershell_args, split_command_line
from fleetcheck.lab.engine import LabErrorRecord, ScriptRequest, answer_generic, run_script
from fleetcheck.lab.host import LabHost
from fleetcheck.lab.render import clixml_errors, console_text, error_text
from fleetcheck.lab.shellbase import LabShell
from fleetcheck.lab.wsman import (
    NS_RSP,
    StreamChunk,
    WSManFault,
    WsmanRequest,
    invalid_selectors,
    receive_response,
    unknown_command,
)
from fleetcheck.transports.bootstrap import BOOTSTRAP_MARKER, parse_bootstrap_stdin

STDIN_LIMIT = 32 * 1024 * 1024


@dataclass
class WinrsCommand:
    command_id: str
    line: str
    stdout: deque[bytes] = field(default_factory=deque)
    stderr: deque[bytes] = field(default_factory=deque)
    stdin: bytearray = field(default_factory=bytearray)
    stdin_done: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    exit_code: int = 0
    task: asyncio.Task[Any] | None = None


class _TextSink:
    def __init__(self, shell: WinrsShell, cmd: WinrsCommand, encoding: str) -> None:
        self.shell = shell
        self.cmd = cmd
        self.encoding = encoding
        self.errors: list[LabErrorRecord] = []

    def write_output(self, value: Any) -> None:
        self.cmd.stdout.append(console_text([value]).encode(self.encoding, errors="replace"))
        self.shell.wake()

    def write_error(self, record: LabErrorRecord) -> None:
        self.errors.append(record)


class WinrsShell(LabShell):
    input_streams = "stdin"
    output_streams = "stdout stderr"

    def __init__(self, host: LabHost, shell_id: str, owner: str, resource_uri: str, client_ip: str, codepage: str) -> None:
        super().__init__(host, shell_id, owner, resource_uri, client_ip)
        self.codepage = codepage
        self.commands: dict[str, WinrsCommand] = {}
        user = owner.rpartition("\\")[2] or "Administrator"
        self.cwd = f"C:\\Users\\{user}"
        #: cmd.exe's environment; names are case-insensitive, kept upper-cased here.
        self.env: dict[str, tuple[str, str]] = {
            name.upper(): (name, value)
            for name, value in (
                ("COMPUTERNAME", host.machine.hostname),
                ("USERNAME", user),
                ("USERPROFILE", self.cwd),
                ("SystemRoot", "C:\\Windows"),
                ("windir", "C:\\Windows"),
                ("OS", "Windows_NT"),
            )
        }

    def configure(self, shell_el: Any) -> None:
        """What Create asks for: rsp:WorkingDirectory and rsp:Environment variables."""
        cwd = shell_el.find(f"{{{NS_RSP}}}WorkingDirectory")
        if cwd is not None and (cwd.text or "").strip():
            self.cwd = (cwd.text or "").strip()
        for var in shell_el.iterfind(f"{{{NS_RSP}}}Environment/{{{NS_RSP}}}Variable"):
            name = var.get("Name") or ""
            if name:
                self.env[name.upper()] = (name, var.text or "")

    def expand(self, line: str) -> str:
        """cmd.exe's %NAME% expansion (unknown names stay as they are)."""
        return re.sub(r"%([^%\s]+)%", lambda m: self.env.get(m.group(1).upper(), ("", m.group(0)))[1], line)

    def _encoding(self, utf8: bool) -> str:
        return "utf-8" if utf8 or self.codepage == "65001" else "cp437"

    # -- WSMan verbs -------------------------------------------------------------------------
    async def command(self, request: WsmanRequest) -> str:
        body = request.body
        line_el = body.find(f"{{{NS_RSP}}}CommandLine") if body is not None else None
        if line_el is None:
            raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "CommandLine is missing.", "s:Sender")
        cmd_el = line_el.find(f"{{{NS_RSP}}}Command")
        parts = [(cmd_el.text or "").strip() if cmd_el is not None else ""]
        parts += [(a.text or "") for a in line_el.iterfind(f"{{{NS_RSP}}}Arguments")]
        command_id = str(uuid.uuid4()).upper()
        cmd = WinrsCommand(command_id, " ".join(p for p in parts if p))
        self.commands[command_id] = cmd
        cmd.task = self.spawn(self._run(cmd))
        return command_id

    async def send(self, request: WsmanRequest) -> None:
        body = request.body
        for stream in body.iterfind(f".//{{{NS_RSP}}}Stream") if body is not None else []:
            cmd = self.commands.get((stream.get("CommandId") or "").upper())
            if cmd is None:
                raise unknown_command()
            try:
                data = base64.b64decode((stream.text or "").strip(), validate=True)
            except binascii.Error:
                raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "The stream data is not valid base64.", "s:Sender") from None
            if len(cmd.stdin) + len(data) > STDIN_LIMIT:
                raise WSManFault(2150858817, "w:QuotaLimit", "The input stream exceeds the lab's limit.")
            cmd.stdin.extend(data)
            if (stream.get("End") or "").lower() == "true":
                cmd.stdin_done.set()

    async def receive(self, request: WsmanRequest) -> bytes:
        desired = request.body.find(f".//{{{NS_RSP}}}DesiredStream") if request.body is not None else None
        cid = ((desired.get("CommandId") if desired is not None else None) or "").upper()
        cmd = self.commands.get(cid)
        if cmd is None:
            raise unknown_command()
        deadline = asyncio.get_running_loop().time() + request.operation_timeout
        while not (cmd.stdout or cmd.stderr or cmd.done):
            if self.closed:
                raise invalid_selectors()
            await self.wait_change(deadline)
        budget = max(4096, (request.max_envelope_size - 4096) // 4 * 3)
        chunks: list[StreamChunk] = []
        for name, queue in (("stdout", cmd.stdout), ("stderr", cmd.stderr)):
            while queue and budget > 0:
                data = queue.popleft()
                if len(data) > budget:
                    queue.appendleft(data[budget:])
                    data = data[:budget]
                budget -= len(data)
                chunks.append(StreamChunk(name, data))
        finished = cmd.done and not cmd.stdout and not cmd.stderr
        if finished:
            chunks += [StreamChunk("stdout", b"", end=True), StreamChunk("stderr", b"", end=True)]
        self.touch()
        return receive_response(request, cid, chunks, done=finished, exit_code=cmd.exit_code, running_state=not finished)

    async def signal(self, request: WsmanRequest) -> None:
        sig = request.body.find(f"{{{NS_RSP}}}Signal") if request.body is not None else None
        cid = ((sig.get("CommandId") if sig is not None else None) or "").upper()
        cmd = self.commands.pop(cid, None)
        if cmd is not None and cmd.task is not None:
            cmd.task.cancel()

    # -- running a command line ----------------------------------------------------------------
    def _finish(self, cmd: WinrsCommand, exit_code: int) -> None:
        cmd.exit_code = exit_code
        cmd.done = True
        self.wake()

    async def _run(self, cmd: WinrsCommand) -> None:
        if len(cmd.line) > CMD_LINE_LIMIT:
            cmd.stderr.append(b"The command line is too long.\r\n")
            self._finish(cmd, 1)
            return
        tokens = split_command_line(cmd.line)
        if tokens and is_powershell(tokens[0]):
            await self._run_powershell(cmd, tokens)
        else:
            self._run_cmd_builtin(cmd, tokens)

    def _run_cmd_builtin(self, cmd: WinrsCommand, tokens: list[str]) -> None:
        if not tokens:
            self._finish(cmd, 0)
            return
        line = self.expand(cmd.line.strip())
        tokens = split_command_line(line) or tokens
        first = tokens[0].lower()
        if first in ("cd", "chdir") and len(tokens) == 1:
            value: Any = self.cwd
        elif first == "set" and len(tokens) == 2:
            prefix = tokens[1].upper()
            found = sorted(f"{n}={v}" for key, (n, v) in self.env.items() if key.startswith(prefix))
            if not found:
                cmd.stderr.append(b"Environment variable " + tokens[1].encode("cp437", "replace") + b" not defined\r\n")
                self._finish(cmd, 1)
                return
            value = "\r\n".join(found)
        elif first == "echo":
            value = line[4:].strip()
        else:
            value = answer_generic(self.host, line, self.owner)
        if value is None or tokens[0].lower() in ("write-output", "$psversiontable.psversion"):
            name = tokens[0]
            cmd.stderr.append(f"'{name}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n".encode("cp437", errors="replace"))
            self._finish(cmd, 9009)
            return
        cmd.stdout.append(console_text([value]).encode("cp437", errors="replace"))
        self._finish(cmd, 0)

    async def _read_stdin(self, cmd: WinrsCommand) -> bytes:
        await cmd.stdin_done.wait()
        return bytes(cmd.stdin)

    async def _run_powershell(self, cmd: WinrsCommand, tokens: list[str]) -> None:
        invocation = parse_powershell_args(tokens[1:])
        if invocation.error:
            cmd.stderr.append(invocation.error.encode("cp437", errors="replace") + b"\r\n")
            self._finish(cmd, 1)
            return
        script = invocation.script
        params: dict[str, Any] = {}
        utf8 = False
        if invocation.from_stdin or script is None:
            script = (await self._read_stdin(cmd)).decode("utf-8", errors="replace")
        elif BOOTSTRAP_MARKER in script:
            utf8 = True  # the bootstrap switches the console to UTF-8
            try:
                script, args_json = parse_bootstrap_stdin(await self._read_stdin(cmd))
            except (ValueError, UnicodeDecodeError):
                cmd.stderr.append(clixml_errors(["Exception calling \"FromBase64String\" with \"1\" argument(s): \"The input is not a valid Base-64 string.\""]).encode())
                self._finish(cmd, 1)
                return
            params = {"ArgsJson": args_json}
        sink = _TextSink(self, cmd, self._encoding(utf8))
        outcome = await run_script(self.host, ScriptRequest(script, params, "winrs", self.owner), sink)
        errors = [error_text(r, script) for r in sink.errors]
        if outcome.terminating is not None:
            errors.append(error_text(outcome.terminating, script))
        if errors:
            cmd.stderr.append(clixml_errors(errors).encode("utf-8"))
        self._finish(cmd, 1 if errors or outcome.exit_code else 0)
