"""The planners: a failing check plus the host's facts -> the changes, in an admin's words.

Each planner re-reads the facts the check judged (never the check's message), so the plan
names exactly what differs from what the check expects and nothing else; what a planner
cannot change safely becomes a `NoFix` with the reason and the manual remediation.
"""

from __future__ import annotations

import ntpath
import re
from typing import Any

from pydantic import Field, field_validator

from fleetcheck.checks.agent import path_excluded, process_excluded
from fleetcheck.checks.backup import FULL_CONTROL, GENERIC_ALL, SYSTEM_SID
from fleetcheck.checks.base import EvalContext, Facts, parse_utc
from fleetcheck.checks.vss import UNBOUNDED
from fleetcheck.parsers.w32tm import parse_w32tm_status
from fleetcheck.probes.schema import (
    AclData,
    DefenderData,
    FeaturesData,
    MarsData,
    ServicesData,
    ShadowStorageData,
    TimeData,
    VolumesData,
)
from fleetcheck.remedies.base import Change, NoFix, RemedyOptions
from fleetcheck.results import CheckResult

GB = 1024**3
#: Features Windows installs without a restart (the apply step still reports RestartNeeded).
KNOWN_NO_RESTART = {"windows-server-backup": "no restart needed"}
#: Win32_Service StartMode -> the word Set-Service -StartupType takes.
STARTUP_TYPE = {"Auto": "Automatic", "Manual": "Manual", "Disabled": "Disabled"}


# --------------------------------------------------------------------------- wsb-feature
def plan_feature(result: CheckResult, facts: Facts, params: Any, options: RemedyOptions) -> list[Change] | NoFix:
    data = facts.get("features", FeaturesData)
    name = params.feature
    if not data.module_available:
        return NoFix(result.check_id, "the ServerManager module is missing (not a Windows Server?)", result.remediation)
    feat = next((f for f in data.features if f.name.lower() == name.lower()), None)
    if feat is None:
        return NoFix(result.check_id, f"feature {name} is not known to this host", result.remediation)
    if feat.install_state != "Available":
        why = {"Removed": "its payload was removed (Install-WindowsFeature needs -Source)"}.get(feat.install_state, f"it is {feat.install_state}")
        return NoFix(result.check_id, f"{name} cannot be installed as is: {why}", result.remediation)
    return [
        Change(
            result.check_id,
            "feature",
            f"{name}: Available -> Installed, " + (KNOWN_NO_RESTART.get(name.lower()) or "restart as Windows reports it"),
            "Available",
            "Installed",
            {"name": name},
        )
    ]


# --------------------------------------------------------------------------- services
def _service_change(
    check_id: str, name: str, current_mode: str, current_state: str, want_mode: str | None, start: bool
) -> list[Change] | NoFix:
    parts: list[str] = []
    mode_after = current_mode
    if want_mode is not None and current_mode != want_mode:
        parts.append(f"start mode {current_mode or '?'} -> {STARTUP_TYPE.get(want_mode, want_mode)}")
        mode_after = want_mode
    state_after = current_state
    if start and current_state != "Running":
        parts.append(f"start it ({current_state or '?'} -> Running)")
        state_after = "Running"
    if not parts:
        return NoFix(check_id, f"service {name} already has the expected start mode and state")
    return [
        Change(
            check_id,
            "service",
            f"service {name}: " + ", then ".join(parts),
            f"{current_mode}, {current_state}",
            f"{mode_after}, {state_after}",
            {"name": name, "startup_type": STARTUP_TYPE.get(want_mode or "", ""), "start": start and current_state != "Running"},
        )
    ]


def plan_auto_service(result: CheckResult, facts: Facts, params: Any, options: RemedyOptions) -> list[Change] | NoFix:
    svc = facts.get("services", ServicesData).get(params.service)
    if svc is None or not svc.present:
        return NoFix(result.check_id, f"service {params.service} does not exist; reinstall or repair Windows", result.remediation)
    return _service_change(result.check_id, params.service, svc.start_mode, svc.state, "Auto", start=True)


def plan_manual_service(result: CheckResult, facts: Facts, params: Any, options: RemedyOptions) -> list[Change] | NoFix:
    svc = facts.get("services", ServicesData).get(params.service)
    if svc is None or not svc.present:
        return NoFix(result.check_id, f"service {params.service} does not exist; reinstall or repair Windows", result.remediation)
    want = svc.start_mode if svc.start_mode in params.start_modes else params.start_modes[0]
    # Demand-start services start themselves when a shadow copy is made: only the start mode changes.
    return _service_change(result.check_id, params.service, svc.start_mode, svc.state, want, start=False)


