"""Per-probe parameter and data models: what each PowerShell probe accepts and prints.

One source of truth for three users: the PowerShell probes print these shapes, the lab's
simulated probes (`fleetcheck.lab.simprobes`) answer them, and the rules read them.

For rule authors (how to read facts):

    from fleetcheck.probes.schema import PROBES, probe_data
    outcome = facts.probes["services"]            # fleetcheck.facts.ProbeOutcome
    if outcome.error: ...                          # the probe failed -> result "error"
    data = probe_data(facts, "services")          # -> ServicesData (typed), or None if absent/error

Conventions (all probes):
- dates/times are ISO 8601 strings in UTC (``2024-03-16T04:30:00.0000000Z``) or ``None``;
  calendar dates without a time (hotfix ``installed_on``) are ``YYYY-MM-DD``.
- HRESULTs are unsigned 32-bit ints (0..0xFFFFFFFF); format with ``f"0x{hr:08X}"``.
- enums are names (``"Running"``, ``"Auto"``, ``"Installed"``), never numbers, unless the
  field says ``int``. Sizes are bytes (int).
- a sub-item that could not be read carries ``error: ItemError`` (e.g. an ACL path with
  ``error.type == "UnauthorizedAccessException"``); the rules turn that into ``unknown``.
- native text (``vss_writers.text``, ``time.w32tm_text``, ``shadow_storage.vssadmin_text``) is
  returned raw (UTF-8 decoded, CRLF kept); parse it by numbers/GUIDs/positions.

Error type names you can rely on (ItemError.type / ProbeError.type):
- "UnauthorizedAccessException" (hresult 0x80070005): access denied -> rule result `unknown`.
- "CommandNotFoundException": a cmdlet/module is absent (wsb.cmdlets_error).
- "LogNotFound": events query for a log that does not exist (nothing was ever logged there).
- "TimeoutException": a bounded cmdlet or native command ran out of time.
- "ArgumentException" + message "unknown probe": the script lacks that probe.
- "SchemaError" (set by bundle.parse_facts): the probe's data did not match its model.
- "InvalidJson" (CustomResult): a custom script printed something that is not JSON.

Probe ids: os, features, wsb, acl, services, mars, connectivity, scheduled_tasks, volumes,
defender, updates, time, dotnet, azure, azure_powershell, vss_writers, shadow_storage,
events, custom. Changes to this file are additive only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from fleetcheck.facts import FactsDocument

# Bounds shared by probes and params (a hostile or broken playbook cannot ask for unbounded work).
MAX_NAME = 256
MAX_PATH = 1024
MAX_ITEMS = 64
MAX_SCRIPT = 32_000
MESSAGE_MAX = 1024


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ItemError(_Model):
    """Why one item of a probe could not be read (the probe itself still succeeded)."""

    type: str
    message: str = ""
    hresult: int | None = None


Name = Field(min_length=1, max_length=MAX_NAME)


class EmptyParams(_Model):
    """A probe that takes no parameters."""


# --------------------------------------------------------------------------- os
class OsData(_Model):
    """Win32_OperatingSystem + the CurrentVersion registry key."""

    caption: str = ""  # localized marketing name; do not parse words from it
    version: str = ""  # "10.0.17763"
    build_number: int = 0
    ubr: int | None = None  # update build revision (CurrentVersion\UBR)
    product_type: int = 3  # 1 workstation, 2 domain controller, 3 server
    installation_type: str = ""  # "Server", "Server Core", "Client" (registry InstallationType)
    edition_id: str = ""  # "ServerStandard", "ServerDatacenter", ...
    operating_system_sku: int | None = None
    architecture: str = ""  # "64-bit" (may be localized on some builds; prefer pointer size)
    last_boot_utc: str | None = None
    computer_name: str = ""
    domain: str = ""
    part_of_domain: bool = False
    ps_version: str = ""


# --------------------------------------------------------------------------- features
class FeaturesParams(_Model):
    names: list[str] = Field(default_factory=lambda: ["Windows-Server-Backup"], max_length=MAX_ITEMS)
    timeout_ms: int = Field(default=120_000, ge=1_000, le=600_000)

    @model_validator(mode="after")
    def _bounded(self) -> FeaturesParams:
        _check_names(self.names)
        return self


class FeatureState(_Model):
    name: str
    install_state: str  # Installed | Available | Removed | InstallPending | UninstallPending | NotFound
    installed: bool = False
    display_name: str = ""  # localized


class FeaturesData(_Model):
    module_available: bool = True  # ServerManager present (False on client SKUs)
    features: list[FeatureState] = Field(default_factory=list)


# --------------------------------------------------------------------------- wsb
class WsbJob(_Model):
    """Get-WBJob -Previous 1."""

    job_type: str = ""
    job_state: str = ""
    start_time: str | None = None
    end_time: str | None = None
    hresult: int = 0
    detailed_hresult: int = 0
    error_description: str = ""  # localized


class WsbSummary(_Model):
    """Get-WBSummary."""

    last_backup_time: str | None = None
    last_successful_backup_time: str | None = None
    next_backup_time: str | None = None
    number_of_versions: int = 0
    last_backup_result_hr: int = 0
    last_backup_result_detailed_hr: int = 0
    current_operation_status: str = ""


class WsbData(_Model):
    cmdlets_available: bool = False  # Get-WBJob could be loaded and called
    cmdlets_error: ItemError | None = None  # why not (CommandNotFoundException, ...)
    last_job: WsbJob | None = None  # None: no previous job recorded
    last_job_error: ItemError | None = None  # Get-WBJob loaded but failed to answer
    summary: WsbSummary | None = None


class WsbParams(_Model):
    timeout_ms: int = Field(default=60_000, ge=1_000, le=600_000)


# --------------------------------------------------------------------------- acl
class AclParams(_Model):
    """Paths to read. Empty = the Windows volume's System Volume Information, resolved
    remotely from $env:SystemDrive (the checker does not guess the drive letter)."""

    paths: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _bounded(self) -> AclParams:
        for p in self.paths:
            if not p or len(p) > MAX_PATH:
                raise ValueError(f"path must be 1..{MAX_PATH} characters")
        return self


class Ace(_Model):
    sid: str  # "S-1-5-18"
    rights: int  # access mask, unsigned (FullControl 0x1F01FF, GENERIC_ALL 0x10000000)
    type: Literal["Allow", "Deny"]
    inherited: bool = False
    inherit_only: bool = False
    object_inherit: bool = False
    container_inherit: bool = False


class AclItem(_Model):
    path: str
    default_path: bool = False  # True when resolved from $env:SystemDrive
    exists: bool = True
    sddl: str | None = None
    owner_sid: str | None = None
    aces: list[Ace] = Field(default_factory=list)
    error: ItemError | None = None  # e.g. UnauthorizedAccessException -> rule says "unknown"


class AclData(_Model):
    items: list[AclItem] = Field(default_factory=list)


# --------------------------------------------------------------------------- services
DEFAULT_SERVICES = ["RpcSs", "EventSystem", "SENS", "VSS", "swprv", "obengine", "wbengine", "W32Time"]


class ServicesParams(_Model):
    names: list[str] = Field(default_factory=lambda: list(DEFAULT_SERVICES), max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _bounded(self) -> ServicesParams:
        _check_names(self.names)
        return self


class ServiceState(_Model):
    name: str  # as requested
    present: bool
    display_name: str = ""  # localized
    state: str = ""  # Win32_Service.State: Running, Stopped, Start Pending, ...
    start_mode: str = ""  # Auto, Manual, Disabled, Boot, System
    delayed_auto_start: bool | None = None
    start_name: str = ""  # LocalSystem, NT AUTHORITY\LocalService, ...


class ServicesData(_Model):
    services: list[ServiceState] = Field(default_factory=list)

    def get(self, name: str) -> ServiceState | None:
        low = name.lower()
        return next((s for s in self.services if s.name.lower() == low), None)


# --------------------------------------------------------------------------- mars
class MarsData(_Model):
    """HKLM\\SOFTWARE\\Microsoft\\Windows Azure Backup + cbengine.exe version."""

    installed: bool = False  # Setup key with InstallPath present
    install_path: str | None = None
    cbengine_path: str | None = None
    cbengine_present: bool = False
    agent_version: str | None = None  # cbengine.exe FileVersion, e.g. "2.0.9262.0"
    scratch_location_config: str | None = None  # ...\Config  ScratchLocation
    scratch_location_provider: str | None = None  # ...\Config\CloudBackupProvider  ScratchLocation
    services_present: list[str] = Field(default_factory=list)  # of obengine, ...


# --------------------------------------------------------------------------- connectivity
class Endpoint(_Model):
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=443, ge=1, le=65535)


class ConnectivityParams(_Model):
    endpoints: list[Endpoint] = Field(default_factory=list, max_length=MAX_ITEMS)
    timeout_ms: int = Field(default=3_000, ge=100, le=30_000)


class EndpointResult(_Model):
    host: str
    port: int
    tcp_ok: bool
    error: str | None = None  # SocketException name / "Timeout"
    elapsed_ms: int = 0


class ConnectivityData(_Model):
    results: list[EndpointResult] = Field(default_factory=list)


# --------------------------------------------------------------------------- scheduled tasks
class ScheduledTasksParams(_Model):
    task_path: str = Field(default="\\Microsoft\\OnlineBackup\\", min_length=1, max_length=MAX_PATH)


class TaskInfo(_Model):
    path: str
    name: str
    state: str  # Ready | Disabled | Running | Queued | Unknown
    enabled: bool
    user_id: str = ""  # principal as stored (may be a name or a SID)
    user_sid: str | None = None  # resolved remotely when possible ("S-1-5-18" = SYSTEM)
    logon_type: str = ""
    run_level: str = ""  # Limited | Highest


class ScheduledTasksData(_Model):
    module_available: bool = True
    tasks: list[TaskInfo] = Field(default_factory=list)
    #: Get-ExecutionPolicy -List: scope name -> policy name (MachinePolicy, UserPolicy, Process,
    #: CurrentUser, LocalMachine), plus "Effective".
    execution_policy: dict[str, str] = Field(default_factory=dict)


# --------------------------------------------------------------------------- volumes
class VolumeInfo(_Model):
    device_id: str  # \\?\Volume{GUID}\
    drive_letter: str | None = None  # "C:"
    name: str = ""  # "C:\" or the GUID path
    label: str | None = None
    file_system: str | None = None
    capacity: int | None = None  # bytes
    free_space: int | None = None  # bytes
    drive_type: int = 3  # 2 removable, 3 local, 4 network, 5 cd
    boot_volume: bool = False
    system_volume: bool = False


class VolumesData(_Model):
    volumes: list[VolumeInfo] = Field(default_factory=list)


# --------------------------------------------------------------------------- defender
class DefenderData(_Model):
    available: bool = False  # Get-MpPreference exists and answered
    reason: str | None = None  # why not available (module missing, service stopped, ...)
    exclusion_path: list[str] = Field(default_factory=list)
    exclusion_process: list[str] = Field(default_factory=list)
    exclusion_extension: list[str] = Field(default_factory=list)
    realtime_disabled: bool | None = None


# --------------------------------------------------------------------------- updates
class HotFix(_Model):
    id: str  # "KB5034127"
    installed_on: str | None = None  # YYYY-MM-DD (None when Windows recorded no usable date)
    installed_on_raw: str = ""


class RebootPending(_Model):
    cbs: bool = False  # Component Based Servicing\RebootPending
    windows_update: bool = False  # WindowsUpdate\Auto Update\RebootRequired
    pending_file_rename: bool = False  # Session Manager PendingFileRenameOperations


class UpdatesData(_Model):
    hotfixes: list[HotFix] = Field(default_factory=list)
    reboot_pending: RebootPending = Field(default_factory=RebootPending)


# --------------------------------------------------------------------------- time
class TimeParams(_Model):
    timeout_ms: int = Field(default=15_000, ge=1_000, le=120_000)


class TimeData(_Model):
    utc_now: str  # remote clock
    timezone_id: str  # TimeZoneInfo.Local.Id, e.g. "W. Europe Standard Time"
    utc_offset_minutes: int  # current offset incl. DST (+60 = UTC+1)
    w32tm_text: str | None = None  # raw `w32tm /query /status`
    w32tm_exit_code: int | None = None
    w32tm_error: ItemError | None = None


# --------------------------------------------------------------------------- dotnet
class DotnetData(_Model):
    release: int | None = None  # NDP\v4\Full Release DWORD; None: no 4.5+
    version: str | None = None  # NDP\v4\Full Version (informational)


# --------------------------------------------------------------------------- azure
class AzureParams(_Model):
    imds_timeout_ms: int = Field(default=1_000, ge=100, le=10_000)


class AzureData(_Model):
    smbios_asset_tag: str | None = None  # "7783-7084-3265-9085-8269-3286-77" on Azure
    manufacturer: str | None = None
    model: str | None = None
    imds_reachable: bool = False  # http://169.254.169.254 answered (from the host itself)
    imds_status: int | None = None  # HTTP status when it answered
    imds_error: str | None = None
    guest_agent_services: list[str] = Field(default_factory=list)  # WindowsAzureGuestAgent, RdAgent


# --------------------------------------------------------------------------- azure powershell
class ModuleInfo(_Model):
    name: str
    version: str


class AzurePowershellData(_Model):
    modules: list[ModuleInfo] = Field(default_factory=list)  # Az.Accounts, AzureRM, Azure


# --------------------------------------------------------------------------- vss writers
class NativeParams(_Model):
    timeout_ms: int = Field(default=60_000, ge=1_000, le=300_000)


class NativeTextData(_Model):
    """Raw text of a native command (UTF-8, CRLF kept), capped at the probe's output cap."""

    text: str = ""
    exit_code: int | None = None
    truncated: bool = False


