"""Compose the remedy script (static text per set of actions) and its ONE JSON argument; parse the answer.

Like `fleetcheck.probes.bundle`: the script depends only on which actions are needed, never on
an inventory or playbook value; paths, names, sizes and peers travel in `args_json`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetcheck.facts import ProbeError
from fleetcheck.probes.bundle import read_ps1 as read_probe_ps1
from fleetcheck.remedies.base import Change

REMEDY_MARKER = "# fleetcheck:remedy=v1"
REMEDY_SCHEMA = "fleetcheck/remedy/v1"
REMEDIES_DIR = Path(__file__).resolve().parent
MAX_OUTPUT_BYTES = 1024 * 1024
DEFAULT_TIMEOUT_S = 300

#: action -> (script file, function); the order is the order of the script's sections.
ACTIONS: dict[str, tuple[str, str]] = {
    "feature": ("feature.ps1", "Invoke-FcFeature"),
    "service": ("service.ps1", "Invoke-FcService"),
    "acl": ("acl.ps1", "Invoke-FcAcl"),
    "clock": ("clock.ps1", "Invoke-FcClock"),
    "shadow_storage": ("shadow_storage.ps1", "Invoke-FcShadowStorage"),
    "defender": ("defender.ps1", "Invoke-FcDefender"),
}


class RemedyOutputError(ValueError):
    """What a host printed for a remedy script is not a remedy report."""


@dataclass(frozen=True)
class RemedyBundle:
    script: str
    args_json: str


def read_ps1(name: str) -> str:
    return (REMEDIES_DIR / name).read_text(encoding="ascii").replace("\r\n", "\n")


@functools.lru_cache(maxsize=64)
def script_for(actions: tuple[str, ...]) -> str:
    """The remedy script for a canonical tuple of action names (pure text, cached)."""
    parts = [REMEDY_MARKER, read_ps1("_preamble.ps1"), read_probe_ps1("_common.ps1")]
    table = ["$fcTable = @{"]
    for action in actions:
        ps1, function = ACTIONS[action]
        parts.append(read_ps1(ps1))
        table.append(f"    '{action}' = '{function}'")
    table.append("}")
    parts += ["\n".join(table) + "\n", read_ps1("_dispatch.ps1")]
    return "\n".join(p.rstrip("\n") for p in parts) + "\n"


def build_remedy_bundle(changes: Sequence[Change], timeout_s: int = DEFAULT_TIMEOUT_S) -> RemedyBundle:
    """The script for the actions these changes need, and their parameters as JSON data."""
    unknown = sorted({c.action for c in changes} - set(ACTIONS))
    if unknown:
        raise ValueError(f"unknown remedy action(s): {', '.join(unknown)}")
    order = list(ACTIONS)
    actions = tuple(sorted({c.action for c in changes}, key=order.index))
    payload = {
        "timeout_s": int(timeout_s),
        "changes": [{"check": c.check_id, "action": c.action, "params": c.params} for c in changes],
    }
    return RemedyBundle(script_for(actions), json.dumps(payload, ensure_ascii=True, separators=(",", ":")))


def is_remedy_script(script: str) -> bool:
    return script.lstrip("\ufeff").startswith(REMEDY_MARKER)


class RemedyResult(BaseModel):
    """What one change did on the host."""

    model_config = ConfigDict(extra="ignore")

    check: str
    action: str
    changed: bool = False
    restart_needed: bool = False
    before: str | None = None
    after: str | None = None
    detail: str = ""
    error: ProbeError | None = None
    duration_ms: int = 0


class RemedyReport(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_: str = Field(alias="schema")
    unsupported: str | None = None
    results: list[RemedyResult] = Field(default_factory=list)


def parse_remedy_output(stdout: str) -> RemedyReport:
    """The remedy report a host printed; raises RemedyOutputError (bounded, strict)."""
    if len(stdout.encode("utf-8", "surrogatepass")) > MAX_OUTPUT_BYTES:
        raise RemedyOutputError(f"remedy output above {MAX_OUTPUT_BYTES} bytes")
    text = stdout.lstrip("\ufeff").strip()
    line = next((ln for ln in reversed(text.splitlines()) if ln.strip().startswith("{")), "")
    try:
        report = RemedyReport.model_validate(json.loads(line))
    except (ValueError, ValidationError) as exc:
        raise RemedyOutputError(f"the host's answer is not a remedy report: {' '.join(str(exc).split())[:200]}") from None
    if report.schema_ != REMEDY_SCHEMA:
        raise RemedyOutputError(f"unsupported remedy schema {report.schema_!r}")
    return report
