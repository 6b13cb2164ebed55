"""PowerShell over SSH (Windows OpenSSH, cmd.exe as default shell) with asyncssh.

Same bootstrap as WinRS: a constant command line, the JSON argument and the script on
stdin. asyncssh is native asyncio, so the deadline is a plain `asyncio.timeout`.

Host keys: by default the user's `~/.ssh/known_hosts` is enforced (an unknown key fails
the host with a clear message); a host's `ssh_known_hosts: FILE` (`SshSettings.known_hosts`) names another file (the
lab writes one next to its inventory). `accept` skips verification: convenient for first
contact, but anyone who can answer on that address then receives the password. Use it on
trusted networks only; better, pre-populate known_hosts (ssh-keyscan) or use key auth.
`~/.ssh/config` is not read: the inventory is the only source of connection settings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncssh

from fleetcheck.transports.base import MAX_OUTPUT_BYTES, ScriptOutput, Transport, failure_context
from fleetcheck.transports.bootstrap import bootstrap_command_line, bootstrap_stdin
from fleetcheck.transports.clixml import decode_clixml_errors
from fleetcheck.transports.errors import SSH_RULES, DeadlineExceeded, OutputTooLarge, map_exceptions
from fleetcheck.transports.target import SshSettings, Target, settings_as

_DEFAULT = "default"


def known_hosts_setting(value: str | None) -> str | tuple[()] | None:
    """Map our setting to asyncssh's: 'default' -> ~/.ssh/known_hosts, 'accept'/'none' -> no check."""
    if value is None or value.lower() in ("accept", "none", "off", "false"):
        return None
    if value == _DEFAULT:
        return ()
    return str(Path(value).expanduser())


async def _read_capped(stream: asyncssh.SSHReader[bytes], cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        block = await stream.read(65536)
        if not block:
            return b"".join(chunks)
        size += len(block)
        if size > cap:
            raise OutputTooLarge(f"more than {cap} bytes of output")
        chunks.append(block)


class SshTransport(Transport):
    """asyncssh exec of the bootstrap; password or key auth."""

    name = "ssh"

    def __init__(self, known_hosts: str | None = _DEFAULT) -> None:
        self.known_hosts = known_hosts

    def connect_options(self, target: Target, timeout: float) -> dict[str, Any]:
        """asyncssh.connect keyword arguments (password included: call-local only)."""
        ssh = settings_as(target, SshSettings)
        known = ssh.known_hosts if ssh.known_hosts is not None else self.known_hosts
        opts: dict[str, Any] = {
            "host": target.address,
            "port": ssh.effective_port,
            "username": ssh.username,
            "known_hosts": known_hosts_setting(known),
            "connect_timeout": timeout,
            "login_timeout": timeout,
            "agent_path": None,
            "config": None,  # the inventory is the only source of settings, not ~/.ssh/config
        }
        if ssh.uses_key:
            opts["client_keys"] = [str(ssh.key_path)] if ssh.key_path else ()
            opts["password"] = None
        else:
            opts["client_keys"] = ()
            opts["password"] = ssh.secret()
            opts["preferred_auth"] = "password,keyboard-interactive"
        return opts

    async def run(self, target: Target, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        with map_exceptions(failure_context(target, timeout), SSH_RULES):
            try:
                async with asyncio.timeout(timeout):
                    return await self._run(target, script, args_json, timeout)
            except TimeoutError as exc:
                raise DeadlineExceeded(f"deadline of {timeout:g} s reached") from exc

    async def _run(self, target: Target, script: str, args_json: str, timeout: float) -> ScriptOutput:
        async with asyncssh.connect(**self.connect_options(target, timeout)) as conn:
            proc = await conn.create_process(bootstrap_command_line(), encoding=None)
            proc.stdin.write(bootstrap_stdin(script, args_json))
            proc.stdin.write_eof()
            stdout, stderr = await asyncio.gather(
                _read_capped(proc.stdout, MAX_OUTPUT_BYTES), _read_capped(proc.stderr, MAX_OUTPUT_BYTES)
            )
            completed = await proc.wait(check=False)
            code = completed.exit_status
            return ScriptOutput(
                stdout=stdout.decode("utf-8", errors="replace"),
                errors=decode_clixml_errors(stderr.decode("utf-8", errors="replace")),
                failed=code != 0,
                exit_code=code,
            )
