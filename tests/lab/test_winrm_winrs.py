"""pywinrm 0.5.0 (and pypsrp's WinRS client), unmodified, against the lab's cmd shell."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
import winrm
from winrm.exceptions import InvalidCredentialsError
from winrm_helpers import PASSWORD, USER, Endpoint, in_thread, make_host, serve

from fleetcheck.transports.bootstrap import bootstrap_command_line, bootstrap_stdin


def _session(ep: Endpoint, transport: str = "ntlm", password: str = PASSWORD) -> winrm.Session:
    kwargs: dict[str, object] = {"transport": transport}
    if ep.https:
        kwargs["server_cert_validation"] = "validate"
        kwargs["ca_trust_path"] = ep.ca_path
    return winrm.Session(ep.url, auth=(USER, password), **kwargs)


async def test_run_ps_and_run_cmd_over_http_ntlm() -> None:
    host = make_host("app07")
    async with serve(host) as ep:
        session = _session(ep)
        ps = await in_thread(session.run_ps, "whoami")
        cmd = await in_thread(session.run_cmd, "hostname")
    assert (ps.status_code, ps.std_out, ps.std_err) == (0, b"app07\\fleetcheck\r\n", b"")
    assert (cmd.status_code, cmd.std_out) == (0, b"APP07\r\n")
    assert host.counters.open_shells == 0


async def test_run_ps_over_https_basic(tmp_path: Path) -> None:
    async with serve(make_host(), https=True, tmp_path=tmp_path) as ep:
        result = await in_thread(_session(ep, "basic").run_ps, "echo hello")
    assert (result.status_code, result.std_out) == (0, b"hello\r\n")


async def test_run_ps_error_goes_to_stderr_as_clixml() -> None:
    async with serve(make_host()) as ep:
        session = _session(ep)
        result = await in_thread(session.run_ps, "Get-Nothing")
        raw = await in_thread(session.protocol.open_shell)
        cid = await in_thread(session.protocol.run_command, raw, "powershell -EncodedCommand " + base64.b64encode("Get-Nothing".encode("utf-16-le")).decode())
        out, err, code = await in_thread(session.protocol.get_command_output, raw, cid)
        await in_thread(session.protocol.cleanup_command, raw, cid)
        await in_thread(session.protocol.close_shell, raw)
    assert result.status_code == 1
    # pywinrm's run_ps already turned the CLIXML back into text
    assert b"The term 'Get-Nothing' is not recognized" in result.std_err
    assert b"FullyQualifiedErrorId : CommandNotFoundException" in result.std_err
    assert err.startswith(b"#< CLIXML\r\n<Objs Version=\"1.1.0.1\"") and code == 1 and out == b""


async def test_unknown_cmd_command() -> None:
    async with serve(make_host()) as ep:
        result = await in_thread(_session(ep).run_cmd, "frobnicate", ["/all"])
    assert result.status_code == 9009
    assert result.std_err.startswith(b"'frobnicate' is not recognized as an internal or external command")


async def test_command_line_limit_8191() -> None:
    async with serve(make_host()) as ep:
        session = _session(ep)
        ok = await in_thread(session.run_cmd, "echo", ["x" * (8191 - 5)])
        too_long = await in_thread(session.run_cmd, "echo", ["x" * (8191 - 4)])
    assert ok.status_code == 0 and ok.std_out.strip() == b"x" * (8191 - 5)
    assert (too_long.status_code, too_long.std_out, too_long.std_err) == (1, b"", b"The command line is too long.\r\n")


async def test_bootstrap_reads_args_and_script_from_stdin() -> None:
    args_json = json.dumps({"probes": ["os"], "note": "'; exit 1; '"})
    script = "# a probe bundle without the marker\nWrite-Output 'from-stdin'\n"

    def run(ep: Endpoint) -> tuple[bytes, bytes, int]:
        proto = _session(ep).protocol
        shell = proto.open_shell()
        try:
            cid = proto.run_command(shell, bootstrap_command_line())
            data = bootstrap_stdin(script, args_json)
            proto.send_command_input(shell, cid, data[:10])
            proto.send_command_input(shell, cid, data[10:], end=True)
            result = proto.get_command_output(shell, cid)
            proto.cleanup_command(shell, cid)
            return result
        finally:
            proto.close_shell(shell)

    host = make_host()
    async with serve(host) as ep:
        out, err, code = await in_thread(run, ep)
    assert (out, err, code) == (b"from-stdin\r\n", b"", 0)
    received = host.received_scripts[-1]
    assert received["transport"] == "winrs"
    assert received["script"] == script
    assert json.loads(received["parameters"]["ArgsJson"]) == json.loads(args_json)


async def test_powershell_command_dash_reads_script_from_stdin() -> None:
    def run(ep: Endpoint) -> tuple[bytes, bytes, int]:
        proto = _session(ep).protocol
        shell = proto.open_shell()
        try:
            cid = proto.run_command(shell, "powershell.exe -NoProfile -Command -")
            proto.send_command_input(shell, cid, b"hostname\r\n", end=True)
            return proto.get_command_output(shell, cid)
        finally:
            proto.close_shell(shell)

    async with serve(make_host("core3")) as ep:
        assert await in_thread(run, ep) == (b"CORE3\r\n", b"", 0)


async def test_wrong_password_pywinrm() -> None:
    async with serve(make_host()) as ep:
        with pytest.raises(InvalidCredentialsError):
            await in_thread(_session(ep, password="wrong").run_cmd, "hostname")


async def test_pypsrp_execute_cmd_uses_the_same_shell() -> None:
    from pypsrp.client import Client

    async with serve(make_host()) as ep:
        client = Client(ep.address, port=ep.port, ssl=False, username=USER, password=PASSWORD, auth="ntlm", reconnection_retries=0)
        out, err, rc = await in_thread(client.execute_cmd, "whoami")
    assert (out, err, rc) == ("srv01\\fleetcheck\r\n", "", 0)


async def test_run_ps_over_https_ntlm_with_channel_binding(tmp_path: Path) -> None:
    async with serve(make_host(), https=True, tmp_path=tmp_path) as ep:
        result = await in_thread(_session(ep, "ntlm").run_ps, "hostname")
    assert (result.status_code, result.std_out) == (0, b"SRV01\r\n")


def test_create_honours_environment_and_working_directory() -> None:
    """WinRS Create's rsp:Environment and rsp:WorkingDirectory reach cmd.exe (%VAR%, set, cd)."""
    from winrm.protocol import Protocol

    async def go() -> list[tuple[bytes, bytes, int]]:
        async with serve(make_host()) as ep:

            def run() -> list[tuple[bytes, bytes, int]]:
                p = Protocol(ep.url, transport="ntlm", username=USER, password=PASSWORD, server_cert_validation="ignore")
                shell = p.open_shell(env_vars={"FLEET_ENV": "lab-42"}, working_directory="D:\\work")
                out = []
                for command in ("echo %FLEET_ENV%", "set fleet_", "cd", "echo %NOT_SET%"):
                    cid = p.run_command(shell, command)
                    out.append(p.get_command_output(shell, cid))
                    p.cleanup_command(shell, cid)
                p.close_shell(shell)
                return out

            return await in_thread(run)

    results = asyncio.run(go())
    assert [r[0].strip() for r in results] == [b"lab-42", b"FLEET_ENV=lab-42", b"D:\\work", b"%NOT_SET%"]
