"""Each probe's facts, answered from a simulated machine's state.

One function per probe id, taking the machine, the probe's validated parameters and the
host's clock, returning the data the real probe returns for that machine: same keys, same
shapes (checked against the product's models by the caller), same quirks (a missing feature
is "NotFound", a service absent from the machine is `present: false`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetcheck.lab.machine import (
    CBS_REBOOT_KEY,
    MARS_KEY,
    NDP_KEY,
    SESSION_MANAGER_KEY,
    WU_REBOOT_KEY,
    FactError,
    MachineState,
)
from fleetcheck.lab.probetext import (
    NATIVE_MAX,
    device_id,
    iso,
    render_shadowstorage,
    render_vss_writers,
    render_w32tm,
    utc_offset_minutes,
)
from fleetcheck.probes.schema import CUSTOM_OUTPUT_MAX


def _os(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "caption": m.os.caption,
        "version": m.os.version,
        "build_number": m.os.build_number,
        "ubr": m.os.ubr,
        "product_type": m.os.product_type,
        "installation_type": m.os.installation_type,
        "edition_id": m.os.edition_id,
        "operating_system_sku": m.os.operating_system_sku,
        "architecture": m.os.architecture,
        "last_boot_utc": iso(now - timedelta(hours=m.os.last_boot_hours_ago)),
        "computer_name": m.hostname.upper(),
        "domain": m.domain,
        "part_of_domain": m.domain.upper() != "WORKGROUP",
        "ps_version": m.powershell.version,
    }


def _features(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    if not m.server_manager:
        return {"module_available": False, "features": []}
    states = {k.lower(): v for k, v in m.features.items()}
    out = []
    for name in p["names"]:
        state = states.get(name.lower())
        if state is None:
            out.append({"name": name, "install_state": "NotFound", "installed": False, "display_name": ""})
        else:
            display = "Windows Server Backup" if name.lower() == "windows-server-backup" else name
            out.append(
                {"name": name, "install_state": state, "installed": state == "Installed", "display_name": display}
            )
    return {"module_available": True, "features": out}


def _wsb(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    w = m.wsb
    res: dict[str, Any] = {
        "cmdlets_available": False,
        "cmdlets_error": None,
        "last_job": None,
        "last_job_error": None,
        "summary": None,
    }
    if w.cmdlets == "missing":
        res["cmdlets_error"] = {"type": "CommandNotFoundException", "message": "Get-WBJob is not recognized", "hresult": None}
        return res
    if w.cmdlets == "broken":
        err = w.cmdlets_error or FactError(
            type="FileNotFoundException",
            message="Could not load file or assembly 'Microsoft.Windows.ServerBackup.Commands' or one of its dependencies.",
            hresult=0x80070002,
        )
        res["cmdlets_error"] = err.model_dump()
        return res
    res["cmdlets_available"] = True
    res["last_job_error"] = w.last_job_error.model_dump() if w.last_job_error else None
    job = w.last_job
    if job is not None:
        end = now - timedelta(hours=job.ended_hours_ago)
        start = end - timedelta(minutes=job.duration_minutes)
        res["last_job"] = {
            "job_type": job.job_type,
            "job_state": job.job_state,
            "start_time": iso(start),
            "end_time": iso(end),
            "hresult": job.hresult,
            "detailed_hresult": job.detailed_hresult,
            "error_description": job.error_description,
        }
        ok = job.hresult == 0
        res["summary"] = {
            "last_backup_time": iso(start),
            "last_successful_backup_time": iso(start) if ok else None,
            "next_backup_time": iso(now + timedelta(hours=w.next_backup_in_hours)) if w.next_backup_in_hours else None,
            "number_of_versions": w.number_of_versions,
            "last_backup_result_hr": job.hresult,
            "last_backup_result_detailed_hr": job.detailed_hresult,
            "current_operation_status": "NoOperationInProgress",
        }
    return res


_SID_ALIASES = {
    "SY": "S-1-5-18",
    "BA": "S-1-5-32-544",
    "BU": "S-1-5-32-545",
    "BO": "S-1-5-32-551",
    "CO": "S-1-3-0",
    "AU": "S-1-5-11",
    "WD": "S-1-1-0",
    "LS": "S-1-5-19",
    "NS": "S-1-5-20",
    "AC": "S-1-15-2-1",
    "IU": "S-1-5-4",
}
_RIGHTS = {"FA": 0x1F01FF, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0, "GA": 0x10000000, "GR": 0x80000000,
           "GW": 0x40000000, "GX": 0x20000000, "SD": 0x10000, "RC": 0x20000, "WD": 0x40000, "WO": 0x80000}
_ACE_RE = re.compile(r"\(([^()]*)\)")


def parse_sddl(sddl: str) -> tuple[str | None, list[dict[str, Any]]]:
    """Owner SID and DACL ACEs of an SDDL string, shaped like the acl probe's `aces`."""
    owner = None
    om = re.match(r"O:([A-Z]{2}|S-[0-9-]+)", sddl)
    if om:
        owner = _SID_ALIASES.get(om.group(1), om.group(1))
    dacl = sddl.split("D:", 1)[1] if "D:" in sddl else ""
    dacl = dacl.split("S:", 1)[0]
    aces = []
    for body in _ACE_RE.findall(dacl):
        fields = body.split(";")
        if len(fields) < 6 or fields[0] not in ("A", "D"):
            continue
        flags, rights_txt, sid_txt = fields[1], fields[2], fields[5]
        if rights_txt.lower().startswith("0x"):
            rights = int(rights_txt, 16)
        else:
            rights = 0
            for i in range(0, len(rights_txt), 2):
                rights |= _RIGHTS.get(rights_txt[i : i + 2], 0)
        flag_set = {flags[i : i + 2] for i in range(0, len(flags), 2)}
        aces.append(
            {
                "sid": _SID_ALIASES.get(sid_txt, sid_txt),
                "rights": rights,
                "type": "Allow" if fields[0] == "A" else "Deny",
                "inherited": "ID" in flag_set,
                "inherit_only": "IO" in flag_set,
                "object_inherit": "OI" in flag_set,
                "container_inherit": "CI" in flag_set,
            }
        )
    return owner, aces


