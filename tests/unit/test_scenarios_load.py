"""The scenario library and the simulated probes: every scenario loads and answers a valid facts
document; bad machine YAML gives an error naming the file, the field and the line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.lab.host import FaultSpec, LabHost
from fleetcheck.lab.machine import MachineState, MachineStateError, load_machine
from fleetcheck.lab.probefacts import parse_sddl
from fleetcheck.lab.probetext import render_vss_writers
from fleetcheck.lab.scenarios import (
    list_scenarios,
    load_scenario,
    load_scenario_file,
    merge_machine,
    scenario_meta,
)
from fleetcheck.lab.simprobes import BundleArgsError, answer_bundle
from fleetcheck.probes.bundle import build_bundle, parse_facts
from fleetcheck.probes.schema import PROBES

ISSUE_NAMES = {
    "healthy-2019", "healthy-2022-nl", "healthy-2022-ko", "legacy-ps2", "wsb-missing", "wsb-cmdlets-broken",
    "wsb-last-job-failed", "svi-acl-missing", "services-misconfigured", "mars-missing", "mars-outdated",
    "mars-stopped", "no-connectivity", "scratch-low", "av-no-exclusions", "updates-stale", "clock-skew",
    "dotnet-old", "dotnet-452", "server-core", "azure-vm", "schedule-broken", "vss-writer-failed",
    "vss-timeout-events", "shadow-storage-full", "efi-locked",
}  # fmt: skip

FULL: dict[str, Any] = {pid: {} for pid in PROBES} | {
    "connectivity": {"endpoints": [{"host": "login.microsoftonline.com"}, {"host": "www.msftncsi.com", "port": 80}]},
    "events": {"queries": [{"log": "Application", "provider": "VSS", "ids": [8229]},
                           {"log": "System", "provider": "volsnap", "ids": [24, 25]},
                           {"log": "Microsoft-Windows-Backup", "ids": [517]}]},
    "custom": {"scripts": [{"id": "my.check", "script": "@{a=1} | ConvertTo-Json"}]},
}  # fmt: skip


def answer(
    machine: MachineState, requests: dict[str, Any] | None = None, faults: list[FaultSpec] | None = None
) -> dict[str, Any]:
    b = build_bundle(requests or FULL)
    host = LabHost("h", machine, faults=faults or [])
    out = answer_bundle(host, b.script, b.args_json)
    parse_facts(out)  # validates envelope and each probe's data
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_library_has_exactly_the_issue_scenarios() -> None:
    assert set(list_scenarios()) == ISSUE_NAMES


@pytest.mark.parametrize("name", sorted(ISSUE_NAMES))
def test_scenario_loads_and_answers_valid_facts(name: str) -> None:
    machine = load_scenario(name)
    doc = answer(machine)
    meta = scenario_meta(name)
    assert meta["description"]
    if name == "legacy-ps2":
        assert doc["unsupported"] == "PowerShell 2.0" and doc["probes"] == {}
        return
    assert set(doc["probes"]) == set(PROBES)
    errors = {pid: o["error"] for pid, o in doc["probes"].items() if o.get("error")}
    assert errors == {}
    assert doc["host"]["computer_name"] == machine.hostname.upper()
    assert doc["host"]["culture"] == machine.locale.culture


def test_load_scenario_returns_independent_copies() -> None:
    a = load_scenario("healthy-2019")
    a.services["VSS"].start_mode = "Disabled"
    assert load_scenario("healthy-2019").services["VSS"].start_mode == "Manual"


def test_overlays_change_only_what_they_break() -> None:
    healthy = load_scenario("healthy-2019").model_dump()
    broken = load_scenario("mars-stopped").model_dump()
    diff = {k for k in healthy if healthy[k] != broken[k]}
    assert diff == {"services"}
    assert {k for k in healthy["services"] if healthy["services"][k] != broken["services"][k]} == {"obengine"}


def test_null_deletes_only_inside_keyed_collections() -> None:
    base = MachineState().model_dump(mode="json")
    merged = merge_machine(base, {"services": {"obengine": None}, "wsb": {"last_job": None}})
    assert "obengine" not in merged["services"]
    assert merged["wsb"]["last_job"] is None and "last_job" in merged["wsb"]
    merged = merge_machine(base, {"registry": {"HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager": {"X": 1}}})
    assert merged["registry"]["HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager"] == {"X": 1}


def test_unknown_scenario_lists_known_ones() -> None:
    with pytest.raises(MachineStateError, match=r"unknown scenario 'nope'.*healthy-2019"):
        load_scenario("nope")


# --------------------------------------------------------------------------- bad YAML
def test_bad_machine_yaml_names_file_field_and_line(tmp_path: Path) -> None:
    p = tmp_path / "m.yml"
    p.write_text("hostname: X\nservices:\n  VSS:\n    start_mode: Manual\n    colour: blue\n", encoding="utf-8")
    with pytest.raises(MachineStateError) as exc:
        load_machine(p)
    text = str(exc.value)
    assert str(p) in text and "services.VSS.colour (line 5)" in text and "Extra inputs are not permitted" in text


def test_wrong_type_is_reported_with_its_path(tmp_path: Path) -> None:
    p = tmp_path / "m.yml"
    p.write_text("os:\n  build_number: lots\n", encoding="utf-8")
    with pytest.raises(MachineStateError, match=r"os\.build_number \(line 2\): Input should be a valid integer"):
        load_machine(p)


def test_invalid_yaml_and_non_mapping(tmp_path: Path) -> None:
    p = tmp_path / "m.yml"
    p.write_text("hostname: [unclosed\n", encoding="utf-8")
    with pytest.raises(MachineStateError, match=r"m\.yml: line \d+ not valid YAML"):
        load_machine(p)
    p.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(MachineStateError, match="top level must be a mapping"):
        load_machine(p)
    with pytest.raises(MachineStateError, match="cannot read"):
        load_machine(tmp_path / "absent.yml")


def test_empty_machine_yaml_is_the_healthy_default(tmp_path: Path) -> None:
    p = tmp_path / "m.yml"
    p.write_text("# nothing\n", encoding="utf-8")
    assert load_machine(p) == MachineState()


def test_scenario_file_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("base: b\nmachine: {}\n", encoding="utf-8")
    (tmp_path / "b.yml").write_text("base: a\nmachine: {}\n", encoding="utf-8")
    with pytest.raises(MachineStateError, match="base chain loops"):
        load_scenario_file(tmp_path / "a.yml")
    (tmp_path / "c.yml").write_text("hostname: X\n", encoding="utf-8")
    with pytest.raises(MachineStateError, match=r"unknown top-level key.*hostname.*under `machine:`"):
        load_scenario_file(tmp_path / "c.yml")
    (tmp_path / "d.yml").write_text("machine:\n  time:\n    clock_offset_seconds: soon\n", encoding="utf-8")
    with pytest.raises(MachineStateError, match=r"(?s)d\.yml \(machine:\).*time\.clock_offset_seconds \(line 3\)"):
        load_scenario_file(tmp_path / "d.yml")
    (tmp_path / "e.yml").write_text("base: missing\n", encoding="utf-8")
    with pytest.raises(MachineStateError, match="base 'missing' not found"):
        load_scenario_file(tmp_path / "e.yml")


# --------------------------------------------------------------------------- simulated answers
def test_clock_offset_moves_collected_at_and_event_times() -> None:
    m = load_scenario("clock-skew")
    doc = answer(m, {"time": {}})
    now = datetime.now(UTC)
    collected = datetime.fromisoformat(doc["host"]["collected_at"].replace("Z", "+00:00"))
    assert timedelta(seconds=1200) < collected - now < timedelta(seconds=1320)
    assert "Leap Indicator: 3(not synchronized)" in doc["probes"]["time"]["data"]["w32tm_text"]


def test_events_window_order_and_cap() -> None:
    m = load_scenario("vss-timeout-events")
    req = {"events": {"queries": [{"log": "Application", "provider": "VSS", "ids": [8229], "since_hours": 240, "max": 1},
                                  {"log": "Application", "provider": "VSS", "ids": [8229], "since_hours": 24}]}}  # fmt: skip
    res = answer(m, req)["probes"]["events"]["data"]["results"]
    assert len(res[0]["entries"]) == 1
    first = datetime.fromisoformat(res[0]["entries"][0]["time_created"].replace("Z", "+00:00"))
    assert datetime.now(UTC) - first < timedelta(days=1, hours=4)  # newest first
    assert res[1]["entries"] == []  # both events are older than 24 hours
    assert "0x800423f2" in res[0]["entries"][0]["message"]


def test_connectivity_from_machine_rules_never_the_network() -> None:
    m = MachineState.model_validate(
        {"connectivity": {"default": "timeout", "rules": [{"host": "*.microsoft.com", "port": 443, "result": "ok"}]}}
    )
    req = {"connectivity": {"endpoints": [{"host": "www.microsoft.com"}, {"host": "www.microsoft.com", "port": 80},
                                          {"host": "login.windows.net"}], "timeout_ms": 2000}}  # fmt: skip
    res = answer(m, req)["probes"]["connectivity"]["data"]["results"]
    assert [(r["tcp_ok"], r["error"]) for r in res] == [(True, None), (False, "Timeout"), (False, "Timeout")]
    assert res[1]["elapsed_ms"] == 2000


def test_forced_probe_errors_and_faults_touch_one_probe_only() -> None:
    m = MachineState.model_validate(
        {"probe_errors": {"acl": {"type": "UnauthorizedAccessException", "message": "Access is denied.", "hresult": 2147942405}}}
    )
    doc = answer(m, {"acl": {}, "os": {}, "dotnet": {}}, faults=[FaultSpec(kind="probe_error", probe="dotnet")])
    assert doc["probes"]["acl"]["error"]["type"] == "UnauthorizedAccessException"
    assert doc["probes"]["dotnet"]["error"]["type"] == "RuntimeException"
    assert doc["probes"]["os"]["data"]["build_number"] == 17763


def test_acl_item_access_denied_and_missing_path() -> None:
    m = MachineState.model_validate(
        {"acls": {"C:\\System Volume Information": {"error": {"type": "UnauthorizedAccessException", "message": "denied"}}}}
    )
    items = answer(m, {"acl": {"paths": ["C:\\System Volume Information", "C:\\nope"]}})["probes"]["acl"]["data"]["items"]
    assert items[0]["error"]["type"] == "UnauthorizedAccessException" and items[0]["default_path"] is False
    assert items[1]["exists"] is False


def test_sddl_is_read_like_get_acl() -> None:
    owner, aces = parse_sddl("O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICIIO;GA;;;CO)(D;;0x1200a9;;;S-1-5-21-1-2-3-500)")
    assert owner == "S-1-5-32-544"
    assert aces[0] == {"sid": "S-1-5-18", "rights": 0x1F01FF, "type": "Allow", "inherited": False,
                       "inherit_only": False, "object_inherit": True, "container_inherit": True}  # fmt: skip
    assert aces[1]["rights"] == 0x10000000 and aces[1]["inherit_only"] and aces[1]["sid"] == "S-1-3-0"
    assert aces[2]["type"] == "Deny" and aces[2]["rights"] == 0x1200A9


def test_hostile_names_come_back_as_data() -> None:
    evil = "x'; Remove-Item C:\\ -Recurse; $(calc)"
    doc = answer(MachineState(), {"services": {"names": [evil, "VSS"]}, "features": {"names": [evil]}})
    assert doc["probes"]["services"]["data"]["services"][0] == {
        "name": evil, "present": False, "display_name": "", "state": "", "start_mode": "",
        "delayed_auto_start": None, "start_name": ""}  # fmt: skip
    assert doc["probes"]["features"]["data"]["features"][0]["install_state"] == "NotFound"


def test_probe_missing_from_script_is_an_unknown_probe_error() -> None:
    b = build_bundle({"os": {}})
    args = json.dumps({"probes": {"os": {}, "dotnet": {}}})
    doc = json.loads(answer_bundle(LabHost("h", MachineState()), b.script, args))
    assert doc["probes"]["dotnet"]["error"]["type"] == "ArgumentException"
    assert "data" in doc["probes"]["os"]


def test_bad_args_json_is_a_clear_error() -> None:
    b = build_bundle({"os": {}})
    with pytest.raises(BundleArgsError, match="ArgsJson"):
        answer_bundle(LabHost("h", MachineState()), b.script, "{not json")


def test_custom_probe_answers_from_machine() -> None:
    m = MachineState.model_validate({"custom_probes": {"my.check": {"output": '{"a": 1}'}}})
    req = {"custom": {"scripts": [{"id": "my.check", "script": "x"}, {"id": "other", "script": "y"}]}}
    doc = parse_facts(answer_bundle(LabHost("h", m), build_bundle(req).script, build_bundle(req).args_json))
    data = PROBES["custom"].data.model_validate(doc.probes["custom"].data)
    assert data.results["my.check"].value == {"a": 1}  # type: ignore[attr-defined]
    assert data.results["other"].error.type == "NotImplementedInLab"  # type: ignore[attr-defined]


def test_rendered_writers_follow_the_real_english_layout() -> None:
    m = load_scenario("vss-writer-failed")
    text = render_vss_writers(m)
    assert "\r\n" in text
    assert "Writer name: 'System Writer'\r\n   Writer Id: {e8132975-6f93-4464-a53e-1050253ae220}\r\n" in text
    assert "   State: [9] Failed\r\n   Last error: Timed out\r\n" in text


def test_localized_scenarios_report_their_culture_and_zone() -> None:
    doc = answer(load_scenario("healthy-2022-ko"), {"time": {}, "os": {}})
    assert doc["host"]["culture"] == "ko-KR"
    assert doc["probes"]["time"]["data"]["timezone_id"] == "Korea Standard Time"
    assert doc["probes"]["time"]["data"]["utc_offset_minutes"] == 540
    assert doc["probes"]["os"]["data"]["build_number"] == 20348


def test_event_budget_bounds_the_whole_document() -> None:
    m = load_scenario("vss-timeout-events")
    q = {"log": "Application", "provider": "VSS", "ids": [8229], "since_hours": 240, "max": 5}
    res = answer(m, {"events": {"queries": [q, q], "max_total": 1}})["probes"]["events"]["data"]["results"]
    assert len(res[0]["entries"]) == 1
    assert res[1]["entries"] == [] and res[1]["error"]["type"] == "InvalidOperationException"


def test_legacy_answer_is_what_the_preamble_prints() -> None:
    """Render the preamble's hand-built PS 2.0 document with the machine's values and compare."""
    import re

    from fleetcheck.probes.bundle import read_ps1

    m = load_scenario("legacy-ps2")
    doc = answer(m, {"os": {}})
    line = next(ln for ln in read_ps1("_preamble.ps1").splitlines() if "Write-Output ('{" in ln)
    expr = line.strip()[len("Write-Output (") : -1]
    values = {"$fcV": m.powershell.version, "$env:COMPUTERNAME": m.hostname.upper(), "$fcC": m.locale.culture,
              "$fcT": doc["host"]["collected_at"]}  # fmt: skip
    parts = re.split(r"\s*\+\s*", expr)
    rendered = "".join(values[p] if p.startswith("$") else p.strip("'") for p in parts)
    assert json.loads(rendered) == doc
    assert list(json.loads(rendered)) == list(doc)


def test_users_scenario_file_can_build_on_the_library(tmp_path: Path) -> None:
    p = tmp_path / "my-site.yml"
    p.write_text(
        "description: our standard build\nbase: healthy-2022-nl\nmachine:\n  hostname: NL-FS01\n"
        "  services:\n    obengine: {state: Stopped}\n",
        encoding="utf-8",
    )
    m = load_scenario(str(p))
    assert m.hostname == "NL-FS01" and m.locale.culture == "nl-NL"
    assert m.services["obengine"].state == "Stopped" and m.services["obengine"].start_mode == "Auto"


def test_probe_denied_fault_and_fleet_grammar_knows_probe_kinds() -> None:
    doc = answer(MachineState(), {"acl": {}, "dotnet": {}}, faults=[FaultSpec(kind="probe_denied", probe="acl")])
    assert doc["probes"]["acl"]["error"] == {"type": "UnauthorizedAccessException", "message": "Access is denied.",
                                             "hresult": 0x80070005}  # fmt: skip
    assert "data" in doc["probes"]["dotnet"]
    from fleetcheck.lab.faults import PROBE_KINDS

    assert set(PROBE_KINDS) == {"probe_error", "probe_denied"}