# --------------------------------------------------------------------------- shadow storage
class ShadowStorage(_Model):
    volume_device_id: str  # \\?\Volume{GUID}\ (the volume whose copies are stored)
    diff_volume_device_id: str  # where they are stored
    used_bytes: int
    allocated_bytes: int
    max_bytes: int  # 18446744073709551615 = UNBOUNDED


class ShadowStorageData(_Model):
    source: Literal["cim", "vssadmin"] = "cim"
    storages: list[ShadowStorage] = Field(default_factory=list)
    cim_error: ItemError | None = None
    vssadmin_text: str | None = None  # only when CIM failed
    vssadmin_exit_code: int | None = None


# --------------------------------------------------------------------------- events
class EventQuery(_Model):
    log: str = Field(min_length=1, max_length=MAX_NAME)  # "Application", "System", "Microsoft-Windows-Backup"
    provider: str | None = Field(default=None, max_length=MAX_NAME)  # "VSS", "volsnap"
    ids: list[int] = Field(default_factory=list, max_length=MAX_ITEMS)
    since_hours: int = Field(default=168, ge=1, le=24 * 366)
    max: int = Field(default=20, ge=1, le=200)


class EventsParams(_Model):
    queries: list[EventQuery] = Field(default_factory=list, max_length=32)
    message_max_chars: int = Field(default=512, ge=0, le=MESSAGE_MAX * 4)
    max_total: int = Field(default=500, ge=1, le=2000)  # entries over all queries (bounds the document)


