"""pypsrp 0.9.1, unmodified, against the lab's PSRP endpoint over every auth/transport combination."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pypsrp.client import Client
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from winrm_helpers import PASSWORD, USER, Endpoint, in_thread, make_host, serve

from fleetcheck.lab.host import FaultSpec
from fleetcheck.lab.machine import LabUser


def _client(ep: Endpoint, auth: str = "ntlm", password: str = PASSWORD) -> Client:
    return Client(
        ep.address,
        port=ep.port,
        ssl=ep.https,
        username=USER,
        password=password,
        auth=auth,
        cert_validation=ep.ca_path if ep.https else False,
        read_timeout=10,
        operation_timeout=5,
        reconnection_retries=0,
    )


async def test_execute_ps_http_ntlm_encrypted() -> None:
    host = make_host("web01")
    async with serve(host) as ep:
        out, streams, had_errors = await in_thread(_client(ep).execute_ps, "hostname")
    assert (out, had_errors, streams.error) == ("WEB01", False, [])
    # plain HTTP without AllowUnencrypted: the session can only have worked sealed
    assert host.requests_by_action["Create"] == 1
    assert host.requests_by_action["Delete"] == 1
    assert host.counters.open_shells == 0 and host.counters.sessions == 1


async def test_execute_ps_http_negotiate_and_whoami() -> None:
    async with serve(make_host()) as ep:
        out, _, had_errors = await in_thread(_client(ep, "negotiate").execute_ps, "whoami")
    assert (out, had_errors) == ("srv01\\fleetcheck", False)


async def test_https_basic(tmp_path: Path) -> None:
    async with serve(make_host(), https=True, tmp_path=tmp_path) as ep:
        out, _, _ = await in_thread(_client(ep, "basic").execute_ps, "Write-Output 'it''s ok'")
    assert out == "it's ok"


async def test_https_ntlm_with_channel_binding(tmp_path: Path) -> None:
    async with serve(make_host(), https=True, tmp_path=tmp_path) as ep:
        out, _, _ = await in_thread(_client(ep, "ntlm").execute_ps, "$PSVersionTable.PSVersion")
    assert "Major  Minor  Build  Revision" in out
    assert "5      1      17763  1852" in out


async def test_basic_refused_on_http() -> None:
    def run(ep: Endpoint) -> None:
        c = Client(ep.address, port=ep.port, ssl=False, username=USER, password=PASSWORD, auth="basic",
                   encryption="never", reconnection_retries=0)
        c.execute_ps("hostname")

    async with serve(make_host()) as ep:
        with pytest.raises(AuthenticationError):
            await in_thread(run, ep)


async def test_wrong_password_is_rejected() -> None:
    async with serve(make_host()) as ep:
        with pytest.raises(AuthenticationError):
            await in_thread(_client(ep, password="nope").execute_ps, "hostname")


async def test_per_host_passwords_for_the_same_user() -> None:
    host_a = make_host("a", users=[LabUser(name=USER, password="PassA-1!")])
    host_b = make_host("b", users=[LabUser(name=USER, password="PassB-2!")])
    async with serve(host_a) as ep_a, serve(host_b) as ep_b:
        assert (await in_thread(_client(ep_a, password="PassA-1!").execute_ps, "hostname"))[0] == "A"
        assert (await in_thread(_client(ep_b, password="PassB-2!").execute_ps, "hostname"))[0] == "B"
        with pytest.raises(AuthenticationError):
            await in_thread(_client(ep_b, password="PassA-1!").execute_ps, "hostname")


async def test_runspacepool_add_script_parameters_arrive_as_data() -> None:
    hostile = "x'; Remove-Item C:\\ -Recurse; '"

    def run(ep: Endpoint) -> tuple[list[object], bool]:
        with ep.wsman() as wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_script("Write-Output 'literal'").add_parameter("ArgsJson", json.dumps({"name": hostile}))
            output = ps.invoke()
            return output, ps.had_errors

    host = make_host()
    async with serve(host) as ep:
        output, had_errors = await in_thread(run, ep)
    assert (output, had_errors) == (["literal"], False)
    received = host.received_scripts[-1]
    assert received["script"] == "Write-Output 'literal'"
    assert json.loads(received["parameters"]["ArgsJson"]) == {"name": hostile}
    assert received["transport"] == "psrp"


async def test_unknown_command_is_a_nonterminating_error_record() -> None:
    async with serve(make_host()) as ep:
        out, streams, had_errors = await in_thread(_client(ep).execute_ps, "Get-Frobnicator")
    assert out == "" and had_errors is False  # like Windows: an error record is not a failure
    [record] = streams.error
    assert record.fq_error == "CommandNotFoundException"
    assert record.reason == "CommandNotFoundException"
    assert "The term 'Get-Frobnicator' is not recognized" in str(record)


async def test_terminating_error_fails_the_pipeline() -> None:
    def run(ep: Endpoint) -> tuple[int, bool, str]:
        with ep.wsman() as wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_script("hostname")
            ps.invoke()
            return ps.state, ps.had_errors, str(ps.streams.error[0]) if ps.streams.error else ""

    host = make_host(faults=[FaultSpec(kind="probe_throws", on="script")])
    async with serve(host) as ep:
        state, had_errors, _ = await in_thread(run, ep)
    assert state == PSInvocationState.FAILED and had_errors


async def test_large_output_is_fragmented_across_receives(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcheck.lab import psrp_shell

    sizes: list[tuple[int, int]] = []
    original = psrp_shell.receive_response

    def recording(request: Any, *args: Any, **kwargs: Any) -> bytes:
        body = original(request, *args, **kwargs)
        sizes.append((len(body), request.max_envelope_size))
        return body

    monkeypatch.setattr(psrp_shell, "receive_response", recording)
    size = 2 * 1024 * 1024
    host = make_host(faults=[FaultSpec(kind="oversized_output", on="script", value=size)])
    async with serve(host) as ep:
        out, _, _ = await in_thread(_client(ep).execute_ps, "hostname")
    assert len(out) >= size - 4096
    assert host.requests_by_action["Receive"] >= 5  # many Receives...
    assert all(length <= limit for length, limit in sizes)  # ...each within MaxEnvelopeSize
    assert max(length for length, _ in sizes) > 400_000  # and using the 512000 the client allows


async def test_request_above_max_envelope_size_gets_413() -> None:
    from pypsrp.exceptions import WinRMTransportError

    script = "Write-Output 'big'\n" + "# padding\n" * 30_000  # ~300 KB in one 512000-byte envelope
    async with serve(make_host(winrm={"max_envelope_size_kb": 150})) as ep:
        with pytest.raises(WinRMTransportError) as info:
            await in_thread(_client(ep).execute_ps, script)
    assert info.value.code == 413


async def test_script_larger_than_one_envelope_uses_send() -> None:
    script = "Write-Output 'big'\n" + "# padding\n" * 60_000  # ~600 KB > 512 KB envelope
    host = make_host()
    async with serve(host) as ep:
        out, _, _ = await in_thread(_client(ep).execute_ps, script)
    assert host.requests_by_action.get("Send", 0) >= 1
    assert host.received_scripts[-1]["script_length"] == len(script)
    assert out == "big"


@pytest.mark.parametrize(("version", "expected"), [("2.3", 512000), ("2.1", 153600)])
async def test_protocol_version_sets_client_envelope_size(version: str, expected: int) -> None:
    def run(ep: Endpoint) -> int:
        with ep.wsman() as wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_script("hostname")
            ps.invoke()
            return int(wsman.max_envelope_size)

    async with serve(make_host(winrm={"protocol_version": version})) as ep:
        assert await in_thread(run, ep) == expected


async def test_shell_quota_fault() -> None:
    def run(ep: Endpoint) -> int:
        wsman = ep.wsman()
        pools = []
        try:
            for _ in range(3):
                pool = RunspacePool(wsman)
                pool.open()
                pools.append(pool)
        except WSManFaultError as exc:
            return int(exc.code)
        finally:
            for pool in pools:
                pool.close()
        return 0

    host = make_host(winrm={"max_shells_per_user": 2})
    async with serve(host) as ep:
        code = await in_thread(run, ep)
    assert code == 2150859173
    assert host.counters.peak_open_shells == 2 and host.counters.open_shells == 0


async def test_idle_shell_is_deleted() -> None:
    def run(ep: Endpoint) -> int:
        wsman = ep.wsman()
        pool = RunspacePool(wsman)
        pool.open()
        time.sleep(0.8)
        try:
            ps = PowerShell(pool)
            ps.add_script("hostname")
            ps.invoke()
        except WSManFaultError as exc:
            return int(exc.code)
        return 0

    host = make_host(winrm={"idle_timeout_s": 0.3})
    async with serve(host) as ep:
        code = await in_thread(run, ep)
    assert code == 2150858843  # the shell is gone
    assert host.shells == {} and host.counters.open_shells == 0


async def test_stop_interrupts_a_slow_pipeline() -> None:
    def run(ep: Endpoint) -> tuple[float, int]:
        with ep.wsman() as wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_script("hostname")
            ps.begin_invoke()
            started = time.monotonic()
            ps.stop()
            return time.monotonic() - started, ps.state

    host = make_host(faults=[FaultSpec(kind="slow_output", on="script", value=30)])
    async with serve(host) as ep:
        elapsed, state = await in_thread(run, ep)
    assert elapsed < 5 and state == PSInvocationState.STOPPED
    assert host.counters.open_shells == 0


async def test_get_shell_state_and_unknown_shell() -> None:
    from pypsrp.wsman import NAMESPACES, SelectorSet

    uri = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"

    def run(ep: Endpoint) -> tuple[str, int, int]:
        wsman = ep.wsman()
        pool = RunspacePool(wsman)
        pool.open()
        try:
            selectors = SelectorSet()
            selectors.add_option("ShellId", str(pool.id).upper())
            state = wsman.get(uri, selector_set=selectors).find(".//rsp:Shell/rsp:State", NAMESPACES)
            config = wsman.get("http://schemas.microsoft.com/wbem/wsman/1/config")
            size_el = config.find(".//{http://schemas.microsoft.com/wbem/wsman/1/config}MaxEnvelopeSizekb")
            size = int(size_el.text or 0) if size_el is not None else 0
        finally:
            pool.close()
        unknown = SelectorSet()
        unknown.add_option("ShellId", "00000000-0000-0000-0000-000000000001")
        try:
            wsman.get(uri, selector_set=unknown)
        except WSManFaultError as exc:
            return (state.text or "" if state is not None else ""), int(exc.code), size
        return "", 0, size

    async with serve(make_host()) as ep:
        assert await in_thread(run, ep) == ("Connected", 2150858843, 500)
