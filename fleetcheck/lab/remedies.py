"""Apply a fleetcheck remedy script to a simulated machine, answering as Windows would.

The engine hands remedy scripts (marker `# fleetcheck:remedy=v1`) here. Each change of the
JSON argument is applied to the host's `MachineState`, so the next probe bundle sees it and a
second `fix` finds nothing to do; refusals come back the way the real cmdlets word them
(access denied configuring RpcSs, a service that does not start, a feature without its
payload, a resize below the space in use, w32tm without a time source). Faults on the fix
step alone (`fleetcheck.lab.faults.REMEDY_KINDS`) make one change throw or be denied, or the
whole script hang.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from fleetcheck.lab.engine import LabErrorRecord, ScriptOutcome, ScriptRequest
from fleetcheck.lab.faults import REMEDY_KINDS
from fleetcheck.lab.host import FaultSpec, LabHost
from fleetcheck.lab.machine import MachineState
from fleetcheck.lab.probefacts import parse_sddl

REMEDY_SCHEMA = "fleetcheck/remedy/v1"
ACCESS_DENIED = 0x80070005
#: Services whose configuration even an administrator may not change (the SCM answers access denied).
PROTECTED_SERVICES = frozenset({"rpcss"})
#: Features whose installation Windows finishes at the next restart.
RESTART_FEATURES = frozenset({"hyper-v"})
#: Sources that are no source: w32tm /resync has no time data to use.
FREE_RUNNING = ("local cmos clock", "free-running system clock", "vm ic time synchronization provider")
_TABLE_RE = re.compile(r"^    '([a-z_]+)' = 'Invoke-Fc\w+'$", re.M)


class RemedyError(Exception):
    """A change refused the way the real cmdlet refuses it (the dispatcher's catch records it)."""

    def __init__(self, type_: str, message: str, hresult: int | None = None) -> None:
        super().__init__(message)
        self.type, self.message, self.hresult = type_, message, hresult


Result = dict[str, Any]


def _ps_major(version: str) -> int:
    m = re.match(r"\s*(\d+)", version)
    return int(m.group(1)) if m else 5


def _device_id(m: MachineState, ref: str) -> str:
    """A volume reference of the machine YAML ("C:" or a device id) as its device id."""
    if ref.startswith("\\\\?\\"):
        return ref
    letter = ref.rstrip("\\").upper()
    return next((v.device_id for v in m.volumes.values() if (v.drive_letter or "").upper() == letter), ref)


def _feature(m: MachineState, p: dict[str, Any]) -> Result:
    name = str(p.get("name", ""))
    if not m.server_manager:
        raise RemedyError("CommandNotFoundException", "The term 'Get-WindowsFeature' is not recognized as the name of a cmdlet, "
                          "function, script file, or operable program.")
    key = next((k for k in m.features if k.lower() == name.lower()), None)
    if key is None:
        raise RemedyError("ArgumentException", f"no feature named {name}")
    state = m.features[key]
    if state == "Installed":
        return {"changed": False, "before": state, "after": state, "detail": "already installed"}
    if state == "Removed":
        raise RemedyError("Exception", "The request to add or remove features on the specified server failed. Installation of one "
                          "or more roles, role services, or features failed. The source files could not be found.", 0x800F081F)
    restart = key.lower() in RESTART_FEATURES
    m.features[key] = "InstallPending" if restart else "Installed"
    if key.lower() == "windows-server-backup" and m.wsb.cmdlets == "missing":
        m.wsb.cmdlets = "ok"  # the feature brings the WindowsServerBackup module (Get-WBJob)
    return {"changed": True, "restart_needed": restart, "before": state, "after": m.features[key],
            "detail": "exit code " + ("SuccessRestartRequired" if restart else "Success")}


_MODES = {"Automatic": "Auto", "Manual": "Manual", "Disabled": "Disabled"}


def _service(m: MachineState, p: dict[str, Any]) -> Result:
    name = str(p.get("name", ""))
    key = next((k for k in m.services if k.lower() == name.lower()), None)
    if key is None:
        raise RemedyError("ArgumentException", f"no service named {name}")
    svc = m.services[key]
    before = f"{svc.start_mode}, {svc.state}"
    changed = False
    want = _MODES.get(str(p.get("startup_type") or ""))
    if want is not None and svc.start_mode != want:
        if key.lower() in PROTECTED_SERVICES:
            raise RemedyError("ServiceCommandException", f"Service '{svc.display_name} ({key})' cannot be configured due to the "
                              "following error: Access is denied", ACCESS_DENIED)
        svc.start_mode = want
        changed = True
    if p.get("start") and svc.state != "Running":
        if svc.start_mode == "Disabled" or svc.start_error is not None:
            raise RemedyError("InvalidOperationException", f"Cannot start service {key} on computer '.'."
                              + (f" {svc.start_error}" if svc.start_error else ""), 0x80131509)
        svc.state = "Running"
        changed = True
    return {"changed": changed, "before": before, "after": f"{svc.start_mode}, {svc.state}"}


def _inherited(ace: str) -> bool:
    flags = ace.strip("()").split(";")[1] if ace.count(";") >= 1 else ""
    return "ID" in {flags[i : i + 2] for i in range(0, len(flags), 2)}


def _access_sddl(sddl: str) -> str:
    return "D:" + sddl.split("D:", 1)[1] if "D:" in sddl else "D:"


def _acl(m: MachineState, p: dict[str, Any]) -> Result:
    path = str(p.get("path", ""))
    sid = str(p.get("sid", ""))
    key = next((k for k in m.acls if k.lower() == path.lower()), None)
    if key is None:
        raise RemedyError("DirectoryNotFoundException", f"no folder {path}")
    acl = m.acls[key]
    if acl.error is not None:
        raise RemedyError("UnauthorizedAccessException", "Attempted to perform an unauthorized operation.", ACCESS_DENIED)
    sddl = acl.sddl or "D:"
    _, aces = parse_sddl(sddl)
    alias = "SY" if sid == "S-1-5-18" else sid
    if any(a["sid"] == sid and a["type"] == "Allow" and a["rights"] & 0x1F01FF == 0x1F01FF and not a["inherit_only"] for a in aces):
        return {"changed": False, "before": _access_sddl(sddl), "after": _access_sddl(sddl), "detail": "SYSTEM already has full control"}
    # AddAccessRule puts an explicit Allow after the explicit entries already there, before inherited ones.
    head, _, dacl = sddl.partition("D:")
    flags = re.match(r"^[A-Z]*", dacl)
    prefix = flags.group(0) if flags else ""
    body = dacl[len(prefix) :]
    entries = re.findall(r"\([^()]*\)", body)
    explicit = [e for e in entries if not _inherited(e)]
    inherited = [e for e in entries if _inherited(e)]
    new = f"(A;OICI;FA;;;{alias})"
    acl.sddl = f"{head}D:{prefix}{''.join(explicit)}{new}{''.join(inherited)}"
    return {"changed": True, "before": _access_sddl(sddl), "after": _access_sddl(acl.sddl)}


def _clock(m: MachineState, p: dict[str, Any]) -> Result:
    w = m.time.w32tm
    before = w.source
    changed = False
    peers = str(p.get("time_source") or "")
    if peers and w.source != peers:
        w.source = peers
        changed = True
    if w.source.lower() in FREE_RUNNING:
        raise RemedyError("InvalidOperationException", "w32tm /resync failed: Sending resync command to local computer\r\n"
                          "The computer did not resync because no time data was available.")
    m.time.clock_offset_seconds = 0.0
    w.leap_indicator, w.stratum, w.last_sync_minutes_ago, w.poll_interval = 0, 3, 0.0, 10
    w.root_delay, w.root_dispersion = "0.0312500s", "0.1093750s"
    w.reference_id = "0x0A000105 (source IP:  10.0.1.5)"
    m.time.w32tm_text = None  # the status is rendered from the state again
    return {"changed": changed, "before": before, "after": w.source, "detail": "resynchronized"}


def _shadow_storage(m: MachineState, p: dict[str, Any]) -> Result:
    volume = str(p.get("volume", ""))
    want = int(p.get("max_bytes", 0))
    assoc = next((a for a in m.shadow_storage.associations.values() if _device_id(m, a.volume).lower() == volume.lower()), None)
    if assoc is None:
        raise RemedyError("ArgumentException", f"no shadow storage association for {volume}")
    before = str(assoc.max_bytes)
    if assoc.max_bytes == want:
        return {"changed": False, "before": before, "after": before, "detail": "limit already set"}
    if want < assoc.used_bytes:
        raise RemedyError("InvalidOperationException", f"refused: {want} bytes is below the {assoc.used_bytes} bytes in use")
    assoc.max_bytes = want
    return {"changed": True, "before": before, "after": str(want)}


def _defender(m: MachineState, p: dict[str, Any]) -> Result:
    d = m.defender
    if not d.installed:
        raise RemedyError("CommandNotFoundException", "The term 'Get-MpPreference' is not recognized as the name of a cmdlet, "
                          "function, script file, or operable program.")
    if d.error is not None:
        raise RemedyError(d.error.type, d.error.message, d.error.hresult)
    before = f"{len(d.exclusion_path)} path(s), {len(d.exclusion_process)} process(es) excluded"
    add_paths = [x for x in map(str, p.get("paths") or []) if x and x.lower() not in {e.lower() for e in d.exclusion_path}]
    add_procs = [x for x in map(str, p.get("processes") or []) if x and x.lower() not in {e.lower() for e in d.exclusion_process}]
    d.exclusion_path += add_paths
    d.exclusion_process += add_procs
    after = f"{len(d.exclusion_path)} path(s), {len(d.exclusion_process)} process(es) excluded"
    return {"changed": bool(add_paths or add_procs), "before": before, "after": after}


_ACTIONS: dict[str, Callable[[MachineState, dict[str, Any]], Result]] = {
    "feature": _feature,
    "service": _service,
    "acl": _acl,
    "clock": _clock,
    "shadow_storage": _shadow_storage,
    "defender": _defender,
}


def _fault(host: LabHost, check: str, action: str) -> FaultSpec | None:
    """The first remedy fault aimed at this change (by check id, action or `*`), counting `nth`."""
    for index, spec in enumerate(host.faults):
        if spec.kind not in REMEDY_KINDS or (spec.probe or "*") not in (check, action, "*"):
            continue
        hits = host.fault_hits.get(index, 0) + 1
        host.fault_hits[index] = hits
        if spec.nth and hits != spec.nth:
            continue
        if spec.probability is not None and host.rng.random() >= spec.probability:
            continue
        return spec
    return None


def _error(type_: str, message: str, hresult: int | None) -> dict[str, Any]:
    return {"type": type_, "message": message, "hresult": hresult}


async def answer_remedy(host: LabHost, request: ScriptRequest) -> tuple[list[Any], ScriptOutcome]:
    """What the remedy script prints on this host, after changing its machine state."""
    m = host.machine
    if _ps_major(m.powershell.version) < 3:
        doc: dict[str, Any] = {"schema": REMEDY_SCHEMA, "unsupported": f"PowerShell {m.powershell.version}", "results": []}
        return [json.dumps(doc)], ScriptOutcome()
    try:
        args = json.loads(str(request.parameters.get("ArgsJson", "")))
        changes = list(args["changes"])
    except (ValueError, KeyError, TypeError) as exc:
        record = LabErrorRecord(message=f"Cannot bind the ArgsJson argument: {exc}", exception_type="System.ArgumentException",
                                category="InvalidArgument", reason="ArgumentException",
                                fully_qualified_error_id="System.ArgumentException,Microsoft.PowerShell.Commands.ConvertFromJsonCommand")
        return [], ScriptOutcome(terminating=record, exit_code=1)
    table = frozenset(_TABLE_RE.findall(request.script))
    results = []
    for change in changes:
        check, action = str(change.get("check", "")), str(change.get("action", ""))
        res: dict[str, Any] = {"check": check, "action": action, "changed": False, "restart_needed": False,
                               "before": None, "after": None, "detail": "", "error": None, "duration_ms": 4}
        fault = _fault(host, check, action)
        if fault is not None and fault.kind == "remedy_hang":
            await asyncio.Event().wait()  # never set: the shell's end cancels it
        try:
            if action not in table or action not in _ACTIONS:
                raise RemedyError("ArgumentException", "unknown remedy action", 0x80070057)
            if fault is not None and fault.kind == "remedy_denied":
                raise RemedyError("UnauthorizedAccessException", "Access is denied.", ACCESS_DENIED)
            if fault is not None:
                raise RemedyError("RuntimeException", "Simulated remedy failure.", 0x80131501)
            res.update(_ACTIONS[action](m, dict(change.get("params") or {})))
        except RemedyError as exc:
            res["error"] = _error(exc.type, exc.message, exc.hresult)
        results.append(res)
    doc = {"schema": REMEDY_SCHEMA, "host": {"computer_name": m.hostname.upper(), "ps_version": m.powershell.version},
           "results": results}
    return [json.dumps(doc, ensure_ascii=False, separators=(",", ":"))], ScriptOutcome()
