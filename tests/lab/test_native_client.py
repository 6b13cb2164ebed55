"""The native client's per-run caches against the lab: psrpcore serializes once, every host
still receives exactly the script and argument, each under its own pool and pipeline ids."""

from __future__ import annotations

import asyncio
import base64

import psrpcore
import pytest
from winrm_helpers import PASSWORD, USER, make_host, serve

from fleetcheck.lab.host import LabHost
from fleetcheck.transports.psrp_client.connection import Credentials, NtHashCache, WSManConnection
from fleetcheck.transports.psrp_client.payloads import PayloadCache, rewrite_ids, whole_messages
from fleetcheck.transports.psrp_client.session import PipelineResult, output_text, run_script


def test_nt_hash_matches_ms_nlmp_vector_and_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcheck.transports.psrp_client import connection

    calls: list[str] = []
    real = connection.nt_hash
    monkeypatch.setattr(connection, "nt_hash", lambda password: calls.append(password) or real(password))
    cache = NtHashCache()
    for _ in range(3):
        assert cache.get("Password") == "a4f49c406510bdcab6824ee7c30fd852"  # MS-NLMP 4.2.2.1.2
    assert calls == ["Password"]


async def _run_on(host: LabHost, cache: PayloadCache, *runs: tuple[str, dict[str, str]]) -> list[PipelineResult]:
    """Each (script, parameters) on `host`, one session each, all through one run's `cache`."""
    results = []
    async with serve(host) as ep:
        creds = Credentials("ntlm", USER, PASSWORD, NtHashCache().get(PASSWORD))
        for script, parameters in runs:
            conn = WSManConnection(ep.address, ep.port, "http", creds, None)
            results.append(await run_script(conn, script, parameters, 20, cache))
    return results


def test_bundle_serialized_once_and_every_host_gets_it_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[int] = []
    opens: list[int] = []
    real_start, real_open = psrpcore.ClientPowerShell.start, psrpcore.ClientRunspacePool.open
    monkeypatch.setattr(psrpcore.ClientPowerShell, "start", lambda self: starts.append(1) or real_start(self))
    monkeypatch.setattr(psrpcore.ClientRunspacePool, "open", lambda self: opens.append(1) or real_open(self))
    script = "# fleetcheck:bundle=v1 (not really)\nhostname\n" + "# padding\n" * 20000
    hosts = [make_host(f"srv{i:02d}") for i in range(3)]

    async def go() -> list[list[str]]:
        cache = PayloadCache()
        outs = []
        for host in hosts:
            first, _ = await _run_on(host, cache, ("hostname", {"ArgsJson": '{"x": 1}'}), (script, {"ArgsJson": '{"x": 2}'}))
            outs.append([output_text(o) for o in first.output])
        return outs

    outs = asyncio.run(go())
    assert outs == [["SRV00"], ["SRV01"], ["SRV02"]]
    assert len(starts) == 2 and len(opens) == 1  # two distinct scripts, one pool open, for six runs
    for host in hosts:
        got = [(r["script_length"], r["parameters"]["ArgsJson"]) for r in host.received_scripts]
        assert got == [(len("hostname"), '{"x": 1}'), (len(script), '{"x": 2}')]


def test_rewrite_ids_touches_only_message_headers() -> None:
    old, new = b"\x01" * 16, b"\x02" * 16
    message = b"\x00" * 8 + old + b"\x00" * 16 + b"<Obj>" + old + b"</Obj>"
    frag = (
        (1).to_bytes(8, "big") + (0).to_bytes(8, "big") + b"\x03" + len(message).to_bytes(4, "big") + message
    )
    out = rewrite_ids(frag, {old: new})
    assert out[21 + 8 : 21 + 24] == new
    assert out.endswith(b"<Obj>" + old + b"</Obj>")  # data that merely looks like an id stays


def test_cached_payloads_are_the_first_hosts_with_only_the_ids_changed() -> None:
    """Later hosts get the first host's base64 text with their own ids, and the bundle is on the
    wire once: psrpcore alone would repeat the script as the command's <ToString>."""
    script = "Write-Output 'x'\n" * 400
    cache = PayloadCache()
    sent: list[tuple[psrpcore.ClientRunspacePool, psrpcore.ClientPowerShell, list[str]]] = []
    for _ in range(2):
        pool = psrpcore.ClientRunspacePool()
        cache.open_payload(pool)
        pool.state = psrpcore.types.RunspacePoolState.Opened
        ps, payloads = cache.pipeline_payloads(pool, script, {"ArgsJson": "{}"}, 500_000)
        sent.append((pool, ps, payloads))
    (pool1, ps1, [first]), (pool2, ps2, [second]) = sent
    raw1, raw2 = base64.b64decode(first), base64.b64decode(second)
    assert raw1.count(b"Write-Output 'x'") == 400  # once, not twice
    ids = {pool1.runspace_pool_id.bytes_le: pool2.runspace_pool_id.bytes_le,
           ps1.pipeline_id.bytes_le: ps2.pipeline_id.bytes_le}
    assert raw2 == rewrite_ids(raw1, ids) != raw1
    assert ps2.state == psrpcore.types.PSInvocationState.Running
    # one HostInfo for the run: it is only serialized into the first host's CreatePipeline
    assert ps1.metadata.host is ps2.metadata.host


def test_an_opening_answer_is_read_by_psrpcore_once_per_server_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosts of one build answer the pool's opening (and the pipeline's end) with the same bytes
    but for the ids: psrpcore reads them for the first host; the others get their outcome. A host of another build
    (PowerShell 2.0, protocol 2.1) is read again, and gets its own capability."""
    seen: list[str] = []
    states: list[str] = []
    real = psrpcore.ClientRunspacePool.next_event

    def next_event(self: psrpcore.ClientRunspacePool) -> object:
        event = real(self)
        if isinstance(event, psrpcore.SessionCapabilityEvent):
            seen.append(str(event.protocol_version))
        if isinstance(event, psrpcore.PipelineStateEvent):
            states.append(event.state.name)
        return event

    monkeypatch.setattr(psrpcore.ClientRunspacePool, "next_event", next_event)
    hosts = [make_host(f"srv{i}") for i in range(3)] + [make_host("old", winrm={"protocol_version": "2.1"})]

    async def go() -> list[tuple[str, str]]:
        cache = PayloadCache()
        got = []
        for host in hosts:
            (result,) = await _run_on(host, cache, ("hostname", {}))
            got.append(("".join(output_text(o) for o in result.output), result.protocol_version))
        return got

    assert asyncio.run(go()) == [("SRV0", "2.3"), ("SRV1", "2.3"), ("SRV2", "2.3"), ("OLD", "2.1")]
    assert seen == ["2.3", "2.1"]
    assert states == ["Completed"]  # the same Completed message from every host: read once


def test_only_whole_messages_are_remembered() -> None:
    def fragment(flags: int, data: bytes) -> bytes:
        return (1).to_bytes(8, "big") + (0).to_bytes(8, "big") + bytes([flags]) + len(data).to_bytes(4, "big") + data

    assert whole_messages(fragment(3, b"x" * 50) + fragment(3, b"y" * 40))
    assert not whole_messages(fragment(1, b"x" * 50))  # a start with its end still to come
    assert not whole_messages(fragment(3, b"x" * 50) + fragment(2, b"y" * 40))  # an end of an earlier start
    assert not whole_messages(fragment(3, b"x" * 50)[:-1]) and not whole_messages(b"")
