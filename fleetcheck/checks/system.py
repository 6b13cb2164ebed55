"""Operating system checks: updates, clock, .NET, supported edition, Azure VM, Azure PowerShell."""

from __future__ import annotations

from datetime import date

from pydantic import Field, model_validator

from fleetcheck.checks.base import (
    CheckDef,
    CheckParams,
    EvalContext,
    Facts,
    NoParams,
    Verdict,
    failed,
    parse_utc,
    passed,
    skipped,
    unknown,
    version_at_least,
    warned,
)
from fleetcheck.checks.numbers import beside, signed_beside
from fleetcheck.parsers.w32tm import parse_w32tm_status
from fleetcheck.probes.schema import (
    AzureData,
    AzurePowershellData,
    DotnetData,
    OsData,
    TimeData,
    UpdatesData,
)
from fleetcheck.results import CheckStatus

AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"
AZURE_AGENT_SERVICES = ("WindowsAzureGuestAgent", "RdAgent", "WindowsAzureTelemetryService")


# --------------------------------------------------------------------------- os-updates
class UpdatesParams(CheckParams):
    max_days_since_update: int = Field(default=60, ge=1, le=3650)
    #: Status when a reboot is pending (a pending reboot is not a failure of the update itself).
    reboot_pending_status: str = Field(default="warn", pattern="^(warn|fail)$")


def os_updates(facts: Facts, p: UpdatesParams, ctx: EvalContext) -> Verdict:
    data = facts.get("updates", UpdatesData)
    dated: list[tuple[date, str]] = []
    for hf in data.hotfixes:
        try:
            if hf.installed_on:
                dated.append((date.fromisoformat(hf.installed_on[:10]), hf.id))
        except ValueError:
            continue
    expected = f"an update within {p.max_days_since_update} days, no reboot pending"
    pending = [k for k, v in data.reboot_pending.model_dump().items() if v]
    if not dated:
        if data.hotfixes:
            return unknown("Installed updates carry no usable date", observed=[h.id for h in data.hotfixes], expected=expected)
        return failed("No installed update is recorded", observed="none", expected=expected)
    newest, kb = max(dated)
    age = (ctx.scan_time.date() - newest).days
    observed = {"newest": kb, "installed_on": newest.isoformat(), "days_ago": age, "reboot_pending": pending}
    if age > p.max_days_since_update:
        return failed(f"Newest update {kb} is {age} days old (limit {p.max_days_since_update})", observed, expected)
    if pending:
        status = CheckStatus.FAIL if p.reboot_pending_status == "fail" else CheckStatus.WARN
        return Verdict(
            status,
            "A reboot is pending (" + ", ".join(pending) + ")",
            observed,
            expected,
            "Restart the server in a maintenance window so pending updates complete before the next backup.",
        )
    return passed(f"Newest update {kb} installed {age} days ago; no reboot pending", observed, expected)


# --------------------------------------------------------------------------- clock
class ClockParams(CheckParams):
    max_skew_s: float = Field(default=300.0, gt=0)
    warn_skew_s: float = Field(default=60.0, gt=0)
    require_sync: bool = True
    #: Windows time zone id the hosts must use (e.g. "W. Europe Standard Time"); empty = any.
    time_zone: str = Field(default="", max_length=128)

    @model_validator(mode="after")
    def _order(self) -> ClockParams:
        if self.warn_skew_s > self.max_skew_s:
            raise ValueError("warn_skew_s must not exceed max_skew_s")
        return self


#: A free-running clock needs a time source, which is a configuration decision, not a resync.
LOCAL_CLOCK_FIX = (
    "Give Windows Time a source: w32tm /config /syncfromflags:domhier /update on a domain member, or "
    "w32tm /config /manualpeerlist:\"PEER,0x9\" /syncfromflags:manual /update, then w32tm /resync "
    "(fleetcheck fix does this only when the playbook names the source: checks.clock.remedy.time_source)."
)


def clock(facts: Facts, p: ClockParams, ctx: EvalContext) -> Verdict:
    data = facts.get("time", TimeData)
    remote = parse_utc(data.utc_now)
    expected = f"skew <= {p.max_skew_s:g}s, synchronized" + (f", time zone {p.time_zone}" if p.time_zone else "")
    if remote is None:
        return unknown(f"Remote time unreadable ({data.utc_now!r})", expected=expected)
    skew = (remote - ctx.scan_time).total_seconds()
    status = parse_w32tm_status(data.w32tm_text or "")
    observed = {
        "skew_s": round(skew, 1),
        "time_zone": data.timezone_id,
        "utc_offset_minutes": data.utc_offset_minutes,
        "synchronized": status.synchronized if status else None,
        "source": status.source if status else None,
    }
    fails: list[str] = []
    warns: list[str] = []
    if abs(skew) > p.max_skew_s:
        fails.append(f"clock is {signed_beside(skew, p.max_skew_s)}s off the scanner (limit {p.max_skew_s:g}s)")
    elif abs(skew) > p.warn_skew_s:
        warns.append(f"clock is {signed_beside(skew, p.warn_skew_s)}s off the scanner (warning above {p.warn_skew_s:g}s)")
    if p.time_zone and data.timezone_id.lower() != p.time_zone.lower():
        fails.append(f"time zone is {data.timezone_id}, not {p.time_zone}")
    if status is None:
        why = data.w32tm_error.type if data.w32tm_error else "w32tm output not recognised"
        warns.append(f"time sync state unknown ({why})")
    elif status.local_clock:
        # The right time is what backups and Kerberos need; a free-running clock is only a
        # risk until it drifts past the limit, which the skew test above already fails.
        warns.append("time source is the local CMOS clock (free running): the clock will drift")
    elif not status.synchronized:
        (fails if p.require_sync else warns).append("time is not synchronized")
    fix = LOCAL_CLOCK_FIX if status is not None and status.local_clock else None
    if fails:
        return failed("; ".join(fails + warns), observed, expected, remediation=fix)
    if warns:
        return warned("; ".join(warns), observed, expected, remediation=fix)
    return passed(f"Clock within {beside(abs(skew), p.warn_skew_s, 0)}s, synchronized with {status.source if status else '?'}", observed, expected)