def plan_mars_service(result: CheckResult, facts: Facts, params: Any, options: RemedyOptions) -> list[Change] | NoFix:
    if not facts.get("mars", MarsData).installed:
        return NoFix(result.check_id, "the MARS agent is not installed", "Install the agent from https://aka.ms/azurebackup_agent.")
    svc = facts.get("services", ServicesData).get(params.service)
    if svc is None or not svc.present:
        return NoFix(result.check_id, f"service {params.service} does not exist; repair the agent", result.remediation)
    want = None if svc.start_mode == "Auto" else "Auto"
    return _service_change(result.check_id, params.service, svc.start_mode, svc.state, want, start=True)


# --------------------------------------------------------------------------- svi-permission
def plan_svi(result: CheckResult, facts: Facts, params: Any, options: RemedyOptions) -> list[Change] | NoFix:
    data = facts.get("acl", AclData)
    item = None
    if params.path:
        want = params.path.rstrip("\\").lower()
        item = next((i for i in data.items if i.path.rstrip("\\").lower() == want), None)
    else:
        item = next((i for i in data.items if i.default_path), data.items[0] if data.items else None)
    if item is None or item.error is not None or not item.exists:
        return NoFix(result.check_id, "the folder's ACL could not be read or the folder is missing", result.remediation)
    mine = [a for a in item.aces if a.sid == SYSTEM_SID and not a.inherit_only]
    if any(a.type == "Deny" and a.rights & (FULL_CONTROL | GENERIC_ALL) for a in mine):
        return NoFix(
            result.check_id,
            f"a Deny entry for SYSTEM on {item.path} was set on purpose by someone; fix will not remove it",
            "Review the Deny entry with icacls and remove it if it is not needed, then grant SYSTEM full control.",
        )
    return [
        Change(
            result.check_id,
            "acl",
            f"{item.path}: grant SYSTEM Full Control (this folder, subfolders, files)",
            ", ".join(f"{a.type} 0x{a.rights:08X}" for a in mine) or "no entry for SYSTEM",
            "Allow FullControl (OI)(CI)",
            {"path": item.path, "sid": SYSTEM_SID},
        )
    ]


# --------------------------------------------------------------------------- clock
_PEER = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?:,0x[0-9A-Fa-f]{1,2})?"


class ClockOptions(RemedyOptions):
    """`time_source`: the NTP peer list to configure (w32tm's manual peer list syntax), or empty
    to only resynchronize with the source the host already has."""

    time_source: str = Field(default="", max_length=1024)

    @field_validator("time_source")
    @classmethod
    def _peers(cls, v: str) -> str:
        if v and not re.fullmatch(rf"{_PEER}(?: {_PEER})*", v):
            raise ValueError("expected peers like 'time.windows.com,0x9' separated by spaces")
        return v


def plan_clock(result: CheckResult, facts: Facts, params: Any, options: RemedyOptions) -> list[Change] | NoFix:
    assert isinstance(options, ClockOptions)
    data = facts.get("time", TimeData)
    status = parse_w32tm_status(data.w32tm_text or "")
    if params.time_zone and data.timezone_id.lower() != params.time_zone.lower():
        return NoFix(result.check_id, f"the time zone is {data.timezone_id}, not {params.time_zone}; fix does not change time zones",
                     f"Set-TimeZone -Id '{params.time_zone}' in a maintenance window.")
    source = status.source if status is not None else "unknown"
    free_running = status is None or status.local_clock or not status.source
    if options.time_source:
        summary = f"Windows Time: source {source} -> {options.time_source}, then resync"
        after = f"synchronized with {options.time_source.split(',')[0]}"
    elif free_running:
        return NoFix(
            result.check_id,
            f"the time source is {source}: choosing one is a configuration decision (playbook: checks.clock.remedy.time_source)",
            result.remediation,
        )
    else:
        summary = f"Windows Time: resync now with {source} (source unchanged)"
        after = f"synchronized with {source}"
    remote = parse_utc(data.utc_now)
    skew = f"{(remote - EvalContext().scan_time).total_seconds():+.0f}s" if remote else "?"
    return [Change(result.check_id, "clock", summary, f"{skew}, source {source}", after, {"time_source": options.time_source})]


# --------------------------------------------------------------------------- shadow-storage
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|B|KB|MB|GB|TB)?\s*$", re.I)
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": GB, "TB": 1024**4}