def _acl(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    paths = [x for x in p["paths"] if x]
    default = not paths
    if default:
        paths = [m.system_drive + "\\System Volume Information"]
    acls = {k.lower(): v for k, v in m.acls.items()}
    items = []
    for path in paths:
        item: dict[str, Any] = {"path": path, "default_path": default, "exists": True, "sddl": None,
                                "owner_sid": None, "aces": [], "error": None}
        acl = acls.get(path.lower())
        if acl is None:
            item["exists"] = False
        elif acl.error is not None:
            item["error"] = acl.error.model_dump()
        elif acl.sddl is not None:
            owner, aces = parse_sddl(acl.sddl)
            item.update(sddl=acl.sddl, owner_sid=owner, aces=aces)
        items.append(item)
    return {"items": items}


def _services(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    known = {k.lower(): (k, v) for k, v in m.services.items()}
    out = []
    for name in p["names"]:
        hit = known.get(name.lower())
        if hit is None:
            out.append({"name": name, "present": False, "display_name": "", "state": "", "start_mode": "",
                        "delayed_auto_start": None, "start_name": ""})
            continue
        s = hit[1]
        delayed = s.delayed_auto_start if m.os.build_number >= 14393 else None
        out.append({"name": name, "present": True, "display_name": s.display_name, "state": s.state,
                    "start_mode": s.start_mode, "delayed_auto_start": delayed, "start_name": s.start_name})
    return {"services": out}


def _join_path(base: str, child: str) -> str:
    return base.rstrip("\\") + "\\" + child


def _mars(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    def reg_str(key: str, name: str) -> str | None:
        v = m.registry_value(key, name)
        return None if v is None else str(v)

    res: dict[str, Any] = {
        "installed": False,
        "install_path": None,
        "cbengine_path": None,
        "cbengine_present": False,
        "agent_version": None,
        "scratch_location_config": reg_str(MARS_KEY + "\\Config", "ScratchLocation"),
        "scratch_location_provider": reg_str(MARS_KEY + "\\Config\\CloudBackupProvider", "ScratchLocation"),
        "services_present": [s for s in ("obengine",) if any(k.lower() == s for k in m.services)],
    }
    ip = reg_str(MARS_KEY + "\\Setup", "InstallPath")
    if ip:
        exe = _join_path(ip, "bin\\cbengine.exe")
        res.update(installed=True, install_path=ip, cbengine_path=exe)
        f = m.file(exe)
        if f is not None:
            res["cbengine_present"] = True
            parts = (f.version or "0.0.0.0").split(".") + ["0"] * 4
            res["agent_version"] = ".".join(str(int(x) if x.isdigit() else 0) for x in parts[:4])
    return res


def _connectivity(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    c = m.connectivity
    out = []
    for ep in p["endpoints"]:
        verdict = c.default
        for rule in c.rules:
            if fnmatch.fnmatchcase(ep["host"].lower(), rule.host.lower()) and rule.port in (None, ep["port"]):
                verdict = rule.result
                break
        error = {"ok": None, "timeout": "Timeout", "refused": "ConnectionRefused", "dns": "HostNotFound"}[verdict]
        elapsed = {"ok": c.latency_ms, "timeout": p["timeout_ms"], "refused": c.latency_ms, "dns": 12}[verdict]
        out.append({"host": ep["host"], "port": ep["port"], "tcp_ok": verdict == "ok", "error": error,
                    "elapsed_ms": elapsed})
    return {"results": out}


def _effective_policy(policies: dict[str, str]) -> str:
    for scope in ("MachinePolicy", "UserPolicy", "Process", "CurrentUser", "LocalMachine"):
        value = policies.get(scope, "Undefined")
        if value != "Undefined":
            return value
    return "RemoteSigned"  # the Windows Server default since 2012 R2


def _scheduled_tasks(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    policy = dict(m.execution_policy)
    policy["Effective"] = _effective_policy(m.execution_policy)
    res: dict[str, Any] = {"module_available": m.task_scheduler_module, "tasks": [], "execution_policy": policy}
    if not m.task_scheduler_module:
        return res
    want = p["task_path"].lower()
    for t in m.scheduled_tasks.values():
        if t.path.lower() != want:
            continue
        res["tasks"].append({"path": t.path, "name": t.name, "state": t.state, "enabled": t.enabled,
                             "user_id": t.user_id, "user_sid": t.user_sid, "logon_type": t.logon_type,
                             "run_level": t.run_level})
    return res


def _volumes(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"volumes": [v.model_dump() for v in m.volumes.values()]}


def _defender(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    d = m.defender
    res: dict[str, Any] = {"available": False, "reason": None, "exclusion_path": [], "exclusion_process": [],
                           "exclusion_extension": [], "realtime_disabled": None}
    if not d.installed:
        res["reason"] = "Get-MpPreference not found"
        return res
    if d.error is not None:
        res["reason"] = d.error.message
        return res
    res.update(available=True, exclusion_path=list(d.exclusion_path), exclusion_process=list(d.exclusion_process),
               exclusion_extension=list(d.exclusion_extension), realtime_disabled=d.realtime_disabled)
    return res


def _updates(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    hotfixes = []
    for kb, h in m.hotfixes.items():
        day = (now - timedelta(days=h.days_ago)).date()
        raw = h.installed_on_raw if h.installed_on_raw is not None else f"{day.month}/{day.day}/{day.year}"
        parsed = _parse_hotfix_date(raw)
        hotfixes.append({"id": kb, "installed_on": parsed, "installed_on_raw": raw})
    pfr = m.registry_value(SESSION_MANAGER_KEY, "PendingFileRenameOperations")
    reboot = {
        "cbs": m.registry_key(CBS_REBOOT_KEY) is not None,
        "windows_update": m.registry_key(WU_REBOOT_KEY) is not None,
        "pending_file_rename": bool([x for x in (pfr if isinstance(pfr, list) else [pfr]) if x]),
    }
    return {"hotfixes": hotfixes[:500], "reboot_pending": reboot}


def _parse_hotfix_date(raw: str) -> str | None:
    """The probe's ConvertTo-FcHotfixDate: invariant M/d/yyyy, yyyyMMdd, or a hex FILETIME."""
    for fmt in ("%m/%d/%Y", "%Y%m%d"):
        try:
            return datetime.strptime(raw, fmt).strftime("%Y-%m-%d")
        except ValueError:
            continue
    if re.fullmatch(r"[0-9a-fA-F]{16}", raw):
        ticks = int(raw, 16)
        return (datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=ticks // 10)).strftime("%Y-%m-%d")
    return None


def _time(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    t = m.time
    res: dict[str, Any] = {"utc_now": iso(now), "timezone_id": t.timezone_id,
                           "utc_offset_minutes": utc_offset_minutes(m, now), "w32tm_text": None,
                           "w32tm_exit_code": None, "w32tm_error": None}
    if t.w32tm_error is not None:
        res["w32tm_error"] = t.w32tm_error.model_dump()
    else:
        res["w32tm_text"] = (t.w32tm_text if t.w32tm_text is not None else render_w32tm(m, now))[:NATIVE_MAX]
        res["w32tm_exit_code"] = t.w32tm_exit_code
    return res


def _dotnet(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    rel = m.registry_value(NDP_KEY, "Release")
    ver = m.registry_value(NDP_KEY, "Version")
    return {"release": None if rel is None else int(rel), "version": None if ver is None else str(ver)}


def _azure(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    a = m.azure
    agents = [s for s in ("WindowsAzureGuestAgent", "RdAgent") if any(k.lower() == s.lower() for k in m.services)]
    reachable = a.imds == "ok"
    return {
        "smbios_asset_tag": a.smbios_asset_tag.strip() if a.smbios_asset_tag is not None else None,
        "manufacturer": a.manufacturer,
        "model": a.model,
        "imds_reachable": reachable,
        "imds_status": 200 if reachable else None,
        "imds_error": None if reachable else "Timeout",
        "guest_agent_services": agents,
    }


def _azure_powershell(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {"modules": [{"name": n, "version": v} for n, v in m.azure_powershell_modules.items()]}


def _native(text: str, exit_code: int) -> dict[str, Any]:
    return {"text": text[:NATIVE_MAX], "exit_code": exit_code, "truncated": len(text) > NATIVE_MAX}


def _vss_writers(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    text = m.vss.writers_text if m.vss.writers_text is not None else render_vss_writers(m)
    return _native(text, m.vss.exit_code)


def _shadow_storage(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    s = m.shadow_storage
    if s.cim_error is None:
        storages = [
            {"volume_device_id": device_id(m, a.volume), "diff_volume_device_id": device_id(m, a.diff_volume),
             "used_bytes": a.used_bytes, "allocated_bytes": a.allocated_bytes, "max_bytes": a.max_bytes}
            for a in s.associations.values()
        ]
        return {"source": "cim", "storages": storages, "cim_error": None, "vssadmin_text": None,
                "vssadmin_exit_code": None}
    text = s.vssadmin_text if s.vssadmin_text is not None else render_shadowstorage(m)
    return {"source": "vssadmin", "storages": [], "cim_error": s.cim_error.model_dump(),
            "vssadmin_text": text[:NATIVE_MAX], "vssadmin_exit_code": s.vssadmin_exit_code}


_LOG_RECORD_BASE = 48_211


def _events(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    known_logs = {"application", "system", "security", "setup", "microsoft-windows-backup"}
    known_logs |= {e.log.lower() for e in m.events.values()}
    max_msg = p["message_max_chars"]
    left = p["max_total"]
    results = []
    for q in p["queries"]:
        res: dict[str, Any] = {"log": q["log"], "provider": q["provider"], "ids": list(q["ids"]), "entries": [],
                               "error": None}
        if q["log"].lower() not in known_logs:
            res["error"] = {"type": "LogNotFound", "hresult": None,
                            "message": f'There is not an event log on the localhost computer that matches "{q["log"]}".'}
            results.append(res)
            continue
        since = now - timedelta(hours=q["since_hours"])
        hits = []
        for index, e in enumerate(m.events.values()):
            when = now - timedelta(days=e.days_ago, hours=e.hours_ago)
            if e.log.lower() != q["log"].lower() or when < since:
                continue
            if q["provider"] and e.provider.lower() != q["provider"].lower():
                continue
            if q["ids"] and e.id not in q["ids"]:
                continue
            hits.append((when, index, e))
        hits.sort(key=lambda h: h[0], reverse=True)  # Get-WinEvent returns newest first
        cap = min(q["max"], left)
        if cap < 1:
            res["error"] = {"type": "InvalidOperationException", "hresult": 0x80131509,
                            "message": "event budget of this bundle is used up"}
            results.append(res)
            continue
        left -= len(hits[:cap])
        for when, index, e in hits[:cap]:
            res["entries"].append({
                "log": e.log, "provider": e.provider, "id": e.id, "level": e.level, "time_created": iso(when),
                "record_id": _LOG_RECORD_BASE + index, "message": e.message[:max_msg],
                "properties": [x[:256] for x in e.properties[:8]],
            })
        results.append(res)
    return {"results": results}


def _custom(m: MachineState, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for c in p["scripts"]:
        ans = m.custom_probes.get(c["id"])
        if ans is None:
            out[c["id"]] = {"output": None, "error": {
                "type": "NotImplementedInLab", "hresult": None,
                "message": "the lab runs no PowerShell; give this custom probe an answer in custom_probes"}}
        elif ans.error is not None:
            out[c["id"]] = {"output": None, "error": ans.error.model_dump()}
        else:
            out[c["id"]] = {"output": (ans.output or "").strip()[:CUSTOM_OUTPUT_MAX], "error": None}
    return {"results": out}


HANDLERS: dict[str, Callable[[MachineState, dict[str, Any], datetime], dict[str, Any]]] = {
    "os": _os,
    "features": _features,
    "wsb": _wsb,
    "acl": _acl,
    "services": _services,
    "mars": _mars,
    "connectivity": _connectivity,
    "scheduled_tasks": _scheduled_tasks,
    "volumes": _volumes,
    "defender": _defender,
    "updates": _updates,
    "time": _time,
    "dotnet": _dotnet,
    "azure": _azure,
    "azure_powershell": _azure_powershell,
    "vss_writers": _vss_writers,
    "shadow_storage": _shadow_storage,
    "events": _events,
    "custom": _custom,
}