# --------------------------------------------------------------------------- dotnet
class DotnetParams(CheckParams):
    fail_below_release: int = Field(default=379893, ge=0)  # 4.5.2
    warn_below_release: int = Field(default=394802, ge=0)  # 4.6.2

    @model_validator(mode="after")
    def _order(self) -> DotnetParams:
        if self.fail_below_release > self.warn_below_release:
            raise ValueError("fail_below_release must not exceed warn_below_release")
        return self


#: Minimum Release value of each .NET Framework 4.x version (for display).
DOTNET_RELEASES = [
    (533320, "4.8.1"),
    (528040, "4.8"),
    (461808, "4.7.2"),
    (461308, "4.7.1"),
    (460798, "4.7"),
    (394802, "4.6.2"),
    (394254, "4.6.1"),
    (393295, "4.6"),
    (379893, "4.5.2"),
    (378675, "4.5.1"),
    (378389, "4.5"),
]


def dotnet_version_name(release: int | None) -> str:
    if release is None:
        return "none (below 4.5)"
    return next((name for minimum, name in DOTNET_RELEASES if release >= minimum), "below 4.5")


def dotnet(facts: Facts, p: DotnetParams, ctx: EvalContext) -> Verdict:
    data = facts.get("dotnet", DotnetData)
    observed = {"release": data.release, "version": dotnet_version_name(data.release)}
    expected = f"Release >= {p.warn_below_release} ({dotnet_version_name(p.warn_below_release)})"
    if data.release is None or data.release < p.fail_below_release:
        return failed(
            f".NET Framework {dotnet_version_name(data.release)} is older than {dotnet_version_name(p.fail_below_release)}",
            observed,
            expected,
        )
    if data.release < p.warn_below_release:
        return warned(
            f".NET Framework {dotnet_version_name(data.release)} works but {dotnet_version_name(p.warn_below_release)} or later is now required by Microsoft",
            observed,
            expected,
        )
    return passed(f".NET Framework {dotnet_version_name(data.release)} (Release {data.release})", observed, expected)


# --------------------------------------------------------------------------- os-supported
class OsParams(CheckParams):
    min_build: int = Field(default=7601, ge=0)  # Windows Server 2008 R2 SP1


def os_supported(facts: Facts, p: OsParams, ctx: EvalContext) -> Verdict:
    os_ = facts.get("os", OsData)
    observed = {
        "build": os_.build_number,
        "edition": os_.edition_id,
        "installation_type": os_.installation_type,
        "product_type": os_.product_type,
    }
    expected = f"Windows Server (Desktop Experience), build >= {p.min_build}"
    if os_.product_type == 1:
        return failed("A client OS: system state backup needs Windows Server", observed, expected)
    if "core" in os_.installation_type.lower() or os_.edition_id.lower().endswith("core"):
        return failed(
            "Server Core installation: the MARS agent does not support it",
            observed,
            expected,
            remediation="Use a Server installation with Desktop Experience, or protect this host another way (e.g. MABS/DPM).",
        )
    if os_.build_number and os_.build_number < p.min_build:
        return failed(f"Build {os_.build_number} is older than the supported {p.min_build}", observed, expected)
    if not os_.build_number:
        return unknown("The OS build could not be read", observed, expected)
    return passed(f"Windows Server build {os_.build_number} ({os_.edition_id or os_.installation_type})", observed, expected)


# --------------------------------------------------------------------------- not-azure-vm
def not_azure_vm(facts: Facts, p: NoParams, ctx: EvalContext) -> Verdict:
    az = facts.get("azure", AzureData)
    observed = {
        "asset_tag": az.smbios_asset_tag,
        "imds_reachable": az.imds_reachable,
        "guest_agent_services": az.guest_agent_services,
    }
    expected = "not an Azure VM"
    if (az.smbios_asset_tag or "").strip() == AZURE_ASSET_TAG:
        return failed("This is an Azure VM (SMBIOS asset tag); system state backup is not supported there", observed, expected)
    if az.imds_reachable:
        return failed("This is an Azure VM (instance metadata answered); system state backup is not supported there", observed, expected)
    agents = [s for s in az.guest_agent_services if s in AZURE_AGENT_SERVICES]
    if agents:
        return warned("Azure guest agent services are present: " + ", ".join(agents), observed, expected)
    return passed("Not an Azure VM", observed, expected)