class EventEntry(_Model):
    log: str
    provider: str
    id: int
    level: int  # 1 critical, 2 error, 3 warning, 4 information
    time_created: str  # ISO UTC
    record_id: int | None = None
    message: str = ""  # localized, truncated
    properties: list[str] = Field(default_factory=list)  # insertion strings (first 8, 256 chars each)


class EventQueryResult(_Model):
    log: str
    provider: str | None = None
    ids: list[int] = Field(default_factory=list)
    entries: list[EventEntry] = Field(default_factory=list)
    #: log missing (type "LogNotFound"), access denied, ...; no matching event is NOT an error
    error: ItemError | None = None


class EventsData(_Model):
    results: list[EventQueryResult] = Field(default_factory=list)


# --------------------------------------------------------------------------- custom
class CustomScript(_Model):
    id: str = Field(min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9_.-]+$")
    script: str = Field(min_length=1, max_length=MAX_SCRIPT)


class CustomParams(_Model):
    scripts: list[CustomScript] = Field(default_factory=list, max_length=MAX_ITEMS)


CUSTOM_OUTPUT_MAX = 16_384


class CustomResult(_Model):
    """A user's script: its printed text (first 16 KiB), parsed here (not in PowerShell) as JSON."""

    output: str | None = None
    error: ItemError | None = None
    value: Any = None  # filled from `output` on load

    @model_validator(mode="after")
    def _parse(self) -> CustomResult:
        if self.error is None and self.output is not None and self.value is None:
            try:
                self.value = json.loads(self.output)
            except ValueError as exc:
                self.error = ItemError(type="InvalidJson", message=f"script output is not JSON: {exc}"[:200])
        return self


