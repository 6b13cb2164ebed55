"""Wire details of the lab checked against what real Windows sends (pypsrp's recordings show them):
faults, PSRP message framing, ApplicationPrivateData, SetShouldExit, channel binding hardening."""

from __future__ import annotations

import asyncio
import struct
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from pypsrp.host import PSHost
from pypsrp.powershell import PowerShell, RunspacePool
from winrm_helpers import PASSWORD, USER, in_thread, make_host, serve

from fleetcheck.errors import AuthRejected, ProtocolError
from fleetcheck.lab.host import FaultSpec
from fleetcheck.transports.psrp_client import envelope as wsman
from fleetcheck.transports.psrp_client.connection import Credentials, Deadline, NtHashCache, WSManConnection
from fleetcheck.transports.psrp_client.session import PsrpSession

F = "{http://schemas.microsoft.com/wbem/wsman/1/wsmanfault}"


def _conn(ep: object, scheme: str = "http", ca: str | None = None) -> WSManConnection:
    import ssl

    ctx = ssl.create_default_context(cafile=ca) if ca else None
    creds = Credentials("ntlm", USER, PASSWORD, NtHashCache().get(PASSWORD))
    return WSManConnection(ep.address, ep.port, scheme, creds, ctx)  # type: ignore[attr-defined]


def test_negative_operation_timeout_is_a_fault() -> None:
    async def go() -> None:
        async with serve(make_host()) as ep:
            conn = _conn(ep)
            env = wsman.build(
                wsman.ACTION_CREATE, to="x", session_id="uuid:1", max_envelope=153600, timeout_s=1
            )
            bad = wsman.Envelope(env.message_id, env.data.replace(b">PT1S<", b">PT-1S<"))
            with pytest.raises(ProtocolError) as err:
                await conn.post(bad, Deadline(10))
            conn.close()
            assert err.value.wsman_code == 2150858767
            assert "PT-1S" in err.value.message

    asyncio.run(go())


def test_unknown_shell_fault_has_fault_detail_and_provider_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    bodies: list[bytes] = []
    real = wsman.parse_fault

    def spy(data: bytes) -> wsman.Fault | None:
        bodies.append(data)
        return real(data)

    monkeypatch.setattr(wsman, "parse_fault", spy)

    async def go() -> None:
        async with serve(make_host()) as ep:
            session = PsrpSession(_conn(ep), Deadline(10))
            session.shell_id = "00000000-0000-0000-0000-000000000001"
            with pytest.raises(ProtocolError):
                await session._post(session._envelope(wsman.ACTION_RECEIVE, body=wsman.receive_body()))
            session.conn.close()

    asyncio.run(go())
    root = ET.fromstring(bodies[-1])
    detail = root.find(".//{http://www.w3.org/2003/05/soap-envelope}Detail")
    assert detail is not None
    assert detail[0].tag.endswith("FaultDetail") and detail[0].text is not None
    assert detail[0].text.endswith("/faultDetail/UnexpectedSelectors")
    provider = detail.find(f"{F}WSManFault/{F}Message/{F}ProviderFault")
    assert provider is not None and provider.get("provider") == "Shell provider"
    assert provider.find(f"{F}WSManFault") is not None


def test_server_messages_carry_a_bom_and_one_fragment_per_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[bytes]] = []
    real = wsman.received_streams

    def spy(root: ET.Element) -> tuple[list[bytes], bool]:
        chunks, done = real(root)
        seen.append(chunks)
        return chunks, done

    monkeypatch.setattr(wsman, "received_streams", spy)

    async def go() -> None:
        async with serve(make_host(os={"build_number": 20348, "ubr": 2340, "version": "10.0.20348"})) as ep:
            session = PsrpSession(_conn(ep), Deadline(10))
            await session.open()
            await session.close()
            session.conn.close()

    asyncio.run(go())
    chunks = [c for group in seen for c in group]
    assert chunks
    private = None
    for chunk in chunks:
        _oid, _fid, flags, length = struct.unpack_from(">QQBI", chunk)
        assert len(chunk) == 21 + length  # exactly one fragment in each rsp:Stream
        if flags & 1:
            assert chunk[21 + 40 : 21 + 43] == b"\xef\xbb\xbf"
            if struct.unpack_from("<I", chunk, 21 + 4)[0] == 0x00021009:
                private = chunk[21 + 43 :]
    assert private is not None
    from psrpcore import PSRemotingCrypto
    from psrpcore.types import deserialize

    data: Any = deserialize(ET.fromstring(private), PSRemotingCrypto())
    table = data.ApplicationPrivateData["PSVersionTable"]
    assert type(table).__name__ == "PSPrimitiveDictionary"
    assert str(table["BuildVersion"]) == "10.0.20348.2340"
    assert [str(v) for v in table["PSCompatibleVersions"]][-1] == "5.1.0.0"


