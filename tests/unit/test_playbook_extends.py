"""`extends:` a playbook changes only what it names; mistakes keep file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcheck.playbook import PlaybookError, load_playbook, parse_playbook


def test_extends_builtin_overrides_only_what_it_names() -> None:
    base = load_playbook("system-state-backup")
    pb = parse_playbook(
        "name: ours\nextends: system-state-backup\nchecks:\n"
        "  scratch-space:\n    params:\n      fail_free_percent: 8\n"
        "  azure-powershell: false\n"
        "  clock:\n    severity: high\n",
        "ours.yml",
    )
    assert list(pb.checks) == list(base.checks)  # every check of the base still runs
    assert pb.checks["scratch-space"].params.fail_free_percent == 8
    assert pb.checks["scratch-space"].params.pass_free_percent == base.checks["scratch-space"].params.pass_free_percent
    assert pb.checks["scratch-space"].severity == base.checks["scratch-space"].severity
    assert pb.checks["azure-powershell"].enabled is False
    assert pb.checks["clock"].severity == "high" and pb.checks["clock"].tags == base.checks["clock"].tags
    assert pb.checks["wsb-feature"] == base.checks["wsb-feature"]
    assert pb.description == base.description


def test_without_extends_only_named_checks_run() -> None:
    pb = parse_playbook("name: three\nchecks:\n  clock:\n  dotnet:\n  wsb-feature:\n", "three.yml")
    assert list(pb.checks) == ["clock", "dotnet", "wsb-feature"]


def test_extends_a_file_relative_to_the_playbook(tmp_path: Path) -> None:
    (tmp_path / "base.yml").write_text("name: base\nchecks:\n  clock:\n    params:\n      max_skew_s: 120\n  dotnet:\n")
    (tmp_path / "site.yml").write_text("name: site\nextends: base.yml\nchecks:\n  clock:\n    params:\n      warn_skew_s: 30\n")
    pb = load_playbook(tmp_path / "site.yml")
    assert list(pb.checks) == ["clock", "dotnet"]
    assert (pb.checks["clock"].params.max_skew_s, pb.checks["clock"].params.warn_skew_s) == (120, 30)


def test_extends_mistakes(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match=r"x.yml, line 2: extends: cannot use 'nope'.*no such built-in playbook"):
        parse_playbook("name: x\nextends: nope\n", "x.yml")
    loop = tmp_path / "loop.yml"
    loop.write_text("name: loop\nextends: loop.yml\n")
    with pytest.raises(PlaybookError, match="more than 5 playbooks deep"):
        load_playbook(loop)
    with pytest.raises(PlaybookError, match=r"line 4: checks.clock.params.max_skew_s"):
        parse_playbook("name: x\nextends: system-state-backup\nchecks:\n  clock: {params: {max_skew_s: -1}}\n", "x.yml")


def test_explain_by_table_number_and_in_any_case() -> None:
    from fleetcheck.checks.registry import CHECK_ORDER
    from fleetcheck.checks.render import render_explain, resolve_check_ref

    assert resolve_check_ref("11") == CHECK_ORDER[10]
    assert resolve_check_ref("WSB-Feature") == "wsb-feature"
    assert resolve_check_ref("2", ["clock", "dotnet"]) == "dotnet"  # a playbook's own numbering
    assert render_explain("SVI-PERMISSION").startswith("svi-permission: ")
    with pytest.raises(KeyError, match="numbers checks 1 to 26"):
        resolve_check_ref("27")
    with pytest.raises(KeyError, match="did you mean dotnet"):
        resolve_check_ref("DOTNETT")
