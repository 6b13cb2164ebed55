"""Every injected fault kind, and what the unmodified client sees."""

from __future__ import annotations

import functools
import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import requests
from pypsrp.client import Client
from pypsrp.exceptions import AuthenticationError, InvalidPSRPOperation, WinRMTransportError, WSManFaultError
from pypsrp.powershell import PowerShell, PSInvocationState, RunspacePool
from spnego.exceptions import SpnegoError
from winrm_helpers import PASSWORD, USER, Endpoint, in_thread, make_host, serve

from fleetcheck.lab.host import FaultSpec


def _execute(ep: Endpoint, script: str = "hostname", **wsman: Any) -> tuple[Any, ...]:
    client = Client(
        ep.address,
        port=ep.port,
        ssl=ep.https,
        username=USER,
        password=PASSWORD,
        auth="ntlm",
        cert_validation=ep.ca_path if ep.https else False,
        read_timeout=wsman.pop("read_timeout", 10),
        operation_timeout=wsman.pop("operation_timeout", 5),
        reconnection_retries=0,
        **wsman,
    )
    return tuple(client.execute_ps(script))


def _open_and_invoke(ep: Endpoint, **wsman: Any) -> list[Any]:
    """Explicit open/invoke (no context manager) so the first error is the one raised."""
    pool = RunspacePool(ep.wsman(**wsman))
    pool.open()
    ps = PowerShell(pool)
    ps.add_script("hostname")
    return list(ps.invoke())


async def _raises(host_faults: list[FaultSpec], func: Any, *args: Any, **serve_kw: Any) -> BaseException:
    host = make_host(faults=host_faults)
    async with serve(host, **serve_kw) as ep:
        with pytest.raises(Exception) as info:
            await in_thread(func, ep, *args)
    return info.value


async def test_latency_and_jitter_slow_every_request() -> None:
    host = make_host(faults=[FaultSpec(kind="latency", value=0.1), FaultSpec(kind="jitter", value=0.05)])
    async with serve(host) as ep:
        started = time.monotonic()
        out = await in_thread(_execute, ep)
        elapsed = time.monotonic() - started
    requests_made = sum(host.requests_by_action.values())
    assert out[0] == "SRV01"
    assert elapsed >= 0.1 * requests_made


async def test_slow_output_spreads_items() -> None:
    host = make_host(faults=[FaultSpec(kind="slow_output", on="script", value=0.4)])
    async with serve(host) as ep:
        started = time.monotonic()
        out = await in_thread(_execute, ep)
    assert out[0] == "SRV01" and time.monotonic() - started >= 0.4


async def test_hang_on_create_times_out_the_client() -> None:
    exc = await _raises([FaultSpec(kind="hang", on="Create")], functools.partial(_execute, read_timeout=1))
    assert isinstance(exc, requests.exceptions.ReadTimeout)


async def test_hang_in_script_long_polls_then_timed_out_fault() -> None:
    def run(ep: Endpoint) -> tuple[bool, float]:
        pool = RunspacePool(ep.wsman(operation_timeout=5, read_timeout=10))
        pool.open()
        ps = PowerShell(pool)
        ps.add_script("hostname")
        ps.begin_invoke()
        started = time.monotonic()
        ps.poll_invoke(timeout=1)  # the lab answers w:TimedOut after OperationTimeout; pypsrp swallows it
        waited = time.monotonic() - started
        running = ps.state == PSInvocationState.RUNNING
        ps.stop()
        pool.close()
        return running, waited

    host = make_host(faults=[FaultSpec(kind="hang", on="script")])
    async with serve(host) as ep:
        running, waited = await in_thread(run, ep)
    assert running and 0.9 <= waited < 4
    assert host.counters.open_shells == 0


async def test_refuse_at_connect() -> None:
    exc = await _raises([FaultSpec(kind="refuse", on="connect")], _execute)
    assert isinstance(exc, requests.exceptions.ConnectionError)


async def test_reset_on_command_gives_connection_error() -> None:
    exc = await _raises([FaultSpec(kind="reset", on="Command")], _open_and_invoke)
    assert isinstance(exc, requests.exceptions.ConnectionError)


async def test_http401_on_auth() -> None:
    exc = await _raises([FaultSpec(kind="http401", on="auth")], _execute)
    assert isinstance(exc, AuthenticationError)


@pytest.mark.parametrize("code", [2150859174, 2150859173, 2150858793, 2147943418])
async def test_http500_carries_the_wsman_code(code: int) -> None:
    exc = await _raises([FaultSpec(kind="http500", on="Create", code=code)], _execute)
    assert isinstance(exc, WSManFaultError) and exc.code == code