def test_exit_lastexitcode_reaches_the_host_as_set_should_exit() -> None:
    async def go() -> tuple[int | None, list[str]]:
        async with serve(make_host()) as ep:

            def run() -> tuple[int | None, list[str]]:
                host = PSHost(None, None, False, "lab-test", None, None, "1.0")
                with RunspacePool(ep.wsman(), host=host) as pool:
                    ps = PowerShell(pool)
                    ps.add_script("cmd.exe /c hostname\nexit $LASTEXITCODE")
                    out = ps.invoke()
                    return host.rc, [str(o) for o in out]

            return await in_thread(run)

    rc, out = asyncio.run(go())
    assert out == ["SRV01"]
    assert rc == 0


@pytest.mark.parametrize(("strict", "rejected"), [(False, False), (True, True)])
def test_cbt_hardening_relaxed_by_default_strict_as_a_fault(
    strict: bool, rejected: bool, tmp_path: Path
) -> None:
    faults = [FaultSpec(kind="cbt_strict", on="auth")] if strict else []

    async def go() -> None:
        async with serve(make_host(faults=faults), https=True, tmp_path=tmp_path) as ep:

            def run() -> list[str]:
                with RunspacePool(ep.wsman(negotiate_send_cbt=False)) as pool:
                    ps = PowerShell(pool)
                    ps.add_script("hostname")
                    return [str(o) for o in ps.invoke()]

            if rejected:
                with pytest.raises(Exception, match=r"(?i)auth|401"):
                    await in_thread(run)
            else:
                assert await in_thread(run) == ["SRV01"]

    asyncio.run(go())


def test_wrong_channel_binding_is_rejected_even_when_relaxed(tmp_path: Path) -> None:
    async def go() -> None:
        host = make_host(faults=[FaultSpec(kind="cbt_mismatch", on="auth")])
        async with serve(host, https=True, tmp_path=tmp_path) as ep:
            session = PsrpSession(_conn(ep, "https", ep.ca_path), Deadline(10))
            with pytest.raises(AuthRejected):
                await session.open()
            session.conn.close()

    asyncio.run(go())


def test_create_honours_idle_timeout_and_get_turns_disconnected() -> None:
    """IdleTimeOut from Create; a Get shows MemoryUsed/ChildProcesses and, once idle, Disconnected."""
    bodies: list[bytes] = []

    async def go() -> None:
        async with serve(make_host()) as ep:
            session = PsrpSession(_conn(ep), Deadline(20))
            real_body = wsman.create_body
            monkey = pytest.MonkeyPatch()
            monkey.setattr(
                wsman,
                "create_body",
                lambda sid, b64: real_body(sid, b64).replace(
                    "<rsp:InputStreams>", "<rsp:IdleTimeOut>PT1.5S</rsp:IdleTimeOut><rsp:InputStreams>"
                ),
            )
            try:
                await session.open()
            finally:
                monkey.undo()
            for wait in (0.0, 2.5):
                await asyncio.sleep(wait)
                env = session._envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get")
                bodies.append(ET.tostring(await session._post(env)))
            await session.close()
            session.conn.close()

    asyncio.run(go())
    first, later = (ET.fromstring(b) for b in bodies)
    ns = "{http://schemas.microsoft.com/wbem/wsman/1/windows/shell}"
    assert first.findtext(f".//{ns}IdleTimeOut") == "PT1.500S"
    assert first.findtext(f".//{ns}State") == "Connected"
    assert first.findtext(f".//{ns}MemoryUsed", "").endswith("MB")
    assert first.findtext(f".//{ns}ChildProcesses") == "0"
    assert later.findtext(f".//{ns}State") == "Disconnected"
    assert later.findtext(f".//{ns}ShellInactivity") == "P0DT0H0M2S"


def test_error_records_carry_invocation_info_iteration_and_stack() -> None:
    async def go() -> object:
        async with serve(make_host()) as ep:
            from fleetcheck.transports.psrp_client.session import run_script

            result = await run_script(_conn(ep), "Get-NoSuchThing", {}, 20)
            return result.errors[0]

    record = asyncio.run(go())
    assert "Get-NoSuchThing" in str(record)
    assert record.InvocationInfo is not None  # type: ignore[attr-defined]
    assert record.InvocationInfo.Line == "Get-NoSuchThing"  # type: ignore[attr-defined]
    assert list(record.PipelineIterationInfo) == [0, 0]  # type: ignore[attr-defined]
    assert record.ScriptStackTrace.startswith("at <ScriptBlock>")  # type: ignore[attr-defined]
    assert record.Exception.Source == "System.Management.Automation"  # type: ignore[attr-defined]


def test_authentication_legs_get_the_same_latency_as_actions() -> None:
    """The NTLM handshake crosses the network too: every HTTP request is delayed alike."""
    host = make_host(faults=[FaultSpec(kind="latency", on="*", value=0.2)])

    async def go() -> float:
        async with serve(host) as ep:
            conn = _conn(ep)
            loop = asyncio.get_running_loop()
            start = loop.time()
            env = wsman.build(
                "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
                to="x",
                session_id="uuid:1",
                max_envelope=153600,
                timeout_s=5,
                shell_id="00000000-0000-0000-0000-000000000001",
            )
            with pytest.raises(ProtocolError):
                await conn.post(env, Deadline(10))
            conn.close()
            return loop.time() - start

    elapsed = asyncio.run(go())
    # 401 probe, negotiate leg, authenticate... then the Get itself: at least 3 delayed requests
    assert elapsed >= 3 * 0.2
