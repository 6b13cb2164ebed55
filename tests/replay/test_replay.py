"""The native client against real Windows: each fitting recorded conversation is replayed to it.

Expectations come from the recording itself, read here with the test's own fragment reassembly
and ElementTree (not through psrpcore's state machine the client uses): every output object's
text in order, every error record's message, and the final pipeline state.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
import replay_server as server
from pydantic import SecretStr
from replay_recordings import DATA, Conversation, load, messages, streams

from fleetcheck.errors import HostError
from fleetcheck.lab.tls import LabTLS
from fleetcheck.transports.base import ScriptOutput
from fleetcheck.transports.psrp_client.connection import Credentials, NtHashCache, WSManConnection
from fleetcheck.transports.psrp_client.payloads import PayloadCache
from fleetcheck.transports.psrp_client.session import PipelineResult, plain, run_script
from fleetcheck.transports.psrp_client.transport import NativePsrpTransport
from fleetcheck.transports.target import PsrpSettings, Target

PIPELINE_OUTPUT, ERROR_RECORD, PIPELINE_STATE = 0x00041004, 0x00041005, 0x00041006
STATES = {3: "Stopped", 4: "Completed", 5: "Failed"}

#: Conversations in tests/data/pypsrp-recordings that fit the client's sequence (SOURCE.md lists them).
EXPECTED_FITTING = 29


def _conversations() -> list[Conversation]:
    return [c for p in sorted(DATA.glob("*.yml")) for c in load(p) if c.why_not() is None]


FITTING = _conversations()


def _unescape(text: str) -> str:
    raw = re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)
    return raw.encode("utf-16", "surrogatepass").decode("utf-16")


_INTS = {"I16", "I32", "I64", "U16", "U32", "U64", "By", "SB"}


def _value(el: ET.Element) -> object:
    """CLIXML as plain data, read independently of psrpcore."""
    if el.tag == "Nil":
        return None
    if el.tag == "B":
        return (el.text or "").lower() == "true"
    if el.tag in _INTS:
        return int(el.text or "0")
    if el.tag in ("Db", "Sg", "D"):
        return float(el.text or "0")
    if el.tag == "Obj":
        for child in el:
            if child.tag == "DCT":
                return {_value(en.find("*[@N='Key']")): _value(en.find("*[@N='Value']")) for en in child}  # type: ignore[arg-type]
            if child.tag in ("LST", "IE", "STK", "QUE"):
                return [_value(c) for c in child]
        ts = el.find("ToString")
        if ts is not None:
            return _unescape(ts.text or "")
        for child in el:
            if child.tag not in ("TN", "TNRef", "Props", "MS"):
                return _value(child)
        return ""
    return _unescape(el.text or "")


def _error_message(el: ET.Element) -> str:
    for holder in ("MS", "Props"):
        for s in el.findall(f"{holder}/S"):
            if s.attrib.get("N") == "ErrorDetails_Message" and s.text:
                return _unescape(s.text)
    exc = next((o for o in el.findall("MS/Obj") if o.attrib.get("N") == "Exception"), None)
    if exc is not None:
        for s in exc.iter("S"):
            if s.attrib.get("N") == "Message" and s.text is not None:
                return _unescape(s.text)
    return ""


@dataclass
class Expected:
    output: list[object]
    errors: list[str]
    state: str
    receive_faults: int
    protocol: str


def expected(conv: Conversation) -> Expected:
    payloads = [p for ex in conv.by("Receive", pipeline=True) for p in streams(ex.response)]
    out, errs, state = [], [], ""
    for msg in messages(payloads):
        data = msg.data[3:] if msg.data.startswith(b"\xef\xbb\xbf") else msg.data
        if msg.msg_type == PIPELINE_OUTPUT:
            out.append(_value(ET.fromstring(data)) if data else None)
        elif msg.msg_type == ERROR_RECORD:
            errs.append(_error_message(ET.fromstring(data)))
        elif msg.msg_type == PIPELINE_STATE:
            m = re.search(rb'<I32 N="PipelineState">(\d+)</I32>', data)
            assert m is not None
            state = STATES[int(m.group(1))]
    faults = sum(1 for ex in conv.by("Receive", pipeline=True) if ex.fault)
    pool = b"".join(p for ex in conv.by("Receive", pipeline=False) for p in streams(ex.response))
    version = re.search(rb'<Version N="protocolversion">([0-9.]+)<', pool)
    return Expected(out, errs, state, faults, version.group(1).decode() if version else "")


async def _replay(
    conv: Conversation, auth: str, tmp_path: Path, cache: PayloadCache | None = None
) -> tuple[PipelineResult, server.Replay]:
    ssl_server = client_ctx = der = None
    if auth == "basic":
        tls = LabTLS()
        ssl_server, der = tls.server_context("127.0.0.1")
        client_ctx = ssl.create_default_context(cafile=str(tls.write_ca(tmp_path / "ca.pem")))
    async with server.serve(conv, auth=auth, ssl_ctx=ssl_server, cert_der=der) as ep:
        nt = NtHashCache().get(server.PASSWORD) if auth == "ntlm" else None
        creds = Credentials("basic" if auth == "basic" else "ntlm", server.USER, server.PASSWORD, nt)
        conn = WSManConnection(ep.address, ep.port, ep.scheme, creds, client_ctx)
        result = await run_script(conn, "$input | Out-Null", {"ArgsJson": "{}"}, timeout=30, cache=cache)
        return result, ep.replay


def test_every_fitting_recording_is_replayed() -> None:
    assert len(FITTING) == EXPECTED_FITTING
    versions = set()
    for conv in FITTING:
        m = re.search(
            rb'<Version N="protocolversion">([0-9.]+)<', b"".join(streams(conv.exchanges[1].response))
        )
        if m:
            versions.add(m.group(1).decode())
    assert {"2.1", "2.2", "2.3"} <= versions


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
@pytest.mark.parametrize("conv", FITTING, ids=[c.name for c in FITTING])
def test_replay(conv: Conversation, auth: str, tmp_path: Path) -> None:
    """Basic over HTTPS, and NTLM with message encryption over HTTP (the lab's acceptor)."""
    want = expected(conv)
    got, replay = asyncio.run(_replay(conv, auth, tmp_path))
    assert [plain(o) for o in got.output] == want.output
    assert [str(e) for e in got.errors] == want.errors
    assert got.state.name == want.state
    # every recorded pipeline Receive was asked for (timeouts ridden out), then the shell deleted
    assert replay.requests.count(("Receive", True)) == len(conv.by("Receive", pipeline=True))
    assert replay.requests[-1] == ("Delete", False)
    assert got.protocol_version == want.protocol


def test_one_run_over_every_recorded_server_keeps_each_outcome(tmp_path: Path) -> None:
    """A run shares one cache across its hosts: what psrpcore read from one server (its opening
    answer, a Completed message) must never stand in for another's answer, a Failed pipeline
    after many Completed ones included. Every recording twice, in order, through one cache."""
    cache = PayloadCache()
    for conv in [*FITTING, *FITTING]:
        want = expected(conv)
        got, _ = asyncio.run(_replay(conv, "ntlm", tmp_path, cache))
        assert ([plain(o) for o in got.output], got.state.name, got.protocol_version) == (
            want.output, want.state, want.protocol
        ), conv.name
        assert [str(e) for e in got.errors] == want.errors, conv.name


def test_powershell_2_debug_records_are_the_only_loss(tmp_path: Path) -> None:
    """psrpcore 0.3.1 cannot build PowerShell 2.0's DebugRecords (no SerializeExtent); only they are lost."""
    conv = next(c for c in FITTING if c.name == "test_psrp_run_protocol_version_2.1#0")
    got, _ = asyncio.run(_replay(conv, "basic", tmp_path))
    debug = [
        m
        for m in messages([p for ex in conv.by("Receive", pipeline=True) for p in streams(ex.response)])
        if m.msg_type == 0x00041007
    ]
    assert len(got.unreadable) == len(debug) > 0
    assert all("SerializeExtent" in text for text in got.unreadable)


def test_large_output_split_across_receives() -> None:
    conv = next(c for c in FITTING if c.name == "test_client_fetch_file#0")
    assert len(conv.by("Receive", pipeline=True)) >= 3
    assert sum(len(str(t)) for t in expected(conv).output) > 300_000


def test_recorded_failure_and_timeouts_are_covered() -> None:
    states = {c.name: expected(c) for c in FITTING}
    assert states["test_psrp_error_failed#0"].state == "Failed"
    assert states["test_psrp_long_running_cmdlet#0"].receive_faults == 2
    assert any(e.errors for e in states.values())


def test_a_wrong_relates_to_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The replay server is not lenient by accident: a reply to another request fails the run."""
    conv = next(c for c in FITTING if c.name == "test_psrp_no_profile#0")
    real = server.Replay.answer

    def wrong(self: server.Replay, request: str) -> tuple[int, str]:
        status, text = real(self, request)
        return status, re.sub(r"(<a:RelatesTo>)[^<]*", r"\1uuid:00000000-0000-0000-0000-0000000000FF", text)

    monkeypatch.setattr(server.Replay, "answer", wrong)
    with pytest.raises(HostError, match="relates to"):
        asyncio.run(_replay(conv, "basic", tmp_path))


def _target(ep: server.ReplayEndpoint, auth: str, ca_path: Path | None) -> Target:
    settings = PsrpSettings(
        port=ep.port,
        username=server.USER,
        password=SecretStr(server.PASSWORD),
        scheme="https" if auth == "basic" else "http",
        auth="basic" if auth == "basic" else "negotiate",
        ca_path=ca_path,
        client="native",
    )
    return Target(name="replay", address=ep.address, settings=settings)


@pytest.mark.parametrize("conv", FITTING, ids=[c.name for c in FITTING])
def test_replay_through_the_transport(conv: Conversation, tmp_path: Path) -> None:
    """The same recordings through `psrp_client: native` as the runner calls it (ScriptOutput)."""
    want = expected(conv)
    auth = "ntlm" if len(conv.name) % 2 else "basic"  # both paths, spread over the recordings

    async def go() -> ScriptOutput:
        ssl_server = der = None
        ca = None
        if auth == "basic":
            tls = LabTLS()
            ssl_server, der = tls.server_context("127.0.0.1")
            ca = tls.write_ca(tmp_path / "ca.pem")
        async with server.serve(conv, auth=auth, ssl_ctx=ssl_server, cert_der=der) as ep:
            transport = NativePsrpTransport()
            return await transport.run(_target(ep, auth, ca), "$input | Out-Null", "{}", timeout=30)

    out = asyncio.run(go())
    assert out.failed == (want.state == "Failed")
    assert len(out.errors) == len(want.errors) + (1 if want.state == "Failed" else 0)
    if all(isinstance(o, str) for o in want.output):
        assert out.stdout == "\n".join(str(o) for o in want.output)
