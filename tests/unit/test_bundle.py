"""The bundle: one static script per set of probes, every parameter only in the JSON argument,
and a strict, bounded parser for what hosts print."""

from __future__ import annotations

import json
import re

import pytest

from fleetcheck.facts import FACTS_SCHEMA
from fleetcheck.probes.bundle import (
    BUNDLE_MARKER,
    PROBES_DECLARATION,
    BundleArgsError,
    BundleError,
    FactsParseError,
    build_bundle,
    declared_probes,
    is_bundle,
    parse_facts,
    read_args,
)
from fleetcheck.probes.schema import PROBES

HOSTILE = [
    "x'; Remove-Item C:\\ -Recurse; '",
    'x"; $(Stop-Computer -Force); "',
    "$(Invoke-Expression 'calc')",
    "a;b|c&d`e",
    "line1\nline2\r\nRemove-Item *",
    "@' here '@",
    "${env:ComputerName}",
    "caf\u00e9 \u2603",
]


def test_script_carries_marker_and_param_block() -> None:
    b = build_bundle({"services": {}})
    assert b.script.startswith(BUNDLE_MARKER + "\n")
    assert "param([string]$ArgsJson)" in b.script
    assert is_bundle(b.script)
    assert not is_bundle("Get-Service")


def test_script_is_static_for_different_parameter_values() -> None:
    a = build_bundle({"services": {"names": ["VSS"]}, "acl": {"paths": ["C:\\x"]}})
    b = build_bundle({"acl": {"paths": ["D:\\y", "E:\\z"]}, "services": {"names": ["RpcSs", "SENS", "obengine"]}})
    assert a.script == b.script
    assert a.script is b.script  # cached text
    assert a.args_json != b.args_json
    assert a.probe_ids == b.probe_ids == ("acl", "services")


def test_script_differs_only_by_the_probe_set() -> None:
    assert build_bundle({"os": {}}).script != build_bundle({"os": {}, "dotnet": {}}).script
    assert "function Get-FcDotnet" not in build_bundle({"os": {}}).script


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_reach_only_the_json_argument(value: str) -> None:
    b = build_bundle(
        {
            "services": {"names": [value]},
            "acl": {"paths": [value]},
            "scheduled_tasks": {"task_path": value},
            "connectivity": {"endpoints": [{"host": value[:200], "port": 443}]},
            "events": {"queries": [{"log": value, "provider": value}]},
            "features": {"names": [value]},
        }
    )
    baseline = build_bundle({k: {} for k in b.probe_ids})
    assert b.script == baseline.script  # nothing of the value entered the script
    assert value not in b.script
    args = json.loads(b.args_json)
    assert args["probes"]["services"]["names"] == [value]
    assert args["probes"]["acl"]["paths"] == [value]
    assert b.args_json.isascii()  # ensure_ascii: no byte of the value can confuse an encoding


def test_args_json_holds_validated_defaults() -> None:
    args = json.loads(build_bundle({"services": None, "connectivity": {"endpoints": [{"host": "a.example"}]}}).args_json)
    assert args["probes"]["services"]["names"][:3] == ["RpcSs", "EventSystem", "SENS"]
    assert args["probes"]["connectivity"] == {"endpoints": [{"host": "a.example", "port": 443}], "timeout_ms": 3000}


def test_unknown_probe_is_a_clear_error() -> None:
    with pytest.raises(BundleError, match=r"unknown probe id.*'nope'"):
        build_bundle({"nope": {}})


@pytest.mark.parametrize(
    ("req", "where"),
    [
        ({"connectivity": {"endpoints": [{"host": "x", "port": 70000}]}}, "connectivity.*endpoints.0.port"),
        ({"services": {"names": [""]}}, "services"),
        ({"services": {"names": ["x"] * 65}}, "services.*names"),
        ({"events": {"queries": [{"log": "System", "max": 100000}]}}, "events.*max"),
        ({"custom": {"scripts": [{"id": "bad id!", "script": "1"}]}}, "custom.*id"),
        ({"os": {"surprise": 1}}, "os.*surprise"),
    ],
)
def test_invalid_parameters_name_probe_and_field(req: dict, where: str) -> None:
    with pytest.raises(BundleError, match=where):
        build_bundle(req)


# --------------------------------------------------------------------------- parse_facts
def _doc(**probes: object) -> str:
    return json.dumps({"schema": FACTS_SCHEMA, "host": {"computer_name": "SRV01"}, "probes": probes})