# --------------------------------------------------------------------------- azure-powershell
class AzurePowershellParams(CheckParams):
    offline_backup: bool = False
    minimum_version: str = Field(default="3.7.0", pattern=r"^\d+(\.\d+){1,3}$")


def azure_powershell(facts: Facts, p: AzurePowershellParams, ctx: EvalContext) -> Verdict:
    if not p.offline_backup:
        return skipped("Offline backup is not used (playbook: offline_backup false)")
    mods = facts.get("azure_powershell", AzurePowershellData).modules
    observed = [f"{m.name} {m.version}" for m in mods]
    expected = f"Azure PowerShell >= {p.minimum_version} (AzureRM/Azure) or the Az modules"
    az = [m for m in mods if m.name == "Az" or m.name.startswith("Az.")]
    if az:
        return passed("Az PowerShell modules present: " + ", ".join(observed), observed, expected)
    good = [m for m in mods if version_at_least(m.version, p.minimum_version)]
    if good:
        return passed(f"Azure PowerShell {good[0].version} present", observed, expected)
    if mods:
        return failed(f"Azure PowerShell is older than {p.minimum_version}: " + ", ".join(observed), observed, expected)
    return failed("Azure PowerShell is not installed", "none", expected)


CHECKS = [
    CheckDef(
        id="os-updates",
        title="Operating system updated",
        family="system",
        rule=os_updates,
        params=UpdatesParams,
        requests=lambda p: {"updates": {}},
        severity="medium",
        tags=("os",),
        verifies="The newest installed hotfix is at most max_days_since_update days old and no reboot is pending.",
        why="Many VSS and WSB failures are fixed by cumulative updates; a pending reboot leaves components half replaced.",
        fix="Install the latest cumulative update and restart the server.",
    ),
    CheckDef(
        id="clock",
        title="Clock, sync and time zone",
        family="system",
        rule=clock,
        params=ClockParams,
        requests=lambda p: {"time": {}},
        severity="medium",
        tags=("os", "time"),
        verifies="The host clock is within max_skew_s of the scanning machine, Windows Time is synchronized, and the time zone matches when the playbook names one.",
        why="Backup schedules and authentication to Azure depend on a correct clock and time zone; a large skew makes token requests fail.",
        fix="Point Windows Time at a reliable source (w32tm /config /syncfromflags:domhier /update or a manual peer list), run w32tm /resync, and set the time zone with Set-TimeZone.",
    ),
    CheckDef(
        id="dotnet",
        title=".NET Framework recent enough",
        family="system",
        rule=dotnet,
        params=DotnetParams,
        requests=lambda p: {"dotnet": {}},
        severity="high",
        tags=("os", "dotnet"),
        verifies="The .NET Framework 4 Release value is at least 379893 (4.5.2, fail below) and 394802 (4.6.2, warn below).",
        why="The agent is a .NET application; older frameworks make it fail to start or to talk TLS 1.2 to Azure.",
        fix="Install .NET Framework 4.8 (or at least 4.6.2) and restart.",
    ),
    CheckDef(
        id="os-supported",
        title="Supported Windows Server edition",
        family="system",
        rule=os_supported,
        params=OsParams,
        requests=lambda p: {"os": {}},
        severity="high",
        tags=("os",),
        verifies="The OS is a Windows Server installation with Desktop Experience (not Server Core, not a client) at or above min_build.",
        why="The agent supports system state backup only on full Windows Server installations.",
        fix="Protect unsupported hosts differently (for example with MABS), or move the role to a supported server.",
    ),
    CheckDef(
        id="not-azure-vm",
        title="Not an Azure VM",
        family="system",
        rule=not_azure_vm,
        requests=lambda p: {"azure": {}},
        severity="high",
        tags=("os", "azure"),
        verifies="Neither the SMBIOS asset tag nor the instance metadata service identifies the host as an Azure VM.",
        why="System state backup with the agent is meant for on-premises servers; it is not supported on Azure VMs.",
        fix="Protect Azure VMs with Azure VM backup (snapshot-based) instead of the agent's system state backup.",
    ),
    CheckDef(
        id="azure-powershell",
        title="Azure PowerShell for offline backup",
        family="system",
        rule=azure_powershell,
        params=AzurePowershellParams,
        requests=lambda p: {"azure_powershell": {}} if p.offline_backup else {},
        severity="low",
        tags=("offline",),
        verifies="Azure PowerShell 3.7.0 or later (or the Az modules) is installed; only when the playbook sets offline_backup.",
        why="Offline seeding prepares disks with Azure PowerShell on the source computer; an old version makes it fail.",
        fix="Install-Module Az -Scope AllUsers (or install Azure PowerShell 3.7.0 or later).",
    ),
]
