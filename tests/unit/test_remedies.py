"""Remedies without a network: the lab's machine answers the real bundle, the planner plans from
those facts, the lab applies the real remedy script's JSON to the machine, and the next scan
judges the result. Every remedy: the plan names exactly the failing remediable checks in an
admin's words, applying makes them pass, and a second plan is empty."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.checks import evaluate
from fleetcheck.fix import HostPlan, batch_failed, batches_of, plan_host
from fleetcheck.lab.engine import ScriptRequest
from fleetcheck.lab.host import FaultSpec, LabHost
from fleetcheck.lab.remedies import answer_remedy
from fleetcheck.lab.scenarios import load_scenario
from fleetcheck.lab.simprobes import answer_bundle
from fleetcheck.playbook import Playbook, PlaybookError, merge_probe_requests, parse_playbook
from fleetcheck.probes.bundle import build_bundle, parse_facts
from fleetcheck.remedies import REMEDIES, ShadowOptions
from fleetcheck.remedies.bundle import build_remedy_bundle, parse_remedy_output
from fleetcheck.results import CheckStatus, HostResult, HostStatus
from fleetcheck.runner import status_from_checks

SHIPPED = Path(__file__).resolve().parents[2] / "fleetcheck" / "playbooks" / "system-state-backup.yml"
PEER = "ntp1.corp.example,0x9"
GB = 1024**3


def playbook(remediate: bool = True, time_source: str = PEER, max_size: str = "20%") -> list[Playbook]:
    text = SHIPPED.read_text(encoding="utf-8")
    if remediate:
        text = text.replace("remediate: false", "remediate: true")
    text = text.replace('time_source: ""', f'time_source: "{time_source}"').replace("max_size: 20%", f"max_size: '{max_size}'")
    return [parse_playbook(text, "test.yml")]


def scan(host: LabHost, pbs: list[Playbook]) -> tuple[HostResult, Any]:
    bundle = build_bundle(merge_probe_requests(pbs))
    facts = parse_facts(answer_bundle(host, bundle.script, bundle.args_json))
    checks = evaluate(facts, pbs)
    status, message = status_from_checks(checks)
    return HostResult(host=host.name, status=status, message=message, checks=checks), facts


def plan(host: LabHost, pbs: list[Playbook]) -> HostPlan:
    result, facts = scan(host, pbs)
    return plan_host(result, facts, pbs)


async def apply(host: LabHost, p: HostPlan) -> Any:
    bundle = build_remedy_bundle(p.to_apply)
    values, outcome = await answer_remedy(host, ScriptRequest(script=bundle.script, parameters={"ArgsJson": bundle.args_json}))
    assert outcome.terminating is None
    return parse_remedy_output(values[0])


def failing(host: LabHost, pbs: list[Playbook]) -> set[str]:
    return {c.check_id for c in scan(host, pbs)[0].checks if c.status is CheckStatus.FAIL}


CASES = {
    "wsb-missing": {"wsb-feature": ["Windows-Server-Backup: Available -> Installed, no restart needed"]},
    "services-misconfigured": {
        "service-eventsystem": ["service EventSystem: start mode Manual -> Automatic, then start it (Stopped -> Running)"],
        "service-sens": ["service SENS: start mode Manual -> Automatic, then start it (Stopped -> Running)"],
        "service-vss": ["service VSS: start mode Disabled -> Manual"],
        "service-swprv": ["service swprv: start mode Disabled -> Manual"],
    },
    "svi-acl-missing": {"svi-permission": ["C:\\System Volume Information: grant SYSTEM Full Control (this folder, subfolders, files)"]},
    "mars-stopped": {"mars-service": ["service obengine: start it (Stopped -> Running)"]},
    "clock-skew": {"clock": [f"Windows Time: source Local CMOS Clock -> {PEER}, then resync"]},
    "av-no-exclusions": {"av-exclusions": [
        "Defender: add exclusions path C:\\Program Files\\Microsoft Azure Recovery Services Agent\\bin, "
        "path C:\\Program Files\\Microsoft Azure Recovery Services Agent\\Scratch, process cbengine.exe"]},
}


def shadow_full_without_events() -> LabHost:
    m = load_scenario("shadow-storage-full")
    m.events.clear()
    return LabHost("srv", m)


@pytest.mark.parametrize("scenario", sorted(CASES))
async def test_each_remedy_plans_exactly_the_failing_checks_fixes_them_and_then_plans_nothing(scenario: str) -> None:
    pbs = playbook()
    host = LabHost("srv", load_scenario(scenario))
    first = plan(host, pbs)
    assert {c.change.check_id: [] for c in first.changes}.keys() == CASES[scenario].keys()
    assert {cid: [c.change.summary for c in first.changes if c.change.check_id == cid] for cid in CASES[scenario]} == CASES[scenario]
    follows = [(n.check_id, n.reason) for n in first.no_fix]
    assert follows == ([("wsb-cmdlets", "expected to pass once wsb-feature is fixed (the feature brings the Get-WBJob cmdlets)")]
                       if scenario == "wsb-missing" else [])
    assert all(c.enabled for c in first.changes)
    report = await apply(host, first)
    assert [r.error for r in report.results] == [None] * len(first.to_apply)
    assert all(r.changed for r in report.results) and not any(r.restart_needed for r in report.results)
    assert failing(host, pbs) == set()
    again = plan(host, pbs)
    assert again.changes == [] and again.no_fix == []
    twice = await apply(host, first)  # the same remedy script again changes nothing and says so
    assert [(r.error, r.changed) for r in twice.results] == [(None, False)] * len(first.to_apply)


async def test_shadow_storage_resize_to_the_playbook_percentage() -> None:
    pbs = playbook()
    host = shadow_full_without_events()
    p = plan(host, pbs)
    [change] = p.to_apply
    capacity = host.machine.volumes["C"].capacity
    assert change.params["max_bytes"] == capacity * 20 // 100
    assert change.summary == f"shadow storage for C:: limit 4.00 GB -> {capacity * 0.2 / GB:.2f} GB (20%; 4.00 GB in use)"
    await apply(host, p)
    assert host.machine.shadow_storage.associations["C"].max_bytes == capacity * 20 // 100
    assert failing(host, pbs) == set() and plan(host, pbs).changes == []


def test_shadow_storage_never_below_what_is_used() -> None:
    host = shadow_full_without_events()  # 4 GiB used of a 127 GiB volume: 3% leaves no 1 GB room
    p = plan(host, playbook(max_size="3%"))
    assert p.changes == [] and "leaves less than 1 GB above the 4.00 GB in use" in p.no_fix[0].reason
    assert ShadowOptions(max_size="30GB").bytes_for(0) == 30 * GB and ShadowOptions(max_size=5 * GB).bytes_for(0) == 5 * GB
    with pytest.raises(ValueError):
        ShadowOptions(max_size="150%")


async def test_shadow_storage_events_keep_failing_after_the_resize_and_are_not_replanned() -> None:
    pbs = playbook()
    host = LabHost("srv", load_scenario("shadow-storage-full"))  # the limit is full AND VolSnap 24 was logged
    await apply(host, plan(host, pbs))
    assert failing(host, pbs) == {"shadow-storage"}  # the event stays in the look-back window
    again = plan(host, pbs)
    assert again.changes == [] and "VolSnap events" in again.no_fix[0].reason


async def test_lab_refuses_a_resize_below_the_used_space() -> None:
    host = shadow_full_without_events()
    bundle = build_remedy_bundle(plan(host, playbook()).to_apply)
    low = bundle.args_json.replace(str(host.machine.volumes["C"].capacity * 20 // 100), str(GB))
    values, _ = await answer_remedy(host, ScriptRequest(script=bundle.script, parameters={"ArgsJson": low}))
    [r] = parse_remedy_output(values[0]).results
    assert r.error is not None and "below the 4294967296 bytes in use" in r.error.message
    assert host.machine.shadow_storage.associations["C"].max_bytes == 4 * GB


def test_free_running_clock_is_a_configuration_decision_without_a_time_source() -> None:
    p = plan(LabHost("srv", load_scenario("clock-skew")), playbook(time_source=""))
    assert p.changes == [] and "configuration decision" in p.no_fix[0].reason


async def test_clock_with_a_source_only_resyncs_and_keeps_the_source() -> None:
    m = load_scenario("healthy-2019")
    m.time.clock_offset_seconds = 900
    host = LabHost("srv", m)
    p = plan(host, playbook(time_source=""))
    assert [c.summary for c in p.to_apply] == ["Windows Time: resync now with time.windows.com (source unchanged)"]
    await apply(host, p)
    assert host.machine.time.w32tm.source == "time.windows.com,0x9" and failing(host, playbook()) == set()


async def test_windows_refusals_come_back_per_change_and_leave_the_rest_applied() -> None:
    m = load_scenario("services-misconfigured")
    m.services["RpcSs"].start_mode = "Manual"
    m.services["SENS"].start_error = "The dependency service or group failed to start."
    host = LabHost("srv", m)
    pbs = playbook()
    report = await apply(host, plan(host, pbs))
    errors = {r.check: r.error.message for r in report.results if r.error}
    assert errors["service-rpcss"] == (
        "Service 'Remote Procedure Call (RPC) (RpcSs)' cannot be configured due to the following error: Access is denied")
    assert errors["service-sens"].startswith("Cannot start service SENS on computer '.'.")
    assert failing(host, pbs) == {"service-rpcss", "service-sens"}


async def test_feature_without_payload_and_feature_needing_a_restart() -> None:
    m = load_scenario("wsb-missing")
    m.features["Windows-Server-Backup"] = "Removed"
    p = plan(LabHost("srv", m), playbook())
    assert p.changes == [] and "payload was removed" in p.no_fix[0].reason
    m.features["Windows-Server-Backup"] = "Installed"
    m.features["Hyper-V"] = "Available"
    text = SHIPPED.read_text(encoding="utf-8").replace("feature: Windows-Server-Backup", "feature: Hyper-V").replace(
        "remediate: false", "remediate: true")
    host = LabHost("srv", m)
    hv = plan(host, [parse_playbook(text)])
    assert [c.summary for c in hv.to_apply] == ["Hyper-V: Available -> Installed, restart as Windows reports it"]
    [r] = (await apply(host, hv)).results
    assert r.restart_needed and r.after == "InstallPending"


@pytest.mark.parametrize(("kind", "error_type"), [("remedy_throws", "RuntimeException"), ("remedy_denied", "UnauthorizedAccessException")])
async def test_remedy_faults_hit_only_the_targeted_change(kind: str, error_type: str) -> None:
    host = LabHost("srv", load_scenario("services-misconfigured"), faults=[FaultSpec(kind=kind, probe="service-vss")])
    report = await apply(host, plan(host, playbook()))
    assert {r.check: (r.error.type if r.error else None) for r in report.results} == {
        "service-eventsystem": None, "service-sens": None, "service-vss": error_type, "service-swprv": None}
    assert failing(host, playbook()) == {"service-vss"}


def test_without_remediate_the_plan_shows_changes_but_enables_none() -> None:
    p = plan(LabHost("srv", load_scenario("svi-acl-missing")), playbook(remediate=False))
    assert p.to_apply == [] and p.not_enabled == ["svi-permission"]


def test_checks_without_a_safe_fix_are_listed_with_their_remediation() -> None:
    m = load_scenario("dotnet-old")
    p = plan(LabHost("srv", m), playbook())
    assert p.changes == [] and [n.check_id for n in p.no_fix] == ["dotnet"]
    assert "installer" in p.no_fix[0].reason and "4.8" in p.no_fix[0].remediation


def test_playbook_rejects_remediate_on_a_check_without_a_remedy_and_bad_options() -> None:
    with pytest.raises(PlaybookError, match=r"line 4: checks.dotnet.remediate: this check has no automatic fix"):
        parse_playbook("name: x\nchecks:\n  dotnet:\n    remediate: true\n", "x.yml")
    with pytest.raises(PlaybookError, match=r"checks.shadow-storage.remedy.max_size"):
        parse_playbook("name: x\nchecks:\n  shadow-storage:\n    remedy: {max_size: lots}\n", "x.yml")
    with pytest.raises(PlaybookError, match=r"checks.clock.remedy.time_source"):
        parse_playbook("name: x\nchecks:\n  clock:\n    remedy: {time_source: \"a; Restart-Computer\"}\n", "x.yml")
    shipped = parse_playbook(SHIPPED.read_text(encoding="utf-8"))
    assert {c.id for c in shipped.checks.values() if c.remedy is not None} == set(REMEDIES)
    assert not any(c.remediate for c in shipped.checks.values())


def test_batches_and_the_fail_threshold() -> None:
    from fleetcheck.fix import HostFix, PlannedChange
    from fleetcheck.remedies import Change

    ch = PlannedChange(Change("clock", "clock", "s", "b", "a"), True)
    plans = [HostPlan(f"h{i}", HostStatus.NONCOMPLIANT, changes=[ch] if i != 2 else []) for i in range(6)]
    assert [[p.host for p in b] for b in batches_of(plans, 2)] == [["h0", "h1"], ["h3", "h4"], ["h5"]]
    ok, bad = HostFix("a", after={}), HostFix("b", error="boom")
    assert not batch_failed([ok, ok], 0) and batch_failed([ok, bad], 49) and not batch_failed([ok, bad], 50)


def test_explain_shows_the_exact_remedy_and_whether_the_playbook_enables_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fleetcheck.cli import app

    shipped = CliRunner().invoke(app, ["explain", "svi-permission"])
    assert shipped.exit_code == 0
    assert "Add one Allow FullControl entry for SYSTEM by SID (S-1-5-18)" in shipped.output
    assert "playbook system-state-backup: not enabled (set checks.svi-permission.remediate: true)" in shipped.output
    mine = tmp_path / "mine.yml"
    mine.write_text("name: mine\nchecks:\n  shadow-storage:\n    remediate: true\n    remedy: {max_size: 30GB}\n", encoding="utf-8")
    enabled = CliRunner().invoke(app, ["explain", "shadow-storage", "-p", str(mine)])
    assert "playbook mine: enabled (remediate: true)" in enabled.output
    assert 'options (checks.shadow-storage.remedy): max_size: "30GB"' in enabled.output
    assert "Automatic fix (fleetcheck fix): none; OS updates need" in CliRunner().invoke(app, ["explain", "os-updates"]).output


def test_a_waived_check_is_not_fixed() -> None:
    from fleetcheck.results import RunResult
    from fleetcheck.waivers import Waiver, apply_waivers

    pbs = playbook()
    host = LabHost("srv", load_scenario("services-misconfigured"))
    result, facts = scan(host, pbs)
    waiver = Waiver(check="service-vss", hosts=["srv"], justification="VSS is disabled on purpose here",
                    expires=date.today() + timedelta(days=30))
    run = RunResult(run_id="r", started_at=datetime.now(UTC), hosts=[result])
    waived = apply_waivers(run, [waiver], date.today())[0].hosts[0]
    p = plan_host(waived, facts, pbs)
    assert p.waived == ["service-vss"]
    assert [c.change.check_id for c in p.changes] == ["service-eventsystem", "service-sens", "service-swprv"]


def test_values_the_host_reports_also_travel_only_as_json_data() -> None:
    hostile = "D:\\scratch'; Restart-Computer -Force; #"
    m = load_scenario("av-no-exclusions")
    m.registry["HKLM\\SOFTWARE\\Microsoft\\Windows Azure Backup\\Config"]["ScratchLocation"] = hostile
    p = plan(LabHost("srv", m), playbook())
    bundle = build_remedy_bundle(p.to_apply)
    assert hostile not in bundle.script and "Restart-Computer" not in bundle.script
    assert hostile in json.loads(bundle.args_json)["changes"][0]["params"]["paths"]


def test_checks_filter_limits_the_plan_to_the_named_checks() -> None:
    pbs = playbook()
    result, facts = scan(LabHost("srv", load_scenario("services-misconfigured")), pbs)
    p = plan_host(result, facts, pbs, only={"service-vss"})
    assert [c.change.check_id for c in p.changes] == ["service-vss"] and p.no_fix == []


async def test_svi_grant_adds_one_entry_for_system_and_touches_no_other() -> None:
    m = load_scenario("svi-acl-missing")
    before = "O:BAG:SYD:PAI(D;OICI;WD;;;BU)(A;OICI;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICIID;FR;;;AU)"
    m.acls["C:\\System Volume Information"].sddl = before
    host = LabHost("srv", m)
    first = plan(host, playbook())
    [r] = (await apply(host, first)).results
    after = host.machine.acls["C:\\System Volume Information"].sddl
    assert after == "O:BAG:SYD:PAI(D;OICI;WD;;;BU)(A;OICI;FA;;;BA)(A;OICIIO;GA;;;CO)(A;OICI;FA;;;SY)(A;OICIID;FR;;;AU)"
    assert r.before == before.split("G:SY")[1] and r.changed
    [again] = (await apply(host, first)).results  # the same script twice: nothing more changes, and it says so
    assert not again.changed and again.detail == "SYSTEM already has full control"
    assert host.machine.acls["C:\\System Volume Information"].sddl == after and plan(host, playbook()).changes == []


@pytest.mark.parametrize(("stdout", "why"), [
    ("", "not a remedy report"),
    ("WARNING: something\nnot json at all", "not a remedy report"),
    ('{"schema": "fleetcheck/facts/v1", "results": []}', "unsupported remedy schema"),
    ('{"schema": "fleetcheck/remedy/v1", "results": [{"check": 1}]}', "not a remedy report"),
    ('{"schema": "fleetcheck/remedy/v1", "results": []}' + " " * (1024 * 1024), "above"),
])
def test_whatever_a_host_prints_for_a_remedy_is_one_clear_error(stdout: str, why: str) -> None:
    from fleetcheck.remedies.bundle import RemedyOutputError

    with pytest.raises(RemedyOutputError, match=why):
        parse_remedy_output(stdout)
    ok = parse_remedy_output('banner\n{"schema": "fleetcheck/remedy/v1", "results": [{"check": "clock", "action": "clock"}]}')
    assert ok.results[0].check == "clock" and not ok.results[0].changed
