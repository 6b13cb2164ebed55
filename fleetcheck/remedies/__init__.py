"""Remedies: one per fixable check, planned locally, applied by one static script + one JSON argument.

`REMEDIES` maps a check id to its `RemedyDef`; `NO_SAFE_FIX` names the checks `fix` never
changes on its own (an agent upgrade, .NET, OS updates, an Azure VM, a locked EFI partition)
with the reason shown in the plan. Scripts live next to this file (`*.ps1`); `bundle.py`
composes them the way `fleetcheck.probes.bundle` composes the probes.
"""

from __future__ import annotations

from fleetcheck.remedies.base import Change, NoFix, NoOptions, RemedyDef, RemedyOptions
from fleetcheck.remedies.planners import (
    ClockOptions,
    ShadowOptions,
    plan_auto_service,
    plan_av,
    plan_clock,
    plan_feature,
    plan_manual_service,
    plan_mars_service,
    plan_shadow,
    plan_svi,
)

_AUTO = "Set-Service NAME -StartupType Automatic when it is not, then Start-Service NAME (waits up to 60 s for Running)."
_MANUAL = "Set-Service NAME -StartupType Manual when it is Disabled (it starts on demand; fix does not start it)."

REMEDIES: dict[str, RemedyDef] = {
    r.check_id: r
    for r in [
        RemedyDef("wsb-feature", "feature", "Install-WindowsFeature -Name FEATURE (no -Restart: the result's RestartNeeded is reported, "
                  "the host is never restarted).", plan_feature),
        RemedyDef("service-rpcss", "service", _AUTO.replace("NAME", "RpcSs"), plan_auto_service),
        RemedyDef("service-eventsystem", "service", _AUTO.replace("NAME", "EventSystem"), plan_auto_service),
        RemedyDef("service-sens", "service", _AUTO.replace("NAME", "SENS"), plan_auto_service),
        RemedyDef("service-vss", "service", _MANUAL.replace("NAME", "VSS"), plan_manual_service),
        RemedyDef("service-swprv", "service", _MANUAL.replace("NAME", "swprv"), plan_manual_service),
        RemedyDef("mars-service", "service", "Set-Service obengine -StartupType Automatic when it is not, then Start-Service obengine.",
                  plan_mars_service),
        RemedyDef("svi-permission", "acl", "Add one Allow FullControl entry for SYSTEM by SID (S-1-5-18), inherited by subfolders and "
                  "files ((OI)(CI)), to the folder's DACL; no other entry, owner or inheritance setting changes.", plan_svi),
        RemedyDef("clock", "clock", "w32tm /resync /rediscover with the host's current source (starting W32Time if it is stopped); only when the playbook names remedy.time_source: "
                  "set that NTP peer list (W32Time NtpServer, Type NTP), w32tm /config /update, then resync. Time zones are not changed.",
                  plan_clock, ClockOptions),
        RemedyDef("shadow-storage", "shadow_storage", "Set Win32_ShadowStorage.MaxSpace of the system volumes to remedy.max_size "
                  "(percent of the volume or bytes; default 20%), never below the space in use.", plan_shadow, ShadowOptions),
        RemedyDef("av-exclusions", "defender", "Add-MpPreference -ExclusionPath/-ExclusionProcess with only the agent paths and "
                  "processes Defender does not exclude yet.", plan_av),
    ]
}

#: Failing checks with no safe automatic fix: why `fix` leaves them to an admin.
NO_SAFE_FIX: dict[str, str] = {
    "mars-installed": "installing the agent needs the vault credentials and a registration",
    "mars-version": "an agent upgrade is an installer run with its own restart and support window",
    "mars-connectivity": "firewall and proxy changes are outside the host",
    "mars-schedule": "backup schedules belong to the agent's registration",
    "scratch-space": "freeing disk space needs a human decision",
    "wsb-cmdlets": "repairing WSB means removing the feature and restarting",
    "wsb-last-job": "a failed job is history; fix its cause, then run a backup",
    "dotnet": ".NET Framework upgrades need an installer and a restart",
    "os-updates": "OS updates need a maintenance window and restarts",
    "os-supported": "the edition of Windows cannot be changed in place",
    "not-azure-vm": "an Azure VM needs Azure VM backup instead",
    "azure-powershell": "installing modules from the internet is left to the admin",
    "vss-writers": "restarting a writer's service interrupts what it serves",
    "vss-timeout-events": "writer time-outs come from load or other backup software",
    "efi-lock-events": "the EFI partition lock is held by other security or backup software",
}

__all__ = ["NO_SAFE_FIX", "REMEDIES", "Change", "ClockOptions", "NoFix", "NoOptions", "RemedyDef", "RemedyOptions", "ShadowOptions"]
