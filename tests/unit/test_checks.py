"""Every built-in rule on plain facts: pass, fail, threshold edges, unknown and error."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.checks import CHECK_ORDER, CHECKS, EvalContext, evaluate_check, hresult_hex, parse_hresult
from fleetcheck.checks.base import Facts, hresult_in_text, parse_utc, version_at_least
from fleetcheck.facts import FactsDocument, ProbeError, ProbeOutcome
from fleetcheck.playbook import CheckSettings
from fleetcheck.results import CheckResult, CheckStatus

NOW = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
CTX = EvalContext(scan_time=NOW)
GB = 1024**3
AGENT = "C:\\Program Files\\Microsoft Azure Recovery Services Agent"
SCRATCH = AGENT + "\\Scratch"
C_VOL = "\\\\?\\Volume{11111111-1111-1111-1111-111111111111}\\"
SR_VOL = "\\\\?\\Volume{22222222-2222-2222-2222-222222222222}\\"
W32TM_OK = (
    "Leap Indicator: 0(no warning)\r\nStratum: 3 (secondary reference - syncd by (S)NTP)\r\n"
    "Precision: -23 (119.209ns per tick)\r\nRoot Delay: 0.0312s\r\nRoot Dispersion: 7.7s\r\n"
    "ReferenceId: 0x0A000001 (source IP:  10.0.0.1)\r\nLast Successful Sync Time: 11/23/2026 5:40:00 AM\r\n"
    "Source: dc01.corp.example\r\nPoll Interval: 10 (1024s)\r\n"
)
W32TM_LOCAL = (
    "Leap Indicator: 3(not synchronized)\r\nStratum: 0 (unspecified)\r\nPrecision: -23 (119.209ns per tick)\r\n"
    "Root Delay: 0.0000000s\r\nRoot Dispersion: 0.0000000s\r\nReferenceId: 0x00000000 (unspecified)\r\n"
    "Last Successful Sync Time: unspecified\r\nSource: Local CMOS Clock\r\nPoll Interval: 10 (1024s)\r\n"
)


def writer(name: str, wid: str, state: str, err: str = "No error") -> str:
    return (
        f"Writer name: '{name}'\r\n   Writer Id: {{{wid}}}\r\n"
        f"   Writer Instance Id: {{{wid[:-4]}ffff}}\r\n   State: {state}\r\n   Last error: {err}\r\n\r\n"
    )


WRITERS_OK = "vssadmin 1.1\r\n\r\n" + writer("System Writer", "e8132975-6f93-4464-a53e-1050253ae220", "[1] Stable") + writer(
    "WMI Writer", "a6ad56c2-b509-4e6c-bb19-49d8f43532f0", "[5] Waiting for completion"
)


def service(name: str, mode: str, state: str) -> dict[str, Any]:
    return {"name": name, "present": True, "state": state, "start_mode": mode}


def healthy() -> dict[str, Any]:
    """Probe data of a host that passes every check."""
    return {
        "os": {"caption": "Microsoft Windows Server 2019 Standard", "version": "10.0.17763", "build_number": 17763,
               "product_type": 3, "installation_type": "Server", "edition_id": "ServerStandard"},
        "features": {"module_available": True, "features": [
            {"name": "Windows-Server-Backup", "install_state": "Installed", "installed": True}]},
        "wsb": {"cmdlets_available": True, "last_job": {"job_type": "Backup", "job_state": "Completed",
                "end_time": "2026-11-22T23:10:00.0000000Z", "hresult": 0, "detailed_hresult": 0}},
        "acl": {"items": [{"path": "C:\\System Volume Information", "default_path": True, "aces": [
            {"sid": "S-1-5-18", "rights": 0x1F01FF, "type": "Allow", "object_inherit": True, "container_inherit": True}]}]},
        "services": {"services": [service("RpcSs", "Auto", "Running"), service("EventSystem", "Auto", "Running"),
                                  service("SENS", "Auto", "Running"), service("VSS", "Manual", "Stopped"),
                                  service("swprv", "Manual", "Stopped"), service("obengine", "Auto", "Running")]},
        "mars": {"installed": True, "install_path": AGENT, "cbengine_path": AGENT + "\\bin\\cbengine.exe",
                 "cbengine_present": True, "agent_version": "2.0.9266.0", "scratch_location_config": SCRATCH,
                 "scratch_location_provider": SCRATCH},
        "connectivity": {"results": [{"host": h, "port": 443, "tcp_ok": True} for h in
                                     ("login.microsoftonline.com", "login.windows.net", "www.msftconnecttest.com")]},
        "scheduled_tasks": {"tasks": [{"path": "\\Microsoft\\OnlineBackup\\", "name": "Microsoft-OnlineBackup",
                                       "state": "Ready", "enabled": True, "user_id": "SYSTEM", "user_sid": "S-1-5-18"}],
                            "execution_policy": {"LocalMachine": "RemoteSigned", "Effective": "RemoteSigned"}},
        "volumes": {"volumes": [
            {"device_id": C_VOL, "drive_letter": "C:", "name": "C:\\", "capacity": 200 * GB, "free_space": 100 * GB,
             "boot_volume": True},
            {"device_id": SR_VOL, "name": SR_VOL, "capacity": 500 * 1024**2, "free_space": 400 * 1024**2,
             "system_volume": True}]},
        "defender": {"available": True, "exclusion_path": [AGENT + "\\bin", SCRATCH], "exclusion_process": ["cbengine.exe"]},
        "updates": {"hotfixes": [{"id": "KB5000001", "installed_on": "2026-06-01"},
                                 {"id": "KB5000002", "installed_on": "2026-11-10"}], "reboot_pending": {}},
        "time": {"utc_now": "2026-11-23T06:00:02.1234567Z", "timezone_id": "W. Europe Standard Time",
                 "utc_offset_minutes": 60, "w32tm_text": W32TM_OK, "w32tm_exit_code": 0},
        "dotnet": {"release": 528049, "version": "4.8.03761"},
        "azure": {"smbios_asset_tag": "0000-0000-0000", "manufacturer": "Dell Inc.", "model": "PowerEdge R640"},
        "azure_powershell": {"modules": []},
        "vss_writers": {"text": WRITERS_OK, "exit_code": 0},
        "shadow_storage": {"source": "cim", "storages": [
            {"volume_device_id": C_VOL, "diff_volume_device_id": C_VOL, "used_bytes": 2 * GB,
             "allocated_bytes": 3 * GB, "max_bytes": 20 * GB}]},
        "events": {"results": [
            {"log": "Application", "provider": "VSS", "ids": [8229], "entries": []},
            {"log": "System", "provider": "volsnap", "ids": [24, 25], "entries": []},
            {"log": "Microsoft-Windows-Backup", "ids": [5, 517, 518, 521, 546], "entries": []}]},
        "custom": {"results": {}},
    }


def facts(data: dict[str, Any] | None = None, errors: dict[str, ProbeError] | None = None) -> FactsDocument:
    probes = {k: ProbeOutcome(data=v) for k, v in (data or healthy()).items()}
    for k, err in (errors or {}).items():
        probes[k] = ProbeOutcome(error=err)
    return FactsDocument(probes=probes)


def run(check_id: str, data: dict[str, Any] | None = None, ctx: EvalContext = CTX,
        errors: dict[str, ProbeError] | None = None, **params: Any) -> CheckResult:
    cdef = CHECKS[check_id]
    settings = CheckSettings(id=check_id, severity=cdef.severity, tags=list(cdef.tags), params=cdef.params(**params))
    return evaluate_check(settings, Facts(facts(data, errors)), ctx)


def mod(**changes: Any) -> dict[str, Any]:
    """healthy() with dotted-path changes: mod(**{"mars.installed": False})."""
    data = healthy()
    for path, value in changes.items():
        cur: Any = data
        parts = path.split(".")
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        last = parts[-1]
        if isinstance(cur, list):
            cur[int(last)] = value
        else:
            cur[last] = value
    return data


def event(log: str, provider: str, eid: int, when: datetime, props: list[str] | None = None, msg: str = "") -> dict[str, Any]:
    return {"log": log, "provider": provider, "id": eid, "level": 3,
            "time_created": when.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"), "properties": props or [], "message": msg}


def with_events(query_index: int, entries: list[dict[str, Any]], error: dict[str, Any] | None = None) -> dict[str, Any]:
    data = healthy()
    data["events"]["results"][query_index]["entries"] = entries
    data["events"]["results"][query_index]["error"] = error
    return data


# --------------------------------------------------------------------------- all checks on healthy facts
@pytest.mark.parametrize("check_id", CHECK_ORDER)
def test_healthy_host_passes_every_check(check_id: str) -> None:
    result = run(check_id)
    expected = CheckStatus.SKIP if check_id == "azure-powershell" else CheckStatus.PASS
    assert result.status == expected, result.message
    assert result.message
    assert result.severity == CHECKS[check_id].severity


@pytest.mark.parametrize("check_id", [c for c in CHECK_ORDER if c != "azure-powershell"])
def test_probe_error_gives_error_with_type(check_id: str) -> None:
    errors = {p: ProbeError(type="CimException", message="boom") for p in CHECKS[check_id].probes}
    result = run(check_id, errors=errors)
    assert result.status == CheckStatus.ERROR
    assert "CimException" in result.message


@pytest.mark.parametrize("check_id", [c for c in CHECK_ORDER if c != "azure-powershell"])
def test_probe_access_denied_gives_unknown(check_id: str) -> None:
    errors = {p: ProbeError(type="UnauthorizedAccessException", message="denied") for p in CHECKS[check_id].probes}
    assert run(check_id, errors=errors).status == CheckStatus.UNKNOWN


def test_missing_probe_is_error() -> None:
    data = healthy()
    del data["dotnet"]
    result = run("dotnet", data)
    assert result.status == CheckStatus.ERROR and "NotCollected" in result.message


def test_schema_mismatch_is_error_not_crash() -> None:
    result = run("dotnet", mod(**{"dotnet.release": "lots"}))
    assert result.status == CheckStatus.ERROR and "SchemaMismatch" in result.message


def test_disabled_check_is_skip() -> None:
    cdef = CHECKS["dotnet"]
    settings = CheckSettings(id="dotnet", enabled=False, params=cdef.params())
    assert evaluate_check(settings, Facts(facts()), CTX).status == CheckStatus.SKIP


def test_failures_carry_remediation_passes_do_not() -> None:
    assert run("dotnet").remediation == ""
    failing = run("dotnet", mod(**{"dotnet.release": None}))
    assert failing.status == CheckStatus.FAIL and "NET Framework" in failing.remediation


# --------------------------------------------------------------------------- helpers
def test_hresult_helpers() -> None:
    assert hresult_hex(0x8078011E) == "0x8078011E"
    assert hresult_hex(-2147212302) == "0x800423F2"
    assert hresult_hex(0) == "0x00000000"
    assert parse_hresult("0x800423f2") == 0x800423F2
    assert parse_hresult("2155348165") == 0x807800C5
    assert parse_hresult("-2147212302") == 0x800423F2
    assert parse_hresult("800423F2") == 0x800423F2
    assert parse_hresult("nope") is None


def test_parse_utc_and_versions() -> None:
    assert parse_utc("2026-11-23T06:00:02.1234567Z") == datetime(2026, 11, 23, 6, 0, 2, 123456, tzinfo=UTC)
    assert parse_utc("2026-11-23T07:00:00+01:00") == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert parse_utc("garbage") is None and parse_utc(None) is None
    assert version_at_least("2.0.9262.0", "2.0.9262.0") is True
    assert version_at_least("2.0.9262", "2.0.9262.0") is True
    assert version_at_least("2.0.9261.99", "2.0.9262.0") is False
    assert version_at_least("10.0", "9.9.9") is True
    assert version_at_least("x.y", "1.0") is None


# --------------------------------------------------------------------------- wsb
@pytest.mark.parametrize(("state", "status"), [
    ("Installed", CheckStatus.PASS), ("Available", CheckStatus.FAIL), ("Removed", CheckStatus.FAIL),
    ("InstallPending", CheckStatus.WARN), ("NotFound", CheckStatus.FAIL),
])
def test_wsb_feature_states(state: str, status: CheckStatus) -> None:
    data = mod(**{"features.features": [{"name": "Windows-Server-Backup", "install_state": state, "installed": state == "Installed"}]})
    result = run("wsb-feature", data)
    assert result.status == status
    assert result.observed == state


def test_wsb_feature_without_servermanager_is_unknown() -> None:
    assert run("wsb-feature", mod(**{"features.module_available": False, "features.features": []})).status == CheckStatus.UNKNOWN


def test_wsb_cmdlets() -> None:
    broken = mod(**{"wsb.cmdlets_available": False,
                    "wsb.cmdlets_error": {"type": "CommandNotFoundException", "message": "Get-WBJob not recognized"}})
    result = run("wsb-cmdlets", broken)
    assert result.status == CheckStatus.FAIL and "CommandNotFoundException" in result.message
    denied = mod(**{"wsb.cmdlets_available": False, "wsb.cmdlets_error": {"type": "UnauthorizedAccessException", "message": ""}})
    assert run("wsb-cmdlets", denied).status == CheckStatus.UNKNOWN


def test_wsb_last_job_failure_shows_hresult_in_hex() -> None:
    data = mod(**{"wsb.last_job.hresult": 2155348165, "wsb.last_job.detailed_hresult": 2147942523})
    result = run("wsb-last-job", data)
    assert result.status == CheckStatus.FAIL
    assert "0x807800C5" in result.message and "0x8007007B" in result.message
    assert result.observed["hresult"] == "0x807800C5"


def test_wsb_last_job_none_warns_and_no_cmdlets_skips() -> None:
    assert run("wsb-last-job", mod(**{"wsb.last_job": None})).status == CheckStatus.WARN
    assert run("wsb-last-job", mod(**{"wsb.cmdlets_available": False})).status == CheckStatus.SKIP


def test_wsb_last_job_query_failure_is_unknown() -> None:
    data = mod(**{"wsb.last_job": None, "wsb.last_job_error": {"type": "UnauthorizedAccessException", "message": "denied"}})
    result = run("wsb-last-job", data)
    assert result.status == CheckStatus.UNKNOWN and "UnauthorizedAccessException" in result.message


def test_wsb_last_job_age_edge() -> None:
    # ended 2026-11-22T23:10Z, scan 2026-11-23T06:00Z → under a day old
    assert run("wsb-last-job", max_age_days=1).status == CheckStatus.PASS
    late = EvalContext(scan_time=datetime(2026, 11, 24, 0, 0, tzinfo=UTC))
    assert run("wsb-last-job", ctx=late, max_age_days=1).status == CheckStatus.WARN


# --------------------------------------------------------------------------- svi-permission
def acl(*aces: dict[str, Any], error: dict[str, Any] | None = None, exists: bool = True) -> dict[str, Any]:
    return mod(**{"acl.items": [{"path": "C:\\System Volume Information", "default_path": True, "exists": exists,
                                 "aces": list(aces), "error": error}]})


@pytest.mark.parametrize(("aces", "status"), [
    ([{"sid": "S-1-5-18", "rights": 0x1F01FF, "type": "Allow"}], CheckStatus.PASS),
    ([{"sid": "S-1-5-18", "rights": 0x10000000, "type": "Allow"}], CheckStatus.PASS),  # GENERIC_ALL
    ([{"sid": "S-1-5-18", "rights": 0x1F01FF | 0x10000000, "type": "Allow", "inherited": True}], CheckStatus.PASS),
    ([{"sid": "S-1-5-18", "rights": 0x1301BF, "type": "Allow"}], CheckStatus.FAIL),  # Modify only
    ([{"sid": "S-1-5-32-544", "rights": 0x1F01FF, "type": "Allow"}], CheckStatus.FAIL),  # admins, not SYSTEM
    ([{"sid": "S-1-5-18", "rights": 0x10000000, "type": "Allow", "inherit_only": True}], CheckStatus.FAIL),
    ([{"sid": "S-1-5-18", "rights": 0x1F01FF, "type": "Allow"}, {"sid": "S-1-5-18", "rights": 0x10000, "type": "Deny"}],
     CheckStatus.FAIL),
    ([], CheckStatus.FAIL),
])
def test_svi_permission_masks(aces: list[dict[str, Any]], status: CheckStatus) -> None:
    assert run("svi-permission", acl(*aces)).status == status


def test_svi_permission_unreadable_is_unknown() -> None:
    result = run("svi-permission", acl(error={"type": "UnauthorizedAccessException", "message": "Access is denied"}))
    assert result.status == CheckStatus.UNKNOWN and "UnauthorizedAccessException" in result.message


def test_svi_permission_missing_folder_fails() -> None:
    assert run("svi-permission", acl(exists=False)).status == CheckStatus.FAIL


def test_svi_permission_explicit_path() -> None:
    data = healthy()
    data["acl"]["items"].append({"path": "D:\\System Volume Information", "aces": []})
    assert run("svi-permission", data, path="D:\\System Volume Information").status == CheckStatus.FAIL
    assert run("svi-permission", data, path="C:\\System Volume Information\\").status == CheckStatus.PASS


# --------------------------------------------------------------------------- services
@pytest.mark.parametrize(("check_id", "name"), [
    ("service-rpcss", "RpcSs"), ("service-eventsystem", "EventSystem"), ("service-sens", "SENS")])
@pytest.mark.parametrize(("mode", "state", "status"), [
    ("Auto", "Running", CheckStatus.PASS),
    ("Auto", "Stopped", CheckStatus.FAIL),
    ("Manual", "Running", CheckStatus.FAIL),
    ("Disabled", "Stopped", CheckStatus.FAIL),
])
def test_auto_services(check_id: str, name: str, mode: str, state: str, status: CheckStatus) -> None:
    data = healthy()
    data["services"]["services"] = [s for s in data["services"]["services"] if s["name"] != name] + [service(name, mode, state)]
    result = run(check_id, data)
    assert result.status == status
    assert result.observed == f"{mode}, {state}"


@pytest.mark.parametrize(("check_id", "name"), [("service-vss", "VSS"), ("service-swprv", "swprv")])
@pytest.mark.parametrize(("mode", "state", "status"), [
    ("Manual", "Stopped", CheckStatus.PASS),
    ("Manual", "Running", CheckStatus.PASS),
    ("Disabled", "Stopped", CheckStatus.FAIL),
    ("Auto", "Running", CheckStatus.WARN),
])
def test_demand_start_services(check_id: str, name: str, mode: str, state: str, status: CheckStatus) -> None:
    data = healthy()
    data["services"]["services"] = [s for s in data["services"]["services"] if s["name"] != name] + [service(name, mode, state)]
    assert run(check_id, data).status == status


def test_service_missing_fails_and_name_is_case_insensitive() -> None:
    data = healthy()
    data["services"]["services"] = [service("rpcss", "Auto", "Running")]
    assert run("service-rpcss", data).status == CheckStatus.PASS
    assert run("service-sens", data).status == CheckStatus.FAIL
    data["services"]["services"] = [{"name": "VSS", "present": False}]
    assert run("service-vss", data).status == CheckStatus.FAIL


# --------------------------------------------------------------------------- mars
NOT_INSTALLED = {"mars": {"installed": False}}


def test_mars_installed() -> None:
    assert run("mars-installed", mod(**{"mars.installed": False})).status == CheckStatus.FAIL


@pytest.mark.parametrize("check_id", ["mars-version", "mars-service", "mars-schedule", "scratch-space", "av-exclusions"])
def test_agent_checks_skip_without_agent(check_id: str) -> None:
    data = healthy()
    data.update(NOT_INSTALLED)
    assert run(check_id, data).status == CheckStatus.SKIP


@pytest.mark.parametrize(("version", "status"), [
    ("2.0.9262.0", CheckStatus.PASS), ("2.0.9261.0", CheckStatus.FAIL), ("2.0.10000.0", CheckStatus.PASS),
    ("2.0.9083.0", CheckStatus.FAIL), (None, CheckStatus.UNKNOWN), ("garbage", CheckStatus.UNKNOWN),
])
def test_mars_version_edges(version: str | None, status: CheckStatus) -> None:
    assert run("mars-version", mod(**{"mars.agent_version": version})).status == status


def test_mars_version_configurable_and_missing_engine() -> None:
    assert run("mars-version", minimum_version="2.0.9300.0").status == CheckStatus.FAIL
    assert run("mars-version", mod(**{"mars.cbengine_present": False})).status == CheckStatus.FAIL


def test_mars_service() -> None:
    data = healthy()
    data["services"]["services"][-1] = service("obengine", "Auto", "Stopped")
    assert run("mars-service", data).status == CheckStatus.FAIL
    data["services"]["services"].pop()
    assert run("mars-service", data).status == CheckStatus.FAIL


def test_mars_connectivity() -> None:
    data = healthy()
    data["connectivity"]["results"][1] = {"host": "login.windows.net", "port": 443, "tcp_ok": False, "error": "Timeout"}
    result = run("mars-connectivity", data)
    assert result.status == CheckStatus.FAIL and "login.windows.net:443 (Timeout)" in result.message
    assert run("mars-connectivity", mod(**{"connectivity.results": []})).status == CheckStatus.UNKNOWN
    assert run("mars-connectivity", endpoints=["login.microsoftonline.com"]).status == CheckStatus.PASS


@pytest.mark.parametrize(("change", "status"), [
    ({}, CheckStatus.PASS),
    ({"scheduled_tasks.tasks.0.enabled": False}, CheckStatus.FAIL),
    ({"scheduled_tasks.tasks.0.state": "Disabled"}, CheckStatus.FAIL),
    ({"scheduled_tasks.tasks.0.user_sid": "S-1-5-21-1-2-3-1001"}, CheckStatus.FAIL),
    ({"scheduled_tasks.tasks.0.user_sid": None}, CheckStatus.PASS),  # name SYSTEM still recognised
    ({"scheduled_tasks.tasks": []}, CheckStatus.FAIL),
    ({"scheduled_tasks.execution_policy": {"Effective": "Restricted"}}, CheckStatus.FAIL),
    ({"scheduled_tasks.execution_policy": {"LocalMachine": "Undefined", "MachinePolicy": "Undefined"}}, CheckStatus.FAIL),
    ({"scheduled_tasks.execution_policy": {"LocalMachine": "Bypass"}}, CheckStatus.PASS),
    ({"scheduled_tasks.execution_policy": {}}, CheckStatus.UNKNOWN),
    ({"scheduled_tasks.module_available": False}, CheckStatus.UNKNOWN),
])
def test_mars_schedule(change: dict[str, Any], status: CheckStatus) -> None:
    assert run("mars-schedule", mod(**change)).status == status


# --------------------------------------------------------------------------- scratch-space
def scratch(free_percent: float, capacity_gb: float = 1000) -> dict[str, Any]:
    cap = int(capacity_gb * GB)
    return mod(**{"volumes.volumes.0.capacity": cap, "volumes.volumes.0.free_space": int(cap * free_percent / 100)})


@pytest.mark.parametrize(("free", "status"), [
    (50, CheckStatus.PASS), (10, CheckStatus.PASS), (9.99, CheckStatus.WARN), (5, CheckStatus.WARN),
    (4.99, CheckStatus.FAIL), (0, CheckStatus.FAIL),
])
def test_scratch_space_thresholds(free: float, status: CheckStatus) -> None:
    assert run("scratch-space", scratch(free)).status == status


def test_scratch_space_system_state_extra() -> None:
    # 20% free of 100 GB = 20 GB < 30 GB needed
    result = run("scratch-space", scratch(20, capacity_gb=100))
    assert result.status == CheckStatus.FAIL and "30 GB" in result.message
    assert run("scratch-space", scratch(20, capacity_gb=100), system_state_extra_gb=15).status == CheckStatus.PASS
    assert run("scratch-space", scratch(30, capacity_gb=100)).status == CheckStatus.PASS  # exactly 30 GB


def test_scratch_space_picks_longest_mount_and_unknowns() -> None:
    data = healthy()
    data["mars"]["scratch_location_config"] = data["mars"]["scratch_location_provider"] = "D:\\Mount\\Scratch"
    data["volumes"]["volumes"].append({"device_id": "x", "drive_letter": "D:", "name": "D:\\", "capacity": 100 * GB, "free_space": 1 * GB})
    data["volumes"]["volumes"].append({"device_id": "y", "name": "D:\\Mount\\", "capacity": 1000 * GB, "free_space": 500 * GB})
    assert run("scratch-space", data).status == CheckStatus.PASS
    data["volumes"]["volumes"].pop()
    assert run("scratch-space", data).status == CheckStatus.FAIL
    assert run("scratch-space", mod(**{"mars.scratch_location_config": None, "mars.scratch_location_provider": None})).status == CheckStatus.UNKNOWN
    assert run("scratch-space", mod(**{"volumes.volumes.0.capacity": None})).status == CheckStatus.UNKNOWN


def test_scratch_space_registry_mismatch_warns() -> None:
    assert run("scratch-space", mod(**{"mars.scratch_location_provider": "E:\\Other"})).status == CheckStatus.WARN


# --------------------------------------------------------------------------- av-exclusions
def test_av_exclusions() -> None:
    only_scratch = run("av-exclusions", mod(**{"defender.exclusion_path": [SCRATCH]}))
    assert only_scratch.status == CheckStatus.FAIL and only_scratch.message.endswith("\\bin")
    data = mod(**{"defender.exclusion_path": [AGENT + "\\"], "defender.exclusion_process": [AGENT + "\\bin\\CBEngine.exe"]})
    assert run("av-exclusions", data).status == CheckStatus.PASS  # parent folder covers bin and scratch
    result = run("av-exclusions", mod(**{"defender.exclusion_path": [], "defender.exclusion_process": []}))
    assert result.status == CheckStatus.FAIL
    assert "cbengine.exe" in result.message and "Scratch" in result.message and "\\bin" in result.message
    assert run("av-exclusions", mod(**{"defender.exclusion_path": ["C:\\Program Files\\Microsoft Azure*"]})).status == CheckStatus.PASS
    assert run("av-exclusions", mod(**{"defender.available": False, "defender.reason": "no module"})).status == CheckStatus.UNKNOWN


# --------------------------------------------------------------------------- os-updates
@pytest.mark.parametrize(("installed_on", "status"), [
    ("2026-09-24", CheckStatus.PASS),  # 60 days before the scan date: edge passes
    ("2026-09-23", CheckStatus.FAIL),  # 61 days
    (None, CheckStatus.UNKNOWN),
])
def test_os_updates_window(installed_on: str | None, status: CheckStatus) -> None:
    assert run("os-updates", mod(**{"updates.hotfixes": [{"id": "KB1", "installed_on": installed_on}]})).status == status


def test_os_updates_none_and_reboot_pending() -> None:
    assert run("os-updates", mod(**{"updates.hotfixes": []})).status == CheckStatus.FAIL
    pending = mod(**{"updates.reboot_pending": {"cbs": True}})
    result = run("os-updates", pending)
    assert result.status == CheckStatus.WARN and "cbs" in result.message
    assert run("os-updates", pending, reboot_pending_status="fail").status == CheckStatus.FAIL


# --------------------------------------------------------------------------- clock
def at(seconds: float) -> str:
    return (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize(("skew", "status"), [
    (0, CheckStatus.PASS), (60, CheckStatus.PASS), (61, CheckStatus.WARN), (300, CheckStatus.WARN),
    (301, CheckStatus.FAIL), (-301, CheckStatus.FAIL), (-3600, CheckStatus.FAIL),
])
def test_clock_skew_edges(skew: float, status: CheckStatus) -> None:
    assert run("clock", mod(**{"time.utc_now": at(skew)})).status == status


def test_clock_sync_and_zone() -> None:
    free_running = run("clock", mod(**{"time.w32tm_text": W32TM_LOCAL}))
    assert free_running.status == CheckStatus.WARN and "will drift" in free_running.message
    assert "manualpeerlist" in free_running.remediation
    drifted = run("clock", mod(**{"time.w32tm_text": W32TM_LOCAL, "time.utc_now": at(301)}))
    assert drifted.status == CheckStatus.FAIL and "+301s off" in drifted.message and "CMOS" in drifted.message
    lost = W32TM_OK.replace("Leap Indicator: 0(no warning)", "Leap Indicator: 3(not synchronized)")
    assert run("clock", mod(**{"time.w32tm_text": lost})).status == CheckStatus.FAIL
    assert run("clock", mod(**{"time.w32tm_text": lost}), require_sync=False).status == CheckStatus.WARN
    gone = mod(**{"time.w32tm_text": None, "time.w32tm_error": {"type": "Win32Exception", "message": "x"}})
    assert run("clock", gone).status == CheckStatus.WARN
    assert run("clock", time_zone="W. Europe Standard Time").status == CheckStatus.PASS
    wrong = run("clock", time_zone="Pacific Standard Time")
    assert wrong.status == CheckStatus.FAIL and "Pacific" in wrong.message
    assert run("clock", mod(**{"time.utc_now": "not a date"})).status == CheckStatus.UNKNOWN


# --------------------------------------------------------------------------- dotnet
@pytest.mark.parametrize(("release", "status"), [
    (None, CheckStatus.FAIL), (378389, CheckStatus.FAIL), (379892, CheckStatus.FAIL), (379893, CheckStatus.WARN),
    (394801, CheckStatus.WARN), (394802, CheckStatus.PASS), (533320, CheckStatus.PASS),
])
def test_dotnet_edges(release: int | None, status: CheckStatus) -> None:
    assert run("dotnet", mod(**{"dotnet.release": release})).status == status


def test_dotnet_names_versions() -> None:
    result = run("dotnet", mod(**{"dotnet.release": 379893}))
    assert "4.5.2" in result.message and "4.6.2" in result.message


# --------------------------------------------------------------------------- os-supported
@pytest.mark.parametrize(("change", "status"), [
    ({"os.installation_type": "Server Core"}, CheckStatus.FAIL),
    ({"os.product_type": 1, "os.installation_type": "Client"}, CheckStatus.FAIL),
    ({"os.product_type": 2}, CheckStatus.PASS),  # domain controller
    ({"os.build_number": 7600}, CheckStatus.FAIL),
    ({"os.build_number": 7601}, CheckStatus.PASS),
    ({"os.build_number": 0}, CheckStatus.UNKNOWN),
])
def test_os_supported(change: dict[str, Any], status: CheckStatus) -> None:
    assert run("os-supported", mod(**change)).status == status


# --------------------------------------------------------------------------- not-azure-vm
def test_not_azure_vm() -> None:
    assert run("not-azure-vm", mod(**{"azure.smbios_asset_tag": "7783-7084-3265-9085-8269-3286-77"})).status == CheckStatus.FAIL
    assert run("not-azure-vm", mod(**{"azure.imds_reachable": True, "azure.imds_status": 200})).status == CheckStatus.FAIL
    assert run("not-azure-vm", mod(**{"azure.guest_agent_services": ["WindowsAzureGuestAgent"]})).status == CheckStatus.WARN
    hyperv = mod(**{"azure.manufacturer": "Microsoft Corporation", "azure.model": "Virtual Machine"})
    assert run("not-azure-vm", hyperv).status == CheckStatus.PASS


# --------------------------------------------------------------------------- azure-powershell
def test_azure_powershell_only_with_offline_backup() -> None:
    assert run("azure-powershell").status == CheckStatus.SKIP
    assert run("azure-powershell", offline_backup=True).status == CheckStatus.FAIL
    old = mod(**{"azure_powershell.modules": [{"name": "AzureRM", "version": "3.6.9"}]})
    assert run("azure-powershell", old, offline_backup=True).status == CheckStatus.FAIL
    ok = mod(**{"azure_powershell.modules": [{"name": "AzureRM", "version": "3.7.0"}]})
    assert run("azure-powershell", ok, offline_backup=True).status == CheckStatus.PASS
    az = mod(**{"azure_powershell.modules": [{"name": "Az.Accounts", "version": "2.12.1"}]})
    assert run("azure-powershell", az, offline_backup=True).status == CheckStatus.PASS


# --------------------------------------------------------------------------- vss-writers
def test_vss_writers_failed_and_two_digit_states() -> None:
    text = WRITERS_OK + writer("ASR Writer", "be000cbe-11fe-4426-9c58-531aa6355fc4", "[10] Failed", "Timed out")
    result = run("vss-writers", mod(**{"vss_writers.text": text}))
    assert result.status == CheckStatus.FAIL and "ASR Writer [10] FAILED_AT_THAW" in result.message
    assert run("vss-writers", mod(**{"vss_writers.text": text}), ignore_writers=["ASR Writer"]).status == CheckStatus.PASS
    assert run("vss-writers", mod(**{"vss_writers.text": text}),
               ignore_writers=["{BE000CBE-11FE-4426-9C58-531AA6355FC4}"]).status == CheckStatus.PASS


def test_vss_writers_stable_with_error_fails_and_empty_is_unknown() -> None:
    text = writer("System Writer", "e8132975-6f93-4464-a53e-1050253ae220", "[1] Stable", "Retryable error")
    assert run("vss-writers", mod(**{"vss_writers.text": text})).status == CheckStatus.FAIL
    denied = mod(**{"vss_writers.text": "Error: You don't have the correct permissions to run this command.", "vss_writers.exit_code": 2})
    assert run("vss-writers", denied).status == CheckStatus.UNKNOWN


# --------------------------------------------------------------------------- vss-timeout-events
def test_vss_timeout_events() -> None:
    recent = NOW - timedelta(days=2)
    hit = event("Application", "VSS", 8229, recent, ["0x800423f2, The writer's timeout expired."])
    result = run("vss-timeout-events", with_events(0, [hit]))
    assert result.status == CheckStatus.FAIL and "0x800423F2" in result.message
    old = event("Application", "VSS", 8229, NOW - timedelta(days=8), ["0x800423f2"])
    assert run("vss-timeout-events", with_events(0, [old])).status == CheckStatus.PASS
    edge = event("Application", "VSS", 8229, NOW - timedelta(days=7), ["0x800423f2"])
    assert run("vss-timeout-events", with_events(0, [edge])).status == CheckStatus.FAIL
    other = event("Application", "VSS", 8229, recent, ["0x800423f3"])
    assert run("vss-timeout-events", with_events(0, [other])).status == CheckStatus.WARN
    decimal = event("Application", "VSS", 8229, recent, [], msg="hr = 2147754994")
    assert run("vss-timeout-events", with_events(0, [decimal])).status == CheckStatus.FAIL
    denied = with_events(0, [], {"type": "UnauthorizedAccessException", "message": "denied"})
    assert run("vss-timeout-events", denied).status == CheckStatus.UNKNOWN
    assert run("vss-timeout-events", look_back_days=1, data=with_events(0, [hit])).status == CheckStatus.PASS


# --------------------------------------------------------------------------- shadow-storage
def test_shadow_storage_limit_and_free_space() -> None:
    full = mod(**{"shadow_storage.storages.0.used_bytes": 20 * GB})
    result = run("shadow-storage", full)
    assert result.status == CheckStatus.FAIL and "limit reached" in result.message
    edge = mod(**{"shadow_storage.storages.0.used_bytes": 19 * GB})  # exactly 1 GB room
    assert run("shadow-storage", edge).status == CheckStatus.PASS
    unbounded = mod(**{"shadow_storage.storages.0.used_bytes": 50 * GB, "shadow_storage.storages.0.max_bytes": 2**64 - 1})
    assert run("shadow-storage", unbounded).status == CheckStatus.PASS
    low_disk = mod(**{"volumes.volumes.0.free_space": GB // 2})
    assert "free where" in run("shadow-storage", low_disk).message
    assert run("shadow-storage", mod(**{"shadow_storage.storages": []})).status == CheckStatus.PASS


def test_shadow_storage_events_and_vssadmin_fallback() -> None:
    hit = event("System", "volsnap", 24, NOW - timedelta(hours=3))
    result = run("shadow-storage", with_events(1, [hit]))
    assert result.status == CheckStatus.FAIL and "VolSnap" in result.message
    text = (
        "Shadow Copy Storage association\r\n"
        f"   For volume: (C:){C_VOL}\r\n   Shadow Copy Storage volume: (C:){C_VOL}\r\n"
        "   Used Shadow Copy Storage space: 9.99 GB (5%)\r\n   Allocated Shadow Copy Storage space: 10 GB (5%)\r\n"
        "   Maximum Shadow Copy Storage space: 10 GB (5%)\r\n"
    )
    fallback = mod(**{"shadow_storage": {"source": "vssadmin", "storages": [], "vssadmin_text": text,
                                         "cim_error": {"type": "CimException", "message": "x"}}})
    assert run("shadow-storage", fallback).status == CheckStatus.FAIL
    unreadable = mod(**{"shadow_storage": {"source": "vssadmin", "storages": [], "cim_error": {"type": "CimException"}}})
    assert run("shadow-storage", unreadable).status == CheckStatus.UNKNOWN


# --------------------------------------------------------------------------- efi-lock-events
def test_efi_lock_events() -> None:
    locked = event("Microsoft-Windows-Backup", "Microsoft-Windows-Backup", 517, NOW - timedelta(days=1), ["2155348254"])
    result = run("efi-lock-events", with_events(2, [locked]))
    assert result.status == CheckStatus.FAIL and "0x8078011E" in result.expected
    other = event("Microsoft-Windows-Backup", "Microsoft-Windows-Backup", 517, NOW - timedelta(days=1), ["0x807800C5"])
    assert run("efi-lock-events", with_events(2, [other])).status == CheckStatus.PASS
    missing_log = with_events(2, [], {"type": "EventLogNotFoundException", "message": "no log"})
    assert run("efi-lock-events", missing_log).status == CheckStatus.PASS


def test_events_from_merged_longer_window_are_filtered() -> None:
    data = healthy()
    data["events"]["results"][0]["ids"] = [8229, 8193]
    data["events"]["results"][0]["entries"] = [
        event("Application", "VSS", 8193, NOW - timedelta(days=1), ["0x800423f2"]),  # not our id
        event("Application", "VSS", 8229, NOW - timedelta(days=20), ["0x800423f2"]),  # outside our window
    ]
    assert run("vss-timeout-events", data).status == CheckStatus.PASS


def test_healthy_data_is_not_mutated_between_builders() -> None:
    a = healthy()
    b = copy.deepcopy(a)
    mod(**{"dotnet.release": 1})
    assert a == b


# --------------------------------------------------------------------------- robustness
def test_rule_bug_becomes_one_error_row(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    def broken(*_: Any) -> Any:
        raise ZeroDivisionError("x")

    monkeypatch.setitem(CHECKS, "dotnet", dataclasses.replace(CHECKS["dotnet"], rule=broken))
    result = run("dotnet")
    assert result.status == CheckStatus.ERROR and "ZeroDivisionError" in result.message


def sparse() -> dict[str, Any]:
    """Every probe with its emptiest valid data: nothing installed, nothing listed."""
    return {
        "os": {}, "features": {}, "wsb": {}, "acl": {}, "services": {}, "mars": {}, "connectivity": {},
        "scheduled_tasks": {}, "volumes": {}, "defender": {}, "updates": {},
        "time": {"utc_now": "", "timezone_id": "", "utc_offset_minutes": 0}, "dotnet": {}, "azure": {},
        "azure_powershell": {}, "vss_writers": {}, "shadow_storage": {}, "events": {}, "custom": {},
    }


@pytest.mark.parametrize("check_id", CHECK_ORDER)
def test_sparse_facts_never_crash_a_rule(check_id: str) -> None:
    result = run(check_id, sparse(), offline_backup=True) if check_id == "azure-powershell" else run(check_id, sparse())
    assert "internal error" not in result.message
    assert result.status in {CheckStatus.FAIL, CheckStatus.UNKNOWN, CheckStatus.SKIP, CheckStatus.WARN, CheckStatus.PASS}


# --------------------------------------------------------------------------- real sample texts
SAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "samples"


def sample(name: str) -> str:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"shared sample {name} not available")
    return path.read_text(encoding="utf-8")


def test_vss_timeout_from_real_8229_message() -> None:
    msg = sample("vss_event_8229_en_1.txt").strip()
    hit = event("Application", "VSS", 8229, NOW - timedelta(hours=5), [], msg=msg)
    assert run("vss-timeout-events", with_events(0, [hit])).status == CheckStatus.FAIL


def test_hresults_found_in_real_mars_error_text() -> None:
    text = sample("mars_error_systemstate_8007007b_en_1.txt")
    assert hresult_in_text(0x80780049, [text]) and hresult_in_text(0x8007007B, [text])
    assert not hresult_in_text(0x8078011E, [text])