async def test_optimeout_during_open_is_fatal_for_pypsrp() -> None:
    exc = await _raises([FaultSpec(kind="optimeout", on="Receive", nth=1)], _open_and_invoke)
    assert isinstance(exc, WSManFaultError) and exc.code == 2150858793


async def test_shell_quota_kind() -> None:
    exc = await _raises([FaultSpec(kind="shell_quota", on="Create")], _execute)
    assert isinstance(exc, WSManFaultError) and exc.code == 2150859173
    assert "maximum number of 30 concurrent shells" in str(exc)


async def test_malformed_xml() -> None:
    exc = await _raises([FaultSpec(kind="malformed", on="Create")], _execute)
    assert isinstance(exc, ET.ParseError)


async def test_encrypt_garbage_cannot_be_decrypted() -> None:
    exc = await _raises([FaultSpec(kind="encrypt_garbage", on="Create")], _open_and_invoke)
    assert isinstance(exc, SpnegoError)  # BadMICError: the seal does not verify


@pytest.mark.parametrize("kind", ["wrong_name", "untrusted"])
async def test_tls_bad_cert(tmp_path: Path, kind: str) -> None:
    exc = await _raises([], _execute, https=True, tmp_path=tmp_path, bad_cert=kind)
    assert isinstance(exc, requests.exceptions.SSLError)


async def test_cbt_mismatch(tmp_path: Path) -> None:
    exc = await _raises([FaultSpec(kind="cbt_mismatch", on="auth")], _execute, https=True, tmp_path=tmp_path)
    assert isinstance(exc, AuthenticationError)


async def test_broken_pool() -> None:
    exc = await _raises([FaultSpec(kind="broken_pool", on="Create")], _open_and_invoke)
    assert isinstance(exc, InvalidPSRPOperation)


async def test_bad_json_output() -> None:
    host = make_host(faults=[FaultSpec(kind="bad_json", on="script")])
    async with serve(host) as ep:
        out = await in_thread(_execute, ep)
    with pytest.raises(json.JSONDecodeError):
        json.loads(out[0])


async def test_probe_throws_is_a_failed_pipeline() -> None:
    host = make_host(faults=[FaultSpec(kind="probe_throws", on="script")])
    async with serve(host) as ep:
        _, streams, had_errors = await in_thread(_execute, ep)
    assert had_errors and "Simulated probe failure" in str(streams.error[0])


async def test_nth_and_probability_select_requests() -> None:
    host = make_host(faults=[FaultSpec(kind="http500", on="Create", nth=2, code=2150859174)])
    async with serve(host) as ep:
        assert (await in_thread(_execute, ep))[0] == "SRV01"
        with pytest.raises(WSManFaultError):
            await in_thread(_execute, ep)
        assert (await in_thread(_execute, ep))[0] == "SRV01"
    never = make_host(faults=[FaultSpec(kind="http500", on="Create", probability=0.0)])
    async with serve(never) as ep:
        assert (await in_thread(_execute, ep))[0] == "SRV01"


async def test_reset_is_masked_by_context_manager_as_in_the_notes() -> None:
    def run(ep: Endpoint) -> None:
        with ep.wsman() as wsman, RunspacePool(wsman) as pool:
            ps = PowerShell(pool)
            ps.add_script("hostname")
            ps.invoke()

    exc = await _raises([FaultSpec(kind="reset", on="Command")], run)
    assert isinstance(exc, (WinRMTransportError, requests.exceptions.ConnectionError))


async def test_reset_on_every_request_still_reaches_the_client_as_connection_error() -> None:
    exc = await _raises([FaultSpec(kind="reset")], _execute)
    assert isinstance(exc, requests.exceptions.ConnectionError)


async def test_a_lab_bug_costs_one_request_not_the_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcheck.lab import hostserver

    def broken(*args: Any) -> str:
        raise RuntimeError("simulated lab bug")

    host = make_host()
    async with serve(host) as ep:
        monkeypatch.setattr(hostserver, "PsrpShell", broken)
        with pytest.raises(WSManFaultError) as info:
            await in_thread(_execute, ep)
        assert "simulated" not in str(info.value)  # internals never reach the client
        monkeypatch.undo()
        assert (await in_thread(_execute, ep))[0] == "SRV01"


async def test_hang_during_authentication() -> None:
    exc = await _raises([FaultSpec(kind="hang", on="auth")], functools.partial(_execute, read_timeout=1))
    assert isinstance(exc, requests.exceptions.ReadTimeout)
