"""Answer a fleetcheck probe bundle from a simulated machine's state.

`answer_bundle` prints what the real PowerShell bundle prints for the same script and
arguments: the same envelope, the same per-probe shapes (validated with the same models
from `fleetcheck.probes.schema` before returning), native text in the layout of the real
English captures, times from the host's simulated clock. Nothing here touches a network:
connectivity and instance metadata are answered from machine state.

What the bundle carries is read through the product's own contract
(`fleetcheck.probes.bundle.declared_probes` for the probes the script holds,
`read_args` for the JSON argument), never by parsing the PowerShell text.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from fleetcheck.facts import FACTS_SCHEMA, FactsDocument
from fleetcheck.lab.host import LabHost
from fleetcheck.lab.machine import MachineState
from fleetcheck.lab.probefacts import HANDLERS
from fleetcheck.lab.probetext import host_now, iso
from fleetcheck.probes.bundle import BundleArgsError, declared_probes, read_args
from fleetcheck.probes.schema import PROBES, CustomResult

__all__ = ["BundleArgsError", "answer_bundle"]


def _ps_major(version: str) -> int:
    m = re.match(r"\s*(\d+)", version)
    return int(m.group(1)) if m else 5


def _forced_error(host: LabHost, pid: str) -> dict[str, Any] | None:
    forced = host.machine.probe_errors.get(pid)
    if forced is not None:
        return forced.model_dump()
    for spec in host.faults:  # kinds listed in fleetcheck.lab.faults.PROBE_KINDS
        if spec.probe in (pid, "*") and spec.kind in ("probe_error", "probe_denied"):
            if spec.kind == "probe_denied":
                return {"type": "UnauthorizedAccessException", "message": "Access is denied.", "hresult": 0x80070005}
            return {"type": "RuntimeException", "message": "Simulated probe failure.", "hresult": 0x80131501}
    return None


def _validated(pid: str, data: dict[str, Any]) -> dict[str, Any]:
    PROBES[pid].data.model_validate(data)  # one source of truth: fail loudly on drift
    if pid == "custom":
        for res in data["results"].values():
            CustomResult.model_validate(res)
    return data


def _legacy_answer(m: MachineState, now: datetime) -> str:
    v = m.powershell.version
    return (
        '{"schema":"fleetcheck/facts/v1","unsupported":"PowerShell ' + v + '","host":{"computer_name":"'
        + m.hostname.upper() + '","ps_version":"' + v + '","ps_edition":"Desktop","culture":"'
        + m.locale.culture + '","ui_culture":"","collected_at":"' + iso(now) + '"},"probes":{}}'
    )


def _outcome(host: LabHost, pid: str, raw_params: dict[str, Any], carried: tuple[str, ...], now: datetime) -> dict[str, Any]:
    """One probe's entry, as the bundle's dispatch loop writes it."""
    outcome: dict[str, Any] = {}
    forced = _forced_error(host, pid)
    if pid not in carried or pid not in PROBES:
        outcome["error"] = {"type": "ArgumentException", "message": "unknown probe", "hresult": 0x80070057}
    elif forced is not None:
        outcome["error"] = forced
    else:
        params = PROBES[pid].params.model_validate(raw_params).model_dump(mode="json")
        outcome["data"] = _validated(pid, HANDLERS[pid](host.machine, params, now))
    outcome["duration_ms"] = 3 if pid != "connectivity" else 40
    return outcome


def _host_section(m: MachineState, now: datetime) -> dict[str, Any]:
    return {
        "computer_name": m.hostname.upper(),
        "ps_version": m.powershell.version,
        "ps_edition": m.powershell.edition or "Desktop",
        "culture": m.locale.culture,
        "ui_culture": m.locale.ui_culture,
        "collected_at": iso(now),
    }


def answer_bundle(host: LabHost, script: str, args_json: str) -> str:
    """The facts JSON document the real bundle would print on this host.

    Raises `BundleArgsError` when the JSON argument does not match the bundle's contract.
    """
    m = host.machine
    now = host_now(m)
    if _ps_major(m.powershell.version) < 3:
        return _legacy_answer(m, now)
    requested = read_args(args_json)
    carried = declared_probes(script)
    probes = {pid: _outcome(host, pid, raw, carried, now) for pid, raw in requested.items()}
    doc = {"schema": FACTS_SCHEMA, "host": _host_section(m, now), "probes": probes}
    FactsDocument.model_validate(doc)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
