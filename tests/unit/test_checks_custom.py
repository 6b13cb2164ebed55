"""The custom-check vocabulary and how custom results become check results."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from fleetcheck.checks import EvalContext, evaluate
from fleetcheck.checks.custom import Expectation, resolve, split_path
from fleetcheck.facts import FactsDocument, ProbeError, ProbeOutcome
from fleetcheck.playbook import parse_playbook
from fleetcheck.results import CheckStatus

OUT = {"smb1": False, "build": "10.0.17763", "disk": {"free_pct": 12.5}, "roles": ["AD", "DNS"], "n": "42",
       "odd.key": 1, "nothing": None}


@pytest.mark.parametrize(("path", "value"), [
    ("smb1", False), ("$.disk.free_pct", 12.5), ("roles[1]", "DNS"), ("roles[-1]", "DNS"), ("['odd.key']", 1),
    ("", OUT), ("$", OUT), ("nothing", None),
])
def test_resolve(path: str, value: Any) -> None:
    assert resolve(OUT, path) == value


def test_resolve_missing_and_bad_paths() -> None:
    assert resolve(OUT, "roles[5]") is not None and resolve(OUT, "roles[5]") != "DNS"
    assert Expectation(path="roles[5]", equals="x").check(OUT)[0] is False
    assert Expectation(path="disk.none", equals=1).check(OUT)[2] == "disk.none is not in the output"
    with pytest.raises(ValueError):
        split_path("a..b")
    with pytest.raises(ValueError):
        split_path("a[x]")


@pytest.mark.parametrize(("spec", "holds"), [
    ({"path": "smb1", "equals": False}, True),
    ({"path": "smb1", "equals": 0}, False),  # JSON false is not 0
    ({"path": "nothing", "equals": None}, True),
    ({"path": "disk.free_pct", "at_least": 12.5}, True),
    ({"path": "disk.free_pct", "at_least": 12.6}, False),
    ({"path": "n", "at_least": 42}, True),  # numeric text
    ({"path": "roles", "at_least": 1}, False),  # not a number
    ({"path": "build", "version_at_least": "10.0.14393"}, True),
    ({"path": "build", "version_at_least": "10.0.20348"}, False),
    ({"path": "roles[0]", "one_of": ["AD", "DHCP"]}, True),
    ({"path": "roles[0]", "one_of": ["DHCP"]}, False),
    ({"path": "build", "matches": r"^10\.0\."}, True),
    ({"path": "build", "matches": r"^6\."}, False),
    ({"path": "disk", "matches": "x"}, False),  # objects never match
])
def test_operators(spec: dict[str, Any], holds: bool) -> None:
    assert Expectation.model_validate(spec).check(OUT)[0] is holds


def test_exactly_one_operator() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Expectation(path="a")
    with pytest.raises(ValidationError, match="exactly one"):
        Expectation.model_validate({"path": "a", "equals": 1, "matches": "x"})


PLAYBOOK = """
name: custom
custom_checks:
  - id: custom-smb
    title: SMB1 off
    script: 'ConvertTo-Json @{smb1=$false}'
    expect:
      - path: smb1
        equals: false
      - path: build
        version_at_least: 10.0.14393
    remediation: Turn SMB1 off.
  - id: custom-soft
    script: 'x'
    status_on_failure: warn
    expect: {path: n, at_least: 100}
"""


def custom_facts(results: dict[str, Any]) -> FactsDocument:
    return FactsDocument(probes={"custom": ProbeOutcome(data={"results": results})})


def test_custom_checks_evaluate() -> None:
    pb = parse_playbook(PLAYBOOK, "c.yml")
    out = json.dumps(OUT)
    res = evaluate(custom_facts({"custom-smb": {"output": out}, "custom-soft": {"output": out}}), [pb], EvalContext())
    assert [(r.check_id, r.status) for r in res] == [("custom-smb", CheckStatus.PASS), ("custom-soft", CheckStatus.WARN)]
    assert res[1].remediation and "expected at least 100" in res[1].message

    bad = json.dumps({**OUT, "smb1": True})
    res = evaluate(custom_facts({"custom-smb": {"output": bad}, "custom-soft": {"output": "not json"}}), [pb])
    assert res[0].status == CheckStatus.FAIL and res[0].remediation == "Turn SMB1 off."
    assert res[0].observed == {"smb1": True, "build": "10.0.17763"}
    assert res[1].status == CheckStatus.ERROR and "InvalidJson" in res[1].message


def test_custom_script_errors() -> None:
    pb = parse_playbook(PLAYBOOK, "c.yml")
    res = evaluate(custom_facts({"custom-smb": {"error": {"type": "UnauthorizedAccessException", "message": "no"}}}), [pb])
    assert res[0].status == CheckStatus.UNKNOWN
    assert res[1].status == CheckStatus.ERROR  # no output at all
    whole = FactsDocument(probes={"custom": ProbeOutcome(error=ProbeError(type="ParseException", message="bad"))})
    assert {r.status for r in evaluate(whole, [pb])} == {CheckStatus.ERROR}