class CustomData(_Model):
    results: dict[str, CustomResult] = Field(default_factory=dict)


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ProbeSpec:
    """One probe: its parameters, its data, and the PowerShell that produces it."""

    id: str
    params: type[BaseModel]
    data: type[BaseModel]
    ps1: str  # file name in fleetcheck/probes/
    function: str  # the PowerShell function the dispatcher calls


def _spec(pid: str, params: type[BaseModel], data: type[BaseModel], fn: str) -> ProbeSpec:
    return ProbeSpec(pid, params, data, f"{pid}.ps1", fn)


PROBES: dict[str, ProbeSpec] = {
    s.id: s
    for s in (
        _spec("os", EmptyParams, OsData, "Get-FcOs"),
        _spec("features", FeaturesParams, FeaturesData, "Get-FcFeatures"),
        _spec("wsb", WsbParams, WsbData, "Get-FcWsb"),
        _spec("acl", AclParams, AclData, "Get-FcAcl"),
        _spec("services", ServicesParams, ServicesData, "Get-FcServices"),
        _spec("mars", EmptyParams, MarsData, "Get-FcMars"),
        _spec("connectivity", ConnectivityParams, ConnectivityData, "Get-FcConnectivity"),
        _spec("scheduled_tasks", ScheduledTasksParams, ScheduledTasksData, "Get-FcScheduledTasks"),
        _spec("volumes", EmptyParams, VolumesData, "Get-FcVolumes"),
        _spec("defender", EmptyParams, DefenderData, "Get-FcDefender"),
        _spec("updates", EmptyParams, UpdatesData, "Get-FcUpdates"),
        _spec("time", TimeParams, TimeData, "Get-FcTime"),
        _spec("dotnet", EmptyParams, DotnetData, "Get-FcDotnet"),
        _spec("azure", AzureParams, AzureData, "Get-FcAzure"),
        _spec("azure_powershell", EmptyParams, AzurePowershellData, "Get-FcAzurePowershell"),
        _spec("vss_writers", NativeParams, NativeTextData, "Get-FcVssWriters"),
        _spec("shadow_storage", NativeParams, ShadowStorageData, "Get-FcShadowStorage"),
        _spec("events", EventsParams, EventsData, "Get-FcEvents"),
        _spec("custom", CustomParams, CustomData, "Get-FcCustom"),
    )
}


def _check_names(names: list[str]) -> None:
    for n in names:
        if not n or len(n) > MAX_NAME:
            raise ValueError(f"each name must be 1..{MAX_NAME} characters")


def validate_params(probe_id: str, params: Any) -> BaseModel:
    """Validate one probe's parameters (KeyError for an unknown probe id)."""
    return PROBES[probe_id].params.model_validate(params or {})


def probe_data(facts: FactsDocument, probe_id: str) -> Any:
    """The typed data of one probe, or None when the probe is absent or reported an error.

    Raises pydantic.ValidationError when the data does not match the schema."""
    outcome = facts.probes.get(probe_id)
    if outcome is None or outcome.error is not None or outcome.data is None:
        return None
    return PROBES[probe_id].data.model_validate(outcome.data)