def test_parse_facts_round_trip() -> None:
    text = _doc(dotnet={"data": {"release": 528049, "version": "4.8"}, "duration_ms": 4})
    doc = parse_facts(text)
    assert doc.host.computer_name == "SRV01"
    assert doc.probes["dotnet"].data == {"release": 528049, "version": "4.8"}
    assert doc.probes["dotnet"].duration_ms == 4
    again = parse_facts(doc.model_dump_json(by_alias=True))
    assert again == doc


def test_parse_facts_tolerates_stray_lines_and_bom() -> None:
    text = "\ufeffWARNING: something\r\n" + _doc(os={"error": {"type": "X", "message": "m"}}) + "\r\n"
    assert parse_facts(text).probes["os"].error.type == "X"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "printed nothing"),
        ("not json at all", "not JSON"),
        ('{"schema": "fleetcheck/facts/v1", "probes": {"x": [1, 2,', "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"schema": "other/v9", "probes": {}}', "unsupported facts schema"),
        ('{"probes": {}}', "unsupported facts schema None"),
        ('{"schema": "fleetcheck/facts/v1", "probes": {"os": {"duration_ms": "slow"}}}', "probes.os.duration_ms"),
    ],
)
def test_parse_facts_rejects_bad_documents(text: str, match: str) -> None:
    with pytest.raises(FactsParseError, match=match):
        parse_facts(text)


def test_parse_facts_is_bounded() -> None:
    text = _doc(custom={"data": {"results": {"x": {"output": "A" * 5000}}}})
    with pytest.raises(FactsParseError, match="above the 1000-byte limit"):
        parse_facts(text, max_bytes=1000)
    assert parse_facts(text, max_bytes=10_000).probes["custom"].data is not None


def test_bad_probe_data_becomes_that_probes_error_only() -> None:
    text = _doc(
        dotnet={"data": {"release": "four-point-eight"}},
        os={"data": {"caption": "x", "build_number": 17763}},
        mars={},
    )
    doc = parse_facts(text)
    assert doc.probes["dotnet"].data is None
    assert doc.probes["dotnet"].error is not None and doc.probes["dotnet"].error.type == "SchemaError"
    assert "release" in doc.probes["dotnet"].error.message
    assert doc.probes["os"].error is None and doc.probes["os"].data["build_number"] == 17763
    assert doc.probes["mars"].error is not None and doc.probes["mars"].error.type == "SchemaError"


def test_unsupported_envelope_is_readable() -> None:
    text = (
        '{"schema":"fleetcheck/facts/v1","unsupported":"PowerShell 2.0","host":{"computer_name":"OLD",'
        '"ps_version":"2.0","ps_edition":"Desktop","culture":"en-US","ui_culture":"","collected_at":"x"},"probes":{}}'
    )
    doc = parse_facts(text)
    assert doc.unsupported == "PowerShell 2.0"
    assert doc.probes == {}


def test_every_probe_has_a_spec_with_models() -> None:
    for pid, spec in PROBES.items():
        assert spec.id == pid
        spec.params()  # defaults are valid
        assert spec.function.startswith("Get-Fc")


# --- the declared contract (what a receiver without PowerShell reads) ---------------------------


def test_script_declares_the_probes_its_dispatch_table_holds() -> None:
    b = build_bundle({"services": {}, "os": {}, "events": {}})
    table = re.findall(r"^\s*'([a-z_]+)' = 'Get-Fc\w+'$", b.script, re.M)
    assert declared_probes(b.script) == b.probe_ids == tuple(table)
    assert b.script.splitlines()[1] == PROBES_DECLARATION + ",".join(b.probe_ids)


@pytest.mark.parametrize("script", ["Get-Service", "", BUNDLE_MARKER, BUNDLE_MARKER + "\nWrite-Output 1\n"])
def test_scripts_without_a_declaration_declare_nothing(script: str) -> None:
    assert declared_probes(script) == ()


def test_read_args_is_the_inverse_of_build_bundle() -> None:
    requests = {"services": {"names": ["VSS"]}, "acl": {"paths": ["C:\\x"]}, "os": None}
    b = build_bundle(requests)
    args = read_args(b.args_json)
    assert set(args) == set(b.probe_ids)
    assert args["services"]["names"] == ["VSS"] and args["acl"]["paths"] == ["C:\\x"]


@pytest.mark.parametrize("bad", ["{not json", "[]", '{"probes": []}', '{"probes": {"os": 3}}', "{}"])
def test_read_args_refuses_what_the_script_could_not_bind(bad: str) -> None:
    with pytest.raises(BundleArgsError, match="ArgsJson"):
        read_args(bad)
