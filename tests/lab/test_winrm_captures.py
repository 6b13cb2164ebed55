"""The lab's responses have the shape of real Windows Server responses.

Replays the requests of `../shared/winrm-captures/*.yml` (recorded by pypsrp against Windows
Server 2016) to the lab and compares each answer with the recorded one: the set of element
paths and attribute names, after dropping IDs and payloads. Skipped when the folder is absent.
"""

from __future__ import annotations

import base64
import re
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
import yaml
from pypsrp.powershell import RunspacePool
from winrm_helpers import PASSWORD, USER, Endpoint, in_thread, make_host, serve

CAPTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "winrm-captures"


_GUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_VARIABLE_ATTRS = {"Machine"}  # the computer name differs by nature


def _shape(xml_text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """(element path by namespace URI, sorted (attribute, value) with IDs normalised) per element."""
    shape: set[tuple[str, tuple[tuple[str, str], ...]]] = set()

    def walk(node: ET.Element, prefix: str) -> None:
        path = f"{prefix}/{node.tag}"
        # which stream a command writes to is content (cmd's `dir` vs an unknown command), not shape
        variable = _VARIABLE_ATTRS | ({"Name"} if node.tag.endswith("}Stream") and node.text else set())
        attrs = tuple(sorted((k, "*" if k in variable else _GUID.sub("<id>", v)) for k, v in node.attrib.items()))
        shape.add((path, attrs))
        for child in node:
            walk(child, path)

    walk(ET.fromstring(xml_text), "")
    return shape


def _action(xml_text: str) -> str:
    match = re.search(r"Action[^>]*>([^<]+)<", xml_text)
    assert match
    return match.group(1)


def _target(xml_text: str) -> str:
    match = re.search(r"<rsp:DesiredStream(?: CommandId=\"([^\"]+)\")?", xml_text)
    return f"{_action(xml_text)}:{match.group(1) if match else ''}"


def _message_types(xml_text: str) -> list[int]:
    """PSRP message types that start in this response's stdout streams."""
    types_seen = []
    for chunk in re.findall(r'<rsp:Stream Name="stdout"[^>]*>([^<]+)<', xml_text):
        data = base64.b64decode(chunk)
        while data:
            flags, length = data[16], struct.unpack(">I", data[17:21])[0]
            blob = data[21 : 21 + length]
            if flags & 1:
                types_seen.append(struct.unpack("<I", blob[4:8])[0])
            data = data[21 + length :]
    return types_seen


def _capture_files() -> list[Path]:
    return sorted(CAPTURES.glob("*.yml")) if CAPTURES.is_dir() else []


@pytest.mark.skipif(not _capture_files(), reason="../shared/winrm-captures is not available")
@pytest.mark.parametrize("capture", _capture_files(), ids=lambda p: p.stem)
async def test_lab_responses_match_real_windows_shape(capture: Path) -> None:
    messages = yaml.safe_load(capture.read_text(encoding="utf-8"))["messages"]

    def replay(ep: Endpoint) -> list[tuple[str, str, str, str]]:
        session = requests.Session()
        session.auth = (USER, PASSWORD)
        seen: set[str] = set()
        ids: dict[str, str] = {}  # recorded ShellId/CommandId -> the lab's
        pairs = []
        for message in messages:
            request, recorded = message["request"], message["response"]
            for old, new in ids.items():
                request = request.replace(old, new)
            key = _target(request)
            if "/Receive:" in key and key in seen:  # the lab answers a target's data in one Receive; a repeat would long-poll
                continue
            seen.add(key)
            response = session.post(
                ep.url, data=request.encode(), headers={"Content-Type": "application/soap+xml;charset=UTF-8"}, timeout=30
            )
            for pattern in (r'Selector Name="ShellId">([^<]+)<', r"CommandId>([^<]+)<"):
                rec, got = re.search(pattern, recorded), re.search(pattern, response.text)
                if rec and got:
                    ids[rec.group(1)] = got.group(1)
            message_id = re.search(r"MessageID>([^<]+)<", request)
            assert message_id
            pairs.append((_action(request), recorded, response.text, message_id.group(1)))
        return pairs

    host = make_host(winrm={"allow_unencrypted": True})
    async with serve(host) as ep:
        pairs = await in_thread(replay, ep)
    assert pairs
    for action, recorded, ours, message_id in pairs:
        assert f"<a:RelatesTo>{message_id}</a:RelatesTo>" in ours, action
        missing = _shape(recorded) - _shape(ours)
        extra = _shape(ours) - _shape(recorded)
        assert not missing and not extra, f"{action}: missing {sorted(missing)} extra {sorted(extra)}\n{ours[-600:]}"


@pytest.mark.skipif(not _capture_files(), reason="../shared/winrm-captures is not available")
async def test_pool_open_sends_the_same_psrp_messages_as_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcheck.lab import psrp_shell

    recorded = yaml.safe_load((CAPTURES / "rec_execute_ps.yml").read_text(encoding="utf-8"))["messages"]
    expected = [t for m in recorded if "<rsp:DesiredStream>" in m["request"] for t in _message_types(m["response"])]
    seen: list[str] = []
    original = psrp_shell.receive_response

    def recording(request: object, *args: object, **kwargs: object) -> bytes:
        body = original(request, *args, **kwargs)  # type: ignore[arg-type]
        seen.append(body.decode())
        return body

    def run(ep: Endpoint) -> None:
        pool = RunspacePool(ep.wsman())
        pool.open()
        pool.close()

    monkeypatch.setattr(psrp_shell, "receive_response", recording)
    async with serve(make_host()) as ep:
        await in_thread(run, ep)
    ours = [t for body in seen for t in _message_types(body)]
    assert expected == [0x00010002, 0x00021009, 0x00021005]  # SessionCapability, ApplicationPrivateData, RunspacePoolState
    assert ours == expected
