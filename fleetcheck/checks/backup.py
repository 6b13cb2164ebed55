"""Windows Server Backup checks: the feature, its cmdlets, the last job, and SYSTEM's ACL on SVI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field

from fleetcheck.checks.base import (
    CheckDef,
    CheckParams,
    EvalContext,
    Facts,
    NoParams,
    Verdict,
    failed,
    hresult_hex,
    item_denied,
    parse_utc,
    passed,
    skipped,
    unknown,
    warned,
)
from fleetcheck.probes.schema import AclData, AclItem, FeaturesData, WsbData

SYSTEM_SID = "S-1-5-18"
FULL_CONTROL = 0x1F01FF
GENERIC_ALL = 0x10000000


# --------------------------------------------------------------------------- wsb-feature
class FeatureParams(CheckParams):
    feature: str = Field(default="Windows-Server-Backup", min_length=1, max_length=256)


def wsb_feature(facts: Facts, p: FeatureParams, ctx: EvalContext) -> Verdict:
    data = facts.get("features", FeaturesData)
    if not data.module_available:
        return unknown(
            "Feature state could not be read: the ServerManager module is not available",
            observed="ServerManager module missing",
            expected="Installed",
        )
    feat = next((f for f in data.features if f.name.lower() == p.feature.lower()), None)
    if feat is None:
        return unknown(f"Feature {p.feature} was not reported", observed=None, expected="Installed")
    if feat.install_state == "Installed" or (feat.installed and feat.install_state in ("", "Installed")):
        return passed(f"{p.feature} is installed", observed="Installed", expected="Installed")
    if feat.install_state == "InstallPending":
        return warned(
            f"{p.feature} is installed but waits for a reboot",
            observed="InstallPending",
            expected="Installed",
            remediation="Restart the server to finish installing the feature.",
        )
    return failed(f"{p.feature} is not installed ({feat.install_state})", observed=feat.install_state, expected="Installed")


# --------------------------------------------------------------------------- wsb-cmdlets
def wsb_cmdlets(facts: Facts, p: NoParams, ctx: EvalContext) -> Verdict:
    data = facts.get("wsb", WsbData)
    if data.cmdlets_available:
        return passed("Get-WBJob loads and answers", observed="available", expected="available")
    err = data.cmdlets_error
    why = f"{err.type}: {err.message}" if err else "not available"
    if item_denied(err):
        return unknown(f"Get-WBJob could not be run: {why}", observed=why, expected="available")
    return failed(f"The Windows Server Backup cmdlets do not load ({why})", observed=why, expected="available")


# --------------------------------------------------------------------------- wsb-last-job
class LastJobParams(CheckParams):
    #: Warn when the newest job ended longer ago than this (None: any age is fine).
    max_age_days: int | None = Field(default=None, ge=1, le=3650)


def wsb_last_job(facts: Facts, p: LastJobParams, ctx: EvalContext) -> Verdict:
    data = facts.get("wsb", WsbData)
    if not data.cmdlets_available:
        return skipped("No WSB cmdlets to ask for the previous job (see wsb-cmdlets)")
    job = data.last_job
    if job is None and data.last_job_error is not None:
        err = data.last_job_error
        return unknown(
            f"Get-WBJob -Previous 1 failed: {err.type}: {err.message}".rstrip(": "),
            observed=err.type,
            expected="last job succeeded",
            remediation="Scan as a member of Administrators or Backup Operators; if that is the case, repair WSB.",
        )
    if job is None:
        return warned(
            "Windows Server Backup has no previous job on record",
            observed="no job",
            expected="last job succeeded",
            remediation="Run a test system state backup (wbadmin start systemstatebackup) and check it with Get-WBJob -Previous 1.",
        )
    observed: dict[str, Any] = {
        "job_state": job.job_state,
        "end_time": job.end_time,
        "hresult": hresult_hex(job.hresult),
        "detailed_hresult": hresult_hex(job.detailed_hresult),
    }
    if job.hresult != 0:
        detail = f", detailed {hresult_hex(job.detailed_hresult)}" if job.detailed_hresult else ""
        return failed(
            f"The previous WSB job failed with HRESULT {hresult_hex(job.hresult)}{detail}",
            observed=observed,
            expected="HRESULT 0x00000000",
        )
    ended = parse_utc(job.end_time) or parse_utc(job.start_time)
    if p.max_age_days is not None and ended is not None and ctx.scan_time - ended > timedelta(days=p.max_age_days):
        return warned(
            f"The previous WSB job succeeded but is older than {p.max_age_days} days",
            observed=observed,
            expected=f"a successful job within {p.max_age_days} days",
            remediation="Check that backups still run on schedule.",
        )
    return passed("The previous WSB job succeeded", observed=observed, expected="HRESULT 0x00000000")


# --------------------------------------------------------------------------- svi-permission
class SviParams(CheckParams):
    #: Path to verify; empty = System Volume Information of the Windows volume, found remotely.
    path: str = Field(default="", max_length=1024)


def _pick_item(data: AclData, p: SviParams) -> AclItem | None:
    if p.path:
        want = p.path.rstrip("\\").lower()
        return next((i for i in data.items if i.path.rstrip("\\").lower() == want), None)
    return next((i for i in data.items if i.default_path), data.items[0] if data.items else None)


def _grants_full(rights: int) -> bool:
    return (rights & FULL_CONTROL) == FULL_CONTROL or bool(rights & GENERIC_ALL)


def svi_permission(facts: Facts, p: SviParams, ctx: EvalContext) -> Verdict:
    item = _pick_item(facts.get("acl", AclData), p)
    expected = f"Allow {SYSTEM_SID} FullControl"
    if item is None:
        return unknown("The ACL of System Volume Information was not reported", expected=expected)
    if item.error is not None:
        why = f"{item.error.type}: {item.error.message}".rstrip(": ")
        return unknown(
            f"The ACL of {item.path} could not be read ({why})",
            observed=why,
            expected=expected,
            remediation="Scan with an account that is a local administrator to read this ACL.",
        )
    if not item.exists:
        return failed(f"{item.path} does not exist", observed="missing", expected=expected)
    effective = [a for a in item.aces if a.sid == SYSTEM_SID and not a.inherit_only]
    if any(a.type == "Deny" and (a.rights & (FULL_CONTROL | GENERIC_ALL)) for a in effective):
        return failed(
            f"A Deny entry limits SYSTEM on {item.path}",
            observed=[f"{a.type} 0x{a.rights:08X}" for a in effective],
            expected=expected,
        )
    if any(a.type == "Allow" and _grants_full(a.rights) for a in effective):
        return passed(f"SYSTEM has full control on {item.path}", observed="FullControl", expected=expected)
    seen = [f"{a.type} 0x{a.rights:08X}" for a in effective] or "no entry for SYSTEM"
    return failed(f"SYSTEM lacks full control on {item.path}", observed=seen, expected=expected)


CHECKS = [
    CheckDef(
        id="wsb-feature",
        title="Windows Server Backup feature installed",
        family="backup",
        rule=wsb_feature,
        params=FeatureParams,
        requests=lambda p: {"features": {"names": [p.feature]}},
        severity="critical",
        tags=("wsb",),
        verifies="The Windows-Server-Backup feature is in the Installed state.",
        why="The MARS agent takes system state backups through Windows Server Backup; without the feature every system state job fails.",
        fix="Install-WindowsFeature -Name Windows-Server-Backup (or add the feature in Server Manager), then rerun the scan.",
    ),
    CheckDef(
        id="wsb-cmdlets",
        title="Windows Server Backup cmdlets load",
        family="backup",
        rule=wsb_cmdlets,
        requests=lambda p: {"wsb": {}},
        severity="high",
        tags=("wsb",),
        verifies="Get-WBJob can be loaded and called in a remote session.",
        why="When the WSB PowerShell cmdlets are broken, WSB itself is usually damaged and the agent cannot drive it.",
        fix="Reinstall the Windows-Server-Backup feature (Uninstall-WindowsFeature, reboot, Install-WindowsFeature).",
    ),
    CheckDef(
        id="wsb-last-job",
        title="Last Windows Server Backup job succeeded",
        family="backup",
        rule=wsb_last_job,
        params=LastJobParams,
        requests=lambda p: {"wsb": {}},
        severity="high",
        tags=("wsb",),
        verifies="The newest job returned by Get-WBJob -Previous 1 ended with HRESULT 0; warns when no job exists.",
        why="A failing WSB job points at a Windows-side problem that will also break the agent's system state backups.",
        fix="Look up the HRESULT, fix the cause, then run wbadmin start systemstatebackup -backuptarget:X: -quiet and check Get-WBJob -Previous 1.",
    ),
    CheckDef(
        id="svi-permission",
        title="SYSTEM has full control on System Volume Information",
        family="backup",
        rule=svi_permission,
        params=SviParams,
        requests=lambda p: {"acl": {"paths": [p.path] if p.path else []}},
        severity="high",
        tags=("wsb", "acl"),
        verifies="An Allow entry for LocalSystem (S-1-5-18) with full control exists on System Volume Information of the Windows volume.",
        why="Windows Server Backup runs as SYSTEM and keeps its shadow copy data in that folder; without full control the backup fails.",
        fix='Grant it by SID: icacls "C:\\System Volume Information" /grant *S-1-5-18:(OI)(CI)F',
    ),
]