class ShadowOptions(RemedyOptions):
    """`max_size`: the new limit, a percentage of the volume ("20%") or a size ("30GB", bytes)."""

    max_size: str | int = "20%"

    @field_validator("max_size")
    @classmethod
    def _size(cls, v: str | int) -> str | int:
        if isinstance(v, int):
            if v <= 0:
                raise ValueError("a size in bytes must be positive")
            return v
        m = _SIZE.match(v)
        if not m or float(m.group(1)) <= 0 or (m.group(2) == "%" and float(m.group(1)) > 100):
            raise ValueError("expected a percentage (1%..100%) or a size such as 30GB or 32212254720")
        return v

    def bytes_for(self, capacity: int) -> int:
        if isinstance(self.max_size, int):
            return self.max_size
        m = _SIZE.match(self.max_size)
        assert m is not None
        number, unit = float(m.group(1)), (m.group(2) or "B").upper()
        if unit == "%":
            return int(capacity * number / 100)
        return int(number * _UNITS[unit])


def plan_shadow(result: CheckResult, facts: Facts, params: Any, options: RemedyOptions) -> list[Change] | NoFix:
    assert isinstance(options, ShadowOptions)
    data = facts.get("shadow_storage", ShadowStorageData)
    volumes = facts.get("volumes", VolumesData).volumes
    by_id = {v.device_id.rstrip("\\").lower(): v for v in volumes}
    min_growth = int(params.min_growth_gb * GB)
    changes: list[Change] = []
    blocked: list[str] = []
    for vol in (v for v in volumes if v.boot_volume or v.system_volume):
        label = vol.drive_letter or vol.name or vol.device_id
        for s in data.storages:
            if s.volume_device_id.rstrip("\\").lower() != vol.device_id.rstrip("\\").lower():
                continue
            used, maximum = s.used_bytes, s.max_bytes
            if maximum == UNBOUNDED or maximum - used >= min_growth:
                continue
            diff = by_id.get(s.diff_volume_device_id.rstrip("\\").lower())
            capacity = vol.capacity or 0
            target = options.bytes_for(capacity)
            if target < used + min_growth:
                blocked.append(f"{label}: the playbook's size {options.max_size} ({target / GB:.2f} GB) leaves less than "
                               f"{params.min_growth_gb:g} GB above the {used / GB:.2f} GB in use")
                continue
            if diff is not None and diff.free_space is not None and target - maximum > diff.free_space:
                blocked.append(f"{label}: growing by {(target - maximum) / GB:.2f} GB needs more than the "
                               f"{diff.free_space / GB:.2f} GB free on the storage volume")
                continue
            changes.append(
                Change(
                    result.check_id,
                    "shadow_storage",
                    f"shadow storage for {label}: limit {maximum / GB:.2f} GB -> {target / GB:.2f} GB "
                    f"({options.max_size}; {used / GB:.2f} GB in use)",
                    f"{maximum}",
                    f"{target}",
                    {"volume": s.volume_device_id, "diff_volume": s.diff_volume_device_id, "max_bytes": target},
                )
            )
    if changes:
        return changes
    if blocked:
        return NoFix(result.check_id, "; ".join(blocked), "Raise checks.shadow-storage.remedy.max_size or free space first.")
    return NoFix(result.check_id, "no shadow storage limit to raise: the failure comes from free space or from "
                 "VolSnap events, which age out of the look-back window", result.remediation)


# --------------------------------------------------------------------------- av-exclusions
def plan_av(result: CheckResult, facts: Facts, params: Any, options: RemedyOptions) -> list[Change] | NoFix:
    mars = facts.get("mars", MarsData)
    defender = facts.get("defender", DefenderData)
    if not mars.installed:
        return NoFix(result.check_id, "the MARS agent is not installed", "")
    if not defender.available:
        return NoFix(result.check_id, f"Microsoft Defender is not available ({defender.reason or 'no answer'})", result.remediation)
    paths = list(params.extra_paths)
    if params.require_bin and mars.install_path:
        paths.append(ntpath.join(mars.install_path, "bin"))
    scratch = mars.scratch_location_config or mars.scratch_location_provider
    if params.require_scratch and scratch:
        paths.append(scratch)
    add_paths = [p for p in paths if not path_excluded(p, defender.exclusion_path)]
    add_procs = [p for p in params.processes if not process_excluded(p, defender.exclusion_process)]
    if not add_paths and not add_procs:
        return NoFix(result.check_id, "Defender already excludes everything the check asks for")
    what = [f"path {p}" for p in add_paths] + [f"process {p}" for p in add_procs]
    return [
        Change(
            result.check_id,
            "defender",
            "Defender: add exclusions " + ", ".join(what),
            f"{len(defender.exclusion_path)} path(s), {len(defender.exclusion_process)} process(es) excluded",
            "+ " + ", ".join(add_paths + add_procs),
            {"paths": add_paths, "processes": add_procs},
        )
    ]
