"""The per-probe models: round trips, custom output parsing, and parity with the PowerShell that
prints them (every field of every data model is written by its probe)."""

from __future__ import annotations

import re
import typing
from types import UnionType

import pytest
from pydantic import BaseModel, ValidationError

from fleetcheck.facts import FactsDocument, ProbeOutcome
from fleetcheck.probes.bundle import read_ps1
from fleetcheck.probes.schema import (
    PROBES,
    AclData,
    CustomResult,
    ServicesData,
    probe_data,
    validate_params,
)


def _models_under(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and every model reachable through its fields."""
    seen: list[type[BaseModel]] = []
    todo = [model]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.append(m)
        for field in m.model_fields.values():
            stack = [field.annotation]
            while stack:
                t = stack.pop()
                if isinstance(t, type) and issubclass(t, BaseModel):
                    todo.append(t)
                elif isinstance(t, UnionType) or typing.get_origin(t) is not None:
                    stack.extend(typing.get_args(t))
    return seen


#: Fields computed on our side, never printed by PowerShell.
LOCAL_ONLY = {("CustomResult", "value")}
#: Models the probes fill from the shared error helper (Get-FcErrorInfo prints type/message/hresult).
SHARED = {"ItemError"}


@pytest.mark.parametrize("probe_id", sorted(PROBES))
def test_probe_prints_every_field_of_its_data_model(probe_id: str) -> None:
    spec = PROBES[probe_id]
    text = read_ps1(spec.ps1) + read_ps1("_common.ps1")
    missing = []
    for model in _models_under(spec.data):
        if model.__name__ in SHARED:
            continue
        for name in model.model_fields:
            if (model.__name__, name) in LOCAL_ONLY:
                continue
            if not re.search(rf"(?<![\w$]){name}\s*=|'{name}'", text):
                missing.append(f"{model.__name__}.{name}")
    assert missing == []


@pytest.mark.parametrize("probe_id", sorted(PROBES))
def test_probe_function_is_defined_in_its_file(probe_id: str) -> None:
    spec = PROBES[probe_id]
    assert re.search(rf"(?m)^function {re.escape(spec.function)} \{{", read_ps1(spec.ps1))


def test_custom_output_is_parsed_as_json_locally() -> None:
    ok = CustomResult(output='{"version": "2.0.9262.0", "n": [1, 2]}')
    assert ok.value == {"version": "2.0.9262.0", "n": [1, 2]} and ok.error is None
    bad = CustomResult(output="Name  Value\n----  -----")
    assert bad.value is None and bad.error is not None and bad.error.type == "InvalidJson"
    failed = CustomResult(error={"type": "RuntimeException", "message": "boom"})  # type: ignore[arg-type]
    assert failed.value is None and failed.error is not None and failed.error.type == "RuntimeException"


def test_data_models_forbid_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        ServicesData.model_validate({"services": [], "surprise": 1})


def test_services_lookup_is_case_insensitive() -> None:
    data = ServicesData.model_validate({"services": [{"name": "RpcSs", "present": True, "state": "Running"}]})
    assert data.get("rpcss") is not None and data.get("RPCSS").state == "Running"  # type: ignore[union-attr]
    assert data.get("VSS") is None


def test_probe_data_reads_typed_data_or_none() -> None:
    doc = FactsDocument(
        probes={
            "acl": ProbeOutcome(data={"items": [{"path": "C:\\System Volume Information", "error": {"type": "UnauthorizedAccessException"}}]}),
            "os": ProbeOutcome(error={"type": "CimException", "message": "x"}),  # type: ignore[arg-type]
        }
    )
    acl = probe_data(doc, "acl")
    assert isinstance(acl, AclData) and acl.items[0].error is not None
    assert acl.items[0].error.type == "UnauthorizedAccessException"
    assert probe_data(doc, "os") is None
    assert probe_data(doc, "dotnet") is None


def test_params_bounds() -> None:
    assert validate_params("events", {"queries": [{"log": "System", "ids": [24, 25]}]}).queries[0].since_hours == 168  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        validate_params("connectivity", {"timeout_ms": 10})
    with pytest.raises(ValidationError):
        validate_params("acl", {"paths": ["x" * 2000]})
    with pytest.raises(KeyError):
        validate_params("nope", {})
