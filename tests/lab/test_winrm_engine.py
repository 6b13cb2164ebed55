"""The lab engine, the fault picker, and the sans-IO pieces (wsman, encryption, http, render)."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import types
from typing import Any

import pytest
import spnego
from winrm_helpers import PASSWORD, USER, make_host

from fleetcheck.lab import encryption
from fleetcheck.lab.auth import CREDENTIAL_FILES, ConnectionAuth, find_user
from fleetcheck.lab.cmdline import parse_powershell_args, split_command_line
from fleetcheck.lab.engine import (
    RECEIVED_SCRIPTS_KEPT,
    LabErrorRecord,
    PSVersionValue,
    ScriptRequest,
    run_script,
)
from fleetcheck.lab.faults import pick_fault
from fleetcheck.lab.host import FaultSpec, LabHost
from fleetcheck.lab.http import HttpError, read_request
from fleetcheck.lab.machine import LabUser
from fleetcheck.lab.render import clixml_errors, console_text
from fleetcheck.lab.wsman import WSManFault, parse_duration, parse_request


class Sink:
    def __init__(self) -> None:
        self.outputs: list[Any] = []
        self.errors: list[LabErrorRecord] = []

    def write_output(self, value: Any) -> None:
        self.outputs.append(value)

    def write_error(self, record: LabErrorRecord) -> None:
        self.errors.append(record)


async def _run(host: LabHost, script: str, **params: Any) -> tuple[Sink, Any]:
    sink = Sink()
    outcome = await run_script(host, ScriptRequest(script, params, "psrp", USER), sink)
    return sink, outcome


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("hostname", "SRV01"),
        ("  whoami ; ", "srv01\\fleetcheck"),
        ("Write-Output 'a ''quoted'' word'", "a 'quoted' word"),
        ('echo "plain text"', "plain text"),
        ("echo bare", "bare"),
        ("# comment\n$PSVersionTable.PSVersion.ToString()\n", "5.1.17763.1852"),
    ],
)
async def test_generic_commands(script: str, expected: str) -> None:
    sink, outcome = await _run(make_host(), script)
    assert sink.outputs == [expected] and outcome.terminating is None and outcome.exit_code == 0


async def test_psversion_is_a_version_value() -> None:
    sink, _ = await _run(make_host(), "$PSVersionTable.PSVersion")
    assert sink.outputs == [PSVersionValue("5.1.17763.1852")]
    assert "5      1      17763  1852" in console_text(sink.outputs)


async def test_whoami_of_a_domain_account() -> None:
    host = make_host(users=[LabUser(name="svc-fleet", password="x", domain="CONTOSO")])
    sink, _ = await _run(host, "whoami")
    # the principal given to the engine is the bare user name the client authenticated with
    assert sink.outputs == ["srv01\\fleetcheck"]
    sink2 = Sink()
    await run_script(host, ScriptRequest("whoami", {}, "psrp", "svc-fleet"), sink2)
    assert sink2.outputs == ["contoso\\svc-fleet"]


@pytest.mark.parametrize("script", ["Get-ChildItem C:\\", "Write-Output $env:SECRET", "echo $(rm -r /)"])
async def test_unknown_scripts_get_command_not_found(script: str) -> None:
    sink, outcome = await _run(make_host(), script)
    [record] = sink.errors
    assert record.fully_qualified_error_id == "CommandNotFoundException"
    assert record.category == "ObjectNotFound"
    assert record.message.startswith(f"The term '{script.split()[0]}' is not recognized as the name of a cmdlet")
    assert outcome.exit_code == 1 and sink.outputs == []


async def test_received_scripts_are_bounded() -> None:
    host = make_host()
    for index in range(RECEIVED_SCRIPTS_KEPT + 5):
        await _run(host, f"echo n{index}", ArgsJson="{}")
    assert len(host.received_scripts) == RECEIVED_SCRIPTS_KEPT
    assert host.received_scripts[-1]["script"] == f"echo n{RECEIVED_SCRIPTS_KEPT + 4}"


async def test_bundle_goes_to_simprobes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def answer_bundle(host: LabHost, script: str, args_json: str) -> str:
        calls.append((script, args_json))
        return '{"schema": "fleetcheck/facts/v1"}'

    monkeypatch.setitem(sys.modules, "fleetcheck.lab.simprobes", types.SimpleNamespace(answer_bundle=answer_bundle))
    sink, outcome = await _run(make_host(), "# fleetcheck:bundle=v1\nparam([string]$ArgsJson)", ArgsJson='{"probes": {}}')
    assert sink.outputs == ['{"schema": "fleetcheck/facts/v1"}'] and outcome.terminating is None
    assert calls == [("# fleetcheck:bundle=v1\nparam([string]$ArgsJson)", '{"probes": {}}')]


async def test_bundle_with_unusable_args_is_a_terminating_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer_bundle(host: LabHost, script: str, args_json: str) -> str:
        raise ValueError("Cannot bind the ArgsJson argument")

    monkeypatch.setitem(sys.modules, "fleetcheck.lab.simprobes", types.SimpleNamespace(answer_bundle=answer_bundle))
    _, outcome = await _run(make_host(), "# fleetcheck:bundle=v1\n", ArgsJson="nope")
    assert outcome.terminating is not None and "ArgsJson" in outcome.terminating.message


async def test_engine_faults() -> None:
    host = make_host(
        faults=[
            FaultSpec(kind="bad_json", on="script", nth=1),
            FaultSpec(kind="oversized_output", on="script", nth=2, value=10_240),
            FaultSpec(kind="probe_throws", on="script", nth=3),
        ]
    )
    sink, _ = await _run(host, "hostname")
    with pytest.raises(json.JSONDecodeError):
        json.loads(sink.outputs[0])
    sink, _ = await _run(host, "hostname")
    assert sum(len(v) for v in sink.outputs) >= 10_000
    sink, outcome = await _run(host, "hostname")
    assert outcome.terminating is not None and sink.outputs == []
    sink, outcome = await _run(host, "hostname")
    assert sink.outputs == ["SRV01"]


async def test_hang_fault_never_finishes() -> None:
    host = make_host(faults=[FaultSpec(kind="hang", on="script")])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(_run(host, "hostname"), 0.2)


def test_pick_fault_nth_probability_and_scope() -> None:
    host = make_host(faults=[FaultSpec(kind="http500", on="Receive", nth=3), FaultSpec(kind="latency", on="*", probability=0.5, value=1)])
    host.rng = random.Random(7)
    fired = [pick_fault(host, "Receive", ("http500",)) is not None for _ in range(5)]
    assert fired == [False, False, True, False, False]
    assert pick_fault(host, "Create", ("http500",)) is None
    hits = sum(pick_fault(host, "Send", ("latency",)) is not None for _ in range(400))
    assert 150 < hits < 250


def test_wsman_parse_is_namespace_aware() -> None:
    # pywinrm-style prefixes (env:, a:, w:) instead of pypsrp's
    xml = (
        b'<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"'
        b' xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><env:Header>'
        b"<a:Action>http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive</a:Action>"
        b"<a:MessageID>uuid:ABC</a:MessageID><w:OperationTimeout>PT1M30.5S</w:OperationTimeout>"
        b"<w:MaxEnvelopeSize>153600</w:MaxEnvelopeSize><w:ResourceURI>http://x/cmd</w:ResourceURI>"
        b'<w:SelectorSet><w:Selector Name="ShellId">S1</w:Selector></w:SelectorSet>'
        b'<w:OptionSet><w:Option Name="WINRS_CODEPAGE">65001</w:Option></w:OptionSet></env:Header><env:Body/></env:Envelope>'
    )
    req = parse_request(xml)
    assert (req.verb, req.message_id, req.operation_timeout, req.max_envelope_size) == ("Receive", "uuid:ABC", 90.5, 153600)
    assert req.selectors == {"ShellId": "S1"} and req.options == {"WINRS_CODEPAGE": "65001"}
    assert parse_duration("PT20S", 0) == 20 and parse_duration("bogus", 7) == 7
    with pytest.raises(WSManFault):
        parse_request(b"<not-xml")


def _ntlm_pair() -> tuple[Any, Any]:
    host = make_host()
    auth = ConnectionAuth(host.machine, None, basic_allowed=False)
    client = spnego.client(USER, PASSWORD, protocol="ntlm")
    step = auth.step("Negotiate " + __import__("base64").b64encode(client.step()).decode())
    assert step.outcome == "challenge" and step.token
    token = client.step(__import__("base64").b64decode(step.token))
    assert token is not None
    done = auth.step("Negotiate " + __import__("base64").b64encode(token).decode())
    assert done.outcome == "ok" and done.principal == USER
    return client, auth.context


def test_encryption_round_trip_and_tamper() -> None:
    client, server = _ntlm_pair()
    body = encryption.wrap(server, b"<s:Envelope/>")
    assert body.startswith(b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n")
    assert b"Length=13\r\n" in body and body.endswith(b"--Encrypted Boundary--\r\n")
    wrapped = client.wrap_winrm(b"hello world")
    request = encryption.frame(wrapped.header, wrapped.data, 11)
    assert encryption.unwrap(server, request) == b"hello world"
    with pytest.raises(encryption.EncryptionError):
        encryption.unwrap(server, request.replace(b"Length=11", b"Length=12"))


def test_basic_and_principal_checks() -> None:
    host = make_host(users=[LabUser(name="ops", password="pw", domain="CONTOSO")])
    import base64

    auth = ConnectionAuth(host.machine, None, basic_allowed=True)
    assert auth.step("Basic " + base64.b64encode(b"CONTOSO\\ops:pw").decode()).outcome == "ok"
    assert auth.step("Basic " + base64.b64encode(b"ops:wrong").decode()).outcome == "reject"
    assert auth.step("Basic !!!").outcome == "reject"
    assert ConnectionAuth(host.machine, None, basic_allowed=False).step("Basic " + base64.b64encode(b"ops:pw").decode()).outcome == "reject"
    assert find_user(host.machine, "OTHERDOM\\ops") is None
    assert find_user(host.machine, "ops@contoso.example") is not None
    # the smbpasswd file holds hashes, never the password
    path = CREDENTIAL_FILES.path_for(host.machine.users)
    with open(path, encoding="utf-8") as handle:
        assert "pw" not in handle.read().split(":")


async def test_http_request_parsing_limits() -> None:
    def reader_for(data: bytes) -> asyncio.StreamReader:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return reader

    req = await read_request(reader_for(b"POST /wsman HTTP/1.1\r\nContent-Length: 3\r\nX-A: 1\r\nX-A: 2\r\n\r\nabc"))
    assert req is not None and (req.body, req.headers["x-a"], req.keep_alive) == (b"abc", "1, 2", True)
    assert await read_request(reader_for(b"")) is None
    for bad in (b"POST /wsman HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"GARBAGE\r\n\r\n", b"POST /wsman HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc"):
        with pytest.raises(HttpError):
            await read_request(reader_for(bad))


def test_command_line_parsing() -> None:
    assert split_command_line('powershell -Command "a b" c') == ["powershell", "-Command", "a b", "c"]
    import base64

    enc = base64.b64encode("hostname".encode("utf-16-le")).decode()
    assert parse_powershell_args(["-NoProfile", "-ExecutionPolicy", "Bypass", "-enc", enc]).script == "hostname"
    assert parse_powershell_args(["-Command", "-"]).from_stdin
    assert parse_powershell_args(["-EncodedCommand", "***"]).error


def test_clixml_error_format() -> None:
    text = clixml_errors(["a < b\r\nline2"])
    assert text.startswith("#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\">")
    assert '<S S="Error">a &lt; b_x000D__x000A_</S><S S="Error">line2_x000D__x000A_</S></Objs>' in text


async def test_listener_is_loopback_only_and_stop_drops_connections() -> None:
    from fleetcheck.lab.hostserver import start_winrm_listener, stop_listener

    host = make_host()
    with pytest.raises(ValueError):
        await start_winrm_listener(host, "192.0.2.10", 0)
    server = await start_winrm_listener(host, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /wsman HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ") and b"WWW-Authenticate: Negotiate\r\n" in head
    assert b"Basic" not in head  # plain HTTP: no Basic offer (AllowUnencrypted=false)
    await stop_listener(server)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_ansible_raw_wrapper_is_transparent() -> None:
    # what Ansible's powershell shell plugin wraps around a `raw` command
    script = "Set-StrictMode -Version Latest\nhostname\nIf (-not $?) { If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) { exit $LASTEXITCODE } Else { exit 1 } }"
    sink, outcome = await _run(make_host(), script)
    assert sink.outputs == ["SRV01"] and outcome.exit_code == 0
    sink, _ = await _run(make_host(), script.replace("hostname", "Get-Nope -x"))
    assert sink.errors[0].target == "Get-Nope"


async def test_star_latency_is_not_applied_again_by_the_engine() -> None:
    import time

    star = make_host(faults=[FaultSpec(kind="latency", value=0.5)])
    started = time.monotonic()
    await _run(star, "hostname")
    assert time.monotonic() - started < 0.4  # the request layer already delays every request
    scoped = make_host(faults=[FaultSpec(kind="latency", on="script", value=0.5)])
    started = time.monotonic()
    await _run(scoped, "hostname")
    assert time.monotonic() - started >= 0.5


async def test_slow_output_computes_the_answer_during_the_run_time_and_writes_it_at_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow script's answer is worked out halfway through its run time, not in the burst of
    sessions that start with it; its output still arrives `slow_output` seconds after the start."""
    loop = asyncio.get_running_loop()
    answered: list[float] = []

    def answer_bundle(host: LabHost, script: str, args_json: str) -> str:
        answered.append(loop.time())
        return "{}"

    class TimedSink(Sink):
        def __init__(self) -> None:
            super().__init__()
            self.at: list[float] = []

        def write_output(self, value: Any) -> None:
            self.at.append(loop.time())
            super().write_output(value)

    monkeypatch.setitem(sys.modules, "fleetcheck.lab.simprobes", types.SimpleNamespace(answer_bundle=answer_bundle))
    host = make_host(faults=[FaultSpec(kind="slow_output", on="script", value=0.4)])
    sink = TimedSink()
    started = loop.time()
    await run_script(host, ScriptRequest("# fleetcheck:bundle=v1\n", {"ArgsJson": "{}"}, "psrp", USER), sink)
    assert sink.outputs == ["{}"]
    assert 0.15 <= answered[0] - started < 0.35
    assert sink.at[0] - started >= 0.4
