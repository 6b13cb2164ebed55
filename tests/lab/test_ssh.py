"""The lab's SSH endpoint with the real asyncssh client (password and key auth)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncssh
import pytest

from fleetcheck.lab.host import FaultSpec, LabHost
from fleetcheck.lab.machine import LabUser, MachineState
from fleetcheck.lab.ssh import (
    CMD_LINE_LIMIT,
    parse_powershell_args,
    split_command_line,
    start_ssh_listener,
    stop_ssh_listener,
)
from fleetcheck.transports.bootstrap import (
    bootstrap_command_line,
    bootstrap_stdin,
    encode_command,
)

PASSWORD = "Lab-Passw0rd!"


@dataclass
class SSHLab:
    host: LabHost
    port: int
    client_key: asyncssh.SSHKey


@pytest.fixture
async def ssh_lab() -> AsyncIterator[SSHLab]:
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    user = LabUser(
        name="fleetcheck",
        password=PASSWORD,
        authorized_keys=[client_key.export_public_key().decode().strip()],
    )
    host = LabHost(name="LAB-0001", machine=MachineState(hostname="LAB-0001", users=[user]))
    server = await start_ssh_listener(host, "127.0.0.1", 0)
    try:
        yield SSHLab(host=host, port=server.get_port(), client_key=client_key)
    finally:
        server.close()
        await server.wait_closed()


def _connect(lab: SSHLab, **kwargs: Any) -> Any:
    opts: dict[str, Any] = {"username": "fleetcheck", "known_hosts": None, "client_keys": None}
    opts.update(kwargs)
    return asyncssh.connect("127.0.0.1", lab.port, **opts)


async def test_password_auth_and_bootstrap_runs_script_with_args(ssh_lab: SSHLab) -> None:
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        result = await conn.run(
            bootstrap_command_line(), input=bootstrap_stdin("hostname", '{"x": 1}').decode(), check=False
        )
    assert result.exit_status == 0
    assert result.stdout == "LAB-0001\r\n"
    assert result.stderr == ""
    received = ssh_lab.host.received_scripts[-1]
    assert received["script"] == "hostname"
    assert received["parameters"] == {"ArgsJson": '{"x": 1}'}
    assert received["transport"] == "ssh"
    assert conn.get_extra_info("server_version") == "SSH-2.0-OpenSSH_for_Windows_8.1"


async def test_key_auth_and_encoded_command(ssh_lab: SSHLab) -> None:
    cmd = f"powershell -NoProfile -NonInteractive -EncodedCommand {encode_command('whoami')}"
    async with _connect(ssh_lab, client_keys=[ssh_lab.client_key]) as conn:
        result = await conn.run(cmd, check=False)
    assert (result.exit_status, result.stdout) == (0, "lab-0001\\fleetcheck\r\n")
    assert ssh_lab.host.counters.sessions == 1
    assert ssh_lab.host.counters.open_shells == 0


async def test_command_dash_reads_script_from_stdin(ssh_lab: SSHLab) -> None:
    async with _connect(ssh_lab, password=PASSWORD, username="lab-0001\\fleetcheck") as conn:
        result = await conn.run("powershell.exe -Command -", input="Write-Output 'héllo'", check=False)
    assert result.exit_status == 0
    assert result.stdout == "héllo\r\n"


async def test_unknown_command_gives_clixml_error_and_exit_1(ssh_lab: SSHLab) -> None:
    cmd = f"powershell -EncodedCommand {encode_command('Get-Nope')}"
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        result = await conn.run(cmd, check=False)
    assert result.exit_status == 1
    assert result.stdout == ""
    assert result.stderr.startswith("#< CLIXML\r\n<Objs ")
    assert "The term 'Get-Nope' is not recognized" in result.stderr
    assert "CommandNotFoundException" in result.stderr
    assert "_x000D__x000A_" in result.stderr


async def test_command_line_limit_8191(ssh_lab: SSHLab) -> None:
    base = "powershell -Command "
    at_limit = base + "echo " + "a" * (CMD_LINE_LIMIT - len(base) - 5)
    assert len(at_limit) == CMD_LINE_LIMIT
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        ok = await conn.run(at_limit, check=False)
        too_long = await conn.run(at_limit + "a", check=False)
    assert ok.exit_status == 0
    assert ok.stdout.strip() == "a" * (CMD_LINE_LIMIT - len(base) - 5)
    assert (too_long.exit_status, too_long.stdout, too_long.stderr) == (
        1,
        "",
        "The command line is too long.\r\n",
    )


async def test_wrong_password_and_unknown_key_are_refused(ssh_lab: SSHLab) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(ssh_lab, password="wrong"):
            pass
    other = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(ssh_lab, client_keys=[other]):
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(ssh_lab, password=PASSWORD, username="nobody"):
            pass


async def test_cmd_builtins_and_unknown_cmd(ssh_lab: SSHLab) -> None:
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        hostname = await conn.run("hostname", check=False)
        echo = await conn.run('echo "a  b" c', check=False)
        unknown = await conn.run("dir-nope /s", check=False)
    assert hostname.stdout == "LAB-0001\r\n"
    assert echo.stdout == '"a  b" c\r\n'
    assert unknown.exit_status == 9009 & 0xFF  # asyncssh keeps the low byte of exit-status, as with Windows
    assert "is not recognized as an internal or external command" in unknown.stderr


async def test_auth_fault_rejects_good_password(ssh_lab: SSHLab) -> None:
    ssh_lab.host.faults.append(FaultSpec(kind="http401", on="auth"))
    with pytest.raises(asyncssh.PermissionDenied):
        async with _connect(ssh_lab, password=PASSWORD):
            pass


async def test_probe_throws_fault_gives_exit_1(ssh_lab: SSHLab) -> None:
    ssh_lab.host.faults.append(FaultSpec(kind="probe_throws", on="script"))
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        result = await conn.run(
            bootstrap_command_line(), input=bootstrap_stdin("hostname", "{}").decode(), check=False
        )
    assert result.exit_status == 1
    assert "Simulated probe failure" in result.stderr


def test_split_command_line_windows_rules() -> None:
    assert split_command_line('a "b c" d\\"e "f\\\\" g') == ["a", "b c", 'd"e', "f\\", "g"]
    assert split_command_line('  x  ""  ') == ["x", ""]


def test_parse_powershell_args_prefixes_and_errors() -> None:
    enc = base64.b64encode("hostname".encode("utf-16-le")).decode()
    assert parse_powershell_args(["-NoP", "-NonI", "-ep", "Bypass", "-enc", enc]).script == "hostname"
    assert parse_powershell_args(["-Command", "-"]).from_stdin
    assert parse_powershell_args(["-c", "Write-Output", "'x'"]).script == "Write-Output 'x'"
    assert parse_powershell_args(["-EncodedCommand", "!!notbase64"]).error is not None
    assert parse_powershell_args([]).from_stdin


async def test_reset_on_connect_drops_the_connection(ssh_lab: SSHLab) -> None:
    ssh_lab.host.faults.append(FaultSpec(kind="reset", on="connect"))
    with pytest.raises((ConnectionError, asyncssh.Error)):
        async with _connect(ssh_lab, password=PASSWORD, connect_timeout=5):
            pass


async def test_hang_on_command_never_answers(ssh_lab: SSHLab) -> None:
    ssh_lab.host.faults.append(FaultSpec(kind="hang", on="Command"))
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.run("hostname", check=False), 0.5)
    assert ssh_lab.host.counters.peak_open_shells == 1


async def test_bad_bootstrap_argument_line_is_a_powershell_error(ssh_lab: SSHLab) -> None:
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        result = await conn.run(bootstrap_command_line(), input="!!not base64!!\r\nhostname", check=False)
    assert result.exit_status == 1
    assert "FromBase64String" in result.stderr and result.stderr.startswith("#< CLIXML")


async def test_large_script_on_stdin_arrives_whole(ssh_lab: SSHLab) -> None:
    script = "# " + "x" * 600_000 + "\nhostname"
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        process = await conn.create_process(bootstrap_command_line(), encoding=None)
        data = bootstrap_stdin(script, '{"big": true}')
        for offset in range(0, len(data), 50_000):  # arrives in many packets
            process.stdin.write(data[offset : offset + 50_000])
            await process.stdin.drain()
        process.stdin.write_eof()
        result = await process.wait(check=False)
    received = ssh_lab.host.received_scripts[-1]
    assert received["script_length"] == len(script)
    assert received["parameters"] == {"ArgsJson": '{"big": true}'}
    assert (result.exit_status, result.stdout) == (0, b"LAB-0001\r\n")


async def test_interactive_shell_is_cmd_with_a_prompt(ssh_lab: SSHLab) -> None:
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        result = await conn.run(input="hostname\r\nnope\r\nexit 3\r\n", check=False)
    assert result.exit_status == 3
    assert result.stdout.startswith("Microsoft Windows [Version 10.0.17763]")
    assert "C:\\Users\\fleetcheck>hostname\r\nLAB-0001\r\n" in result.stdout
    assert "'nope' is not recognized" in result.stderr


async def test_stop_drops_open_connections_and_closes_shells() -> None:
    host = LabHost(
        name="LAB-0009",
        machine=MachineState(hostname="LAB-0009"),
        faults=[FaultSpec(kind="hang", on="Command")],
    )
    acceptor = await start_ssh_listener(host, "127.0.0.1", 0)
    conn = await asyncssh.connect(
        "127.0.0.1", acceptor.get_port(), username="fleetcheck", password=PASSWORD, known_hosts=None, client_keys=None
    )
    running = asyncio.ensure_future(conn.run("hostname", check=False))
    for _ in range(100):
        if host.counters.open_shells:
            break
        await asyncio.sleep(0.01)
    assert host.counters.open_shells == 1
    await stop_ssh_listener(acceptor)
    result = await asyncio.wait_for(running, 5)  # ends instead of hanging: the connection is gone
    assert result.exit_status in (None, -1) and result.stdout == ""
    await asyncio.sleep(0.05)
    assert host.counters.open_shells == 0
    conn.close()


async def test_powershell_subsystem_is_refused_like_a_stock_windows_sshd(ssh_lab: SSHLab) -> None:
    async with _connect(ssh_lab, password=PASSWORD) as conn:
        with pytest.raises(asyncssh.ChannelOpenError, match=r"(?i)request failed"):
            await conn.create_process(subsystem="powershell")
        result = await conn.run("hostname", check=False)  # the connection stays usable
    assert result.exit_status == 0
