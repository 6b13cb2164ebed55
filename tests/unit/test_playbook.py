"""Playbook loading: the built-in playbook, request merging, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcheck.checks import CHECK_ORDER, CHECKS, render_checks_table, render_explain
from fleetcheck.playbook import (
    PlaybookError,
    builtin_playbooks,
    load_playbook,
    merge_probe_requests,
    parse_playbook,
)
from fleetcheck.probes.schema import PROBES, validate_params

MINIMAL = "name: mine\nchecks:\n  dotnet:\n"


def error_of(text: str) -> PlaybookError:
    with pytest.raises(PlaybookError) as info:
        parse_playbook(text, "pb.yml")
    return info.value


# --------------------------------------------------------------------------- built-in playbook
def test_builtin_playbook_has_every_check_in_order() -> None:
    pb = load_playbook("system-state-backup")
    assert pb.name == "system-state-backup"
    assert list(pb.checks) == CHECK_ORDER
    assert "system-state-backup" in builtin_playbooks()
    assert pb.checks["azure-powershell"].params.offline_backup is False
    assert pb.checks["mars-version"].params.minimum_version == "2.0.9262.0"
    assert pb.checks["scratch-space"].params.system_state_extra_gb == 30
    assert pb.checks["wsb-feature"].severity == "critical"
    assert pb.custom_checks == []


def test_builtin_playbook_params_equal_the_documented_defaults() -> None:
    pb = load_playbook("system-state-backup")
    for cid, settings in pb.checks.items():
        assert settings.params == CHECKS[cid].params(), cid
        assert settings.severity == CHECKS[cid].severity, cid
        assert settings.tags == list(CHECKS[cid].tags), cid


def test_builtin_playbook_found_through_package_folder() -> None:
    pkg = Path(__file__).resolve().parents[2] / "fleetcheck" / "playbooks" / "system-state-backup.yml"
    assert pkg.is_file()
    assert load_playbook(str(pkg)).name == "system-state-backup"


def test_commented_custom_check_example_is_valid() -> None:
    text = (Path(__file__).resolve().parents[2] / "playbooks" / "system-state-backup.yml").read_text()
    example = [ln[2:] for ln in text.splitlines() if ln.startswith("# ") and ln[2:].startswith(("custom_checks:", "  "))]
    start = next(i for i, ln in enumerate(example) if ln.startswith("custom_checks:"))
    pb = parse_playbook("name: x\n" + "\n".join(example[start:]) + "\n", "example")
    (custom,) = pb.custom_checks
    assert custom.id == "custom-smb1-off" and len(custom.expect) == 2


def test_probe_requests_merge_and_validate_against_probe_schema() -> None:
    req = load_playbook("system-state-backup").probe_requests()
    assert "azure_powershell" not in req  # offline_backup is off
    assert req["services"]["names"] == ["RpcSs", "EventSystem", "SENS", "VSS", "swprv", "obengine"]
    assert len(req["events"]["queries"]) == 3
    assert req["connectivity"]["endpoints"][0]["host"] == "login.microsoftonline.com"
    for pid, params in req.items():
        assert pid in PROBES
        validate_params(pid, params)


def test_merge_probe_requests_of_two_playbooks() -> None:
    a = load_playbook("system-state-backup")
    b = parse_playbook(
        "name: b\nchecks:\n"
        "  mars-service:\n    params: {service: OBEngine2}\n"
        "  vss-timeout-events:\n    params: {look_back_days: 30}\n"
        "  mars-connectivity:\n    params: {endpoints: [backup.example.net], timeout_s: 10}\n"
        "  azure-powershell:\n    params: {offline_backup: true}\n",
        "b.yml",
    )
    req = merge_probe_requests([a, b])
    assert req["services"]["names"][-1] == "OBEngine2" and req["services"]["names"].count("RpcSs") == 1
    vss = [q for q in req["events"]["queries"] if q["log"] == "Application"]
    assert len(vss) == 1 and vss[0]["since_hours"] == 30 * 24
    assert req["connectivity"]["timeout_ms"] == 10_000
    assert {e["host"] for e in req["connectivity"]["endpoints"]} >= {"backup.example.net", "login.windows.net"}
    assert "azure_powershell" in req
    for pid, params in req.items():
        validate_params(pid, params)


def test_custom_checks_join_the_custom_probe_request() -> None:
    pb = parse_playbook(
        "name: c\ncustom_checks:\n  - id: custom-a\n    script: 'ConvertTo-Json 1'\n    expect: {at_least: 1}\n",
        "c.yml",
    )
    assert pb.probe_requests() == {"custom": {"scripts": [{"id": "custom-a", "script": "ConvertTo-Json 1"}]}}
    assert pb.check_ids() == ["custom-a"]


def test_shorthand_entries() -> None:
    pb = parse_playbook("name: s\nchecks:\n  dotnet:\n  clock: false\n  os-updates: true\n", "s.yml")
    assert pb.checks["dotnet"].enabled and pb.checks["os-updates"].enabled
    assert not pb.checks["clock"].enabled
    assert [c.id for c in pb.enabled_checks()] == ["dotnet", "os-updates"]
    assert "time" not in pb.probe_requests()


# --------------------------------------------------------------------------- errors name file and line
def test_unknown_check_id_suggests_close_match() -> None:
    err = error_of("name: x\nchecks:\n  dotnet:\n  scratch-spaces:\n    enabled: true\n")
    assert err.line == 4 and err.key == "checks.scratch-spaces"
    assert "unknown check id" in str(err) and "scratch-space" in str(err) and str(err).startswith("pb.yml, line 4")


def test_bad_param_value_points_at_its_line() -> None:
    err = error_of("name: x\nchecks:\n  scratch-space:\n    params:\n      pass_free_percent: lots\n")
    assert err.line == 5 and err.key == "checks.scratch-space.params.pass_free_percent"


def test_unknown_param_is_rejected_with_hint() -> None:
    err = error_of("name: x\nchecks:\n  clock:\n    params:\n      max_skew: 10\n")
    assert err.line == 5 and "unknown key" in str(err) and "explain" in err.hint


def test_cross_field_param_error() -> None:
    err = error_of("name: x\nchecks:\n  dotnet:\n    params:\n      fail_below_release: 500000\n")
    assert err.line == 4 and "fail_below_release" in err.problem


def test_bad_severity_and_unknown_top_level_key() -> None:
    assert error_of("name: x\nchecks:\n  dotnet:\n    severity: urgent\n").line == 4
    err = error_of("name: x\nchecks:\n  dotnet:\nchekcs: {}\n")
    assert err.line == 4 and err.key == "chekcs"


def test_yaml_syntax_error_has_line() -> None:
    err = error_of("name: x\nchecks:\n  dotnet: [\n  clock:\n")
    assert err.line is not None and "not valid YAML" in str(err)


def test_duplicate_key_is_an_error() -> None:
    err = error_of("name: x\nchecks:\n  dotnet:\n  dotnet:\n")
    assert err.line == 4 and "duplicate" in str(err)


def test_empty_missing_name_and_no_checks() -> None:
    assert "empty" in str(error_of(""))
    assert "required" in str(error_of("checks:\n  dotnet:\n"))
    assert "no checks" in str(error_of("name: x\n"))
    assert "mapping" in str(error_of("- a\n- b\n"))


def test_custom_check_errors() -> None:
    base = "name: x\ncustom_checks:\n  - id: custom-a\n    script: 'x'\n"
    err = error_of(base + "    expect:\n      path: a\n      equals: 1\n      at_least: 2\n")
    assert err.line == 5 and "exactly one" in err.problem
    err = error_of(base + "    expect:\n      - path: a\n        matches: '('\n")
    assert err.line == 7 and "regular expression" in err.problem
    err = error_of(base + "    expect:\n      - path: 'a..b'\n        equals: 1\n")
    assert err.line == 6
    err = error_of("name: x\ncustom_checks:\n  - id: dotnet\n    script: 'x'\n    expect: {equals: 1}\n")
    assert err.line == 3 and "already used" in err.problem
    err = error_of("name: x\ncustom_checks:\n  - id: Bad Id\n    script: 'x'\n    expect: {equals: 1}\n")
    assert err.line == 3
    err = error_of("name: x\ncustom_checks:\n  - id: custom-a\n    expect: {equals: 1}\n")
    assert "required" in err.problem


def test_load_playbook_errors(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="no such built-in playbook"):
        load_playbook("nope")
    with pytest.raises(PlaybookError, match="file not found"):
        load_playbook(str(tmp_path / "missing.yml"))
    bad = tmp_path / "bad.yml"
    bad.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(PlaybookError, match="UTF-8"):
        load_playbook(str(bad))
    good = tmp_path / "good.yml"
    good.write_text(MINIMAL)
    assert load_playbook(good).source == str(good)


# --------------------------------------------------------------------------- checks / explain text
def test_render_checks_table() -> None:
    pb = parse_playbook(MINIMAL + "  clock: false\ncustom_checks:\n  - id: custom-z\n    title: Zed\n    script: x\n    expect: {equals: 1}\n", "m.yml")
    text = render_checks_table([pb])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["id", "enabled", "severity"]
    assert any(ln.startswith("dotnet") and " yes " in ln for ln in lines)
    assert any(ln.startswith("clock") and " no " in ln for ln in lines)
    assert any(ln.startswith("custom-z") and "Zed" in ln for ln in lines)
    every = render_checks_table([])
    assert all(cid in every for cid in CHECK_ORDER)


def test_render_explain_and_unknown_ids() -> None:
    text = render_explain("svi-permission")
    assert "S-1-5-18" in text and "Why it matters" in text and "How to fix" in text and "path:" in text
    for cid in CHECK_ORDER:
        body = render_explain(cid)
        assert CHECKS[cid].verifies in body and CHECKS[cid].why and CHECKS[cid].fix
    with pytest.raises(KeyError, match="dotnet"):
        render_explain("dotnett")
