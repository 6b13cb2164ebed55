"""Machine state: one YAML document per simulated host, in Windows terms.

Base fields (identity, users, WinRM settings) are what the protocol layer reads. The
fact sections (features, services, volumes, ...) are what the simulated probes answer
from. Every section has a default so tests can build a minimal machine in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetcheck.yamlfile import YamlFileError, line_of, parse_yaml, read_text


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabUser(_Model):
    """A local or domain account the host accepts."""

    name: str
    password: str
    domain: str = ""
    authorized_keys: list[str] = Field(default_factory=list)  # OpenSSH public keys
    admin: bool = True


class CertMapping(_Model):
    """One winrm/config/service/certmapping entry: client certificates whose UPN (SAN otherName)
    is `subject` (or `*@domain`), issued by `issuer` (the CA's subject, RFC 4514), log on as `user`."""

    subject: str
    issuer: str
    user: str


class WinRMSettings(_Model):
    """The WinRM service configuration (winrm get winrm/config) that changes behaviour."""

    max_shells_per_user: int = 30
    max_envelope_size_kb: int = 500
    idle_timeout_s: float = 7200.0
    allow_unencrypted: bool = False
    basic_auth: bool = True
    # winrm/config/service/auth: Negotiate and Kerberos on by default, as on Windows.
    negotiate_auth: bool = True
    kerberos_auth: bool = True
    credssp_auth: bool = False  # off by default on Windows: it hands the user's password to the host
    certificate_auth: bool = False  # off by default on Windows
    cert_mappings: list[CertMapping] = Field(default_factory=list)
    protocol_version: str = "2.3"  # "2.1" = PowerShell 2.0 host (150 KiB envelopes)
    #: Service/Auth/CbtHardeningLevel: Relaxed (Windows' default) accepts NTLM without a channel
    #: binding and rejects a wrong one; Strict requires it; None ignores it.
    cbt_hardening_level: Literal["None", "Relaxed", "Strict"] = "Relaxed"


class OsInfo(_Model):
    caption: str = "Microsoft Windows Server 2019 Standard"
    version: str = "10.0.17763"
    build_number: int = 17763
    product_type: int = 3  # 1 workstation, 2 domain controller, 3 server
    installation_type: str = "Server"  # "Server Core" on Core installs
    architecture: str = "64-bit"
    # Additions for the probes (registry CurrentVersion / Win32_OperatingSystem).
    edition_id: str = "ServerStandard"
    operating_system_sku: int = 7
    ubr: int | None = 5696
    last_boot_hours_ago: float = 72.0


class LocaleInfo(_Model):
    culture: str = "en-US"
    ui_culture: str = "en-US"  # the OS install language (facts host.ui_culture)


class PowerShellInfo(_Model):
    version: str = "5.1.17763.1852"
    edition: str = "Desktop"


class FactError(_Model):
    """An error a probe (or one item of it) reports instead of data."""

    type: str
    message: str = ""
    hresult: int | None = None


DEFAULT_FEATURES = {
    "Windows-Server-Backup": "Installed",
    "FS-FileServer": "Installed",
    "Hyper-V": "Available",
}


class ServiceDef(_Model):
    """One Win32_Service instance (keyed by service name, which Windows never localizes)."""

    display_name: str = ""
    state: str = "Running"  # Running | Stopped | Start Pending | Stop Pending | Paused
    start_mode: str = "Auto"  # Auto | Manual | Disabled | Boot | System
    delayed_auto_start: bool | None = False  # None: property absent (before Server 2016)
    start_name: str = "LocalSystem"
    #: Why starting it fails (the service stops again, a dependency does not start); None: it starts.
    start_error: str | None = None


def _default_services() -> dict[str, ServiceDef]:
    def svc(display: str, state: str = "Running", mode: str = "Auto", account: str = "LocalSystem") -> ServiceDef:
        return ServiceDef(display_name=display, state=state, start_mode=mode, start_name=account)

    return {
        "RpcSs": svc("Remote Procedure Call (RPC)", account="NT AUTHORITY\\NetworkService"),
        "EventSystem": svc("COM+ Event System", account="NT AUTHORITY\\LocalService"),
        "SENS": svc("System Event Notification Service"),
        "VSS": svc("Volume Shadow Copy", "Stopped", "Manual"),
        "swprv": svc("Microsoft Software Shadow Copy Provider", "Stopped", "Manual"),
        "wbengine": svc("Block Level Backup Engine Service", "Stopped", "Manual"),
        "obengine": svc("Microsoft Azure Recovery Services Agent"),
        "W32Time": svc("Windows Time", "Running", "Manual", "NT AUTHORITY\\LocalService"),
        "Schedule": svc("Task Scheduler"),
        "CryptSvc": svc("Cryptographic Services", account="NT Authority\\NetworkService"),
        "Winmgmt": svc("Windows Management Instrumentation"),
        "WinRM": svc("Windows Remote Management (WS-Management)", account="NT AUTHORITY\\NetworkService"),
        "WinDefend": svc("Windows Defender Antivirus Service"),
        "EventLog": svc("Windows Event Log", account="NT AUTHORITY\\LocalService"),
    }


MARS_KEY = "HKLM\\SOFTWARE\\Microsoft\\Windows Azure Backup"
MARS_PATH = "C:\\Program Files\\Microsoft Azure Recovery Services Agent"
NDP_KEY = "HKLM\\SOFTWARE\\Microsoft\\NET Framework Setup\\NDP\\v4\\Full"
CBS_REBOOT_KEY = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Component Based Servicing\\RebootPending"
WU_REBOOT_KEY = "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\RebootRequired"
SESSION_MANAGER_KEY = "HKLM\\SYSTEM\\CurrentControlSet\\Control\\Session Manager"


def _default_registry() -> dict[str, dict[str, Any]]:
    return {
        MARS_KEY + "\\Setup": {"InstallPath": MARS_PATH + "\\"},
        MARS_KEY + "\\Config": {"ScratchLocation": MARS_PATH + "\\Scratch"},
        MARS_KEY + "\\Config\\CloudBackupProvider": {"ScratchLocation": MARS_PATH + "\\Scratch"},
        NDP_KEY: {"Release": 528049, "Version": "4.8.04084"},
        SESSION_MANAGER_KEY: {},
    }


class FileDef(_Model):
    """A file on disk; `version` is its FileVersion resource."""

    version: str | None = None


def _default_files() -> dict[str, FileDef]:
    return {MARS_PATH + "\\bin\\cbengine.exe": FileDef(version="2.0.9262.0")}


class AclDef(_Model):
    """A security descriptor in SDDL, or the error reading it raises (e.g. access denied)."""

    sddl: str | None = None
    error: FactError | None = None


SVI_SDDL = "O:BAG:SYD:PAI(A;OICI;FA;;;SY)"


def _default_acls() -> dict[str, AclDef]:
    return {"C:\\System Volume Information": AclDef(sddl=SVI_SDDL)}


GIB = 1024**3


class VolumeDef(_Model):
    """One Win32_Volume (keyed by a short label in the YAML; `device_id` is the real key)."""

    device_id: str
    drive_letter: str | None = None
    name: str = ""
    label: str | None = None
    file_system: str | None = "NTFS"
    capacity: int | None = None
    free_space: int | None = None
    drive_type: int = 3
    boot_volume: bool = False
    system_volume: bool = False


C_VOLUME_ID = "\\\\?\\Volume{3f1c9a52-6d0e-4a8b-9c71-2b5e8d4f0a13}\\"
ESP_VOLUME_ID = "\\\\?\\Volume{8b2e4d16-91a7-4c3f-a5d8-6e0f7c1b9d24}\\"


def _default_volumes() -> dict[str, VolumeDef]:
    return {
        "C": VolumeDef(
            device_id=C_VOLUME_ID,
            drive_letter="C:",
            name="C:\\",
            label="",
            capacity=136_363_114_496,
            free_space=71_402_938_368,
            boot_volume=True,
        ),
        "ESP": VolumeDef(
            device_id=ESP_VOLUME_ID,
            name=ESP_VOLUME_ID,
            label=None,
            file_system="FAT32",
            capacity=99_614_720,
            free_space=69_228_544,
            system_volume=True,
        ),
    }


class ShadowStorageDef(_Model):
    """One Win32_ShadowStorage association; volumes by device id or drive letter ("C:")."""

    volume: str = "C:"
    diff_volume: str = "C:"
    used_bytes: int = 0
    allocated_bytes: int = 0
    max_bytes: int = 0


class ShadowStorageSection(_Model):
    associations: dict[str, ShadowStorageDef] = Field(
        default_factory=lambda: {
            "C": ShadowStorageDef(
                used_bytes=2_211_908_608, allocated_bytes=2_716_663_808, max_bytes=13_636_311_449
            )
        }
    )
    cim_error: FactError | None = None  # Win32_ShadowStorage fails -> the probe falls back to vssadmin
    vssadmin_text: str | None = None  # raw fallback text (English layout of the real capture)
    vssadmin_exit_code: int = 0


class VssWriterDef(_Model):
    """One writer as `vssadmin list writers` prints it (state is VSS_WRITER_STATE)."""

    id: str
    instance_id: str
    state: int = 1
    last_error: str = "No error"


def _default_writers() -> dict[str, VssWriterDef]:
    rows = [
        ("Task Scheduler Writer", "d61d61c8-d73a-4eee-8cdd-f6f9786b7124", "1bddd48e-5052-49db-9b07-b96f96727e6b"),
        ("VSS Metadata Store Writer", "75dfb225-e2e4-4d39-9ac9-ffaff65ddf06", "088e7a7d-09a8-4cc6-a609-ad90e75ddc93"),
        ("Performance Counters Writer", "0bada1de-01a9-4625-8278-69e735f39dd2", "f0086dda-9efc-47c5-8eb6-a944c3d09381"),
        ("System Writer", "e8132975-6f93-4464-a53e-1050253ae220", "3a440350-edf0-4b35-bbc0-2af9898666f7"),
        ("Registry Writer", "afbab4a2-367d-4d15-a586-71dbb18f8485", "d3faa119-61c1-4ec4-b163-68b43efad58b"),
        ("COM+ REGDB Writer", "542da469-d3e1-473c-9f4f-7847f01fc64f", "2bc1e4d0-7d1f-4c7f-8e0a-6a4c3b7d5e21"),
        ("WMI Writer", "a6ad56c2-b509-4e6c-bb19-49d8f43532f0", "5c4f1e9a-3b2d-4c6e-9f8a-0d7b6e5a4c32"),
        ("ASR Writer", "be000cbe-11fe-4426-9c58-531aa6355fc4", "7e2a9c4b-8d1f-4a3e-b6c5-9f0e8d7c6b43"),
    ]
    return {name: VssWriterDef(id="{" + wid + "}", instance_id="{" + iid + "}") for name, wid, iid in rows}


class VssSection(_Model):
    writers: dict[str, VssWriterDef] = Field(default_factory=_default_writers)  # keyed by writer name
    writers_text: str | None = None  # raw override of the whole `vssadmin list writers` output
    exit_code: int = 0


class WsbJobDef(_Model):
    """The previous Windows Server Backup job (Get-WBJob -Previous 1)."""

    job_type: str = "Backup"
    job_state: str = "Completed"
    hresult: int = 0
    detailed_hresult: int = 0
    ended_hours_ago: float = 20.0
    duration_minutes: float = 24.0
    error_description: str = ""


class WsbSection(_Model):
    #: ok: cmdlets load; missing: not installed (CommandNotFoundException); broken: module fails to load.
    cmdlets: Literal["ok", "missing", "broken"] = "ok"
    cmdlets_error: FactError | None = None  # error raised when `broken` (a default is used otherwise)
    last_job: WsbJobDef | None = Field(default_factory=WsbJobDef)
    last_job_error: FactError | None = None
    number_of_versions: int = 14
    next_backup_in_hours: float | None = 4.0


class W32tmDef(_Model):
    """What `w32tm /query /status` reports (rendered in the layout of the real English capture)."""

    leap_indicator: int = 0
    stratum: int = 3
    precision: int = -23
    root_delay: str = "0.0312500s"
    root_dispersion: str = "0.1093750s"
    reference_id: str = "0x0A000105 (source IP:  10.0.1.5)"
    last_sync_minutes_ago: float | None = 17.0  # None -> "unspecified"
    source: str = "time.windows.com,0x9"
    poll_interval: int = 10


class TimeSection(_Model):
    timezone_id: str = "UTC"  # Windows time zone id (TimeZoneInfo.Local.Id)
    utc_offset_minutes: int | None = None  # None: derived from timezone_id at answer time (DST-aware)
    clock_offset_seconds: float = 0.0  # host clock minus true UTC
    w32tm: W32tmDef = Field(default_factory=W32tmDef)
    w32tm_text: str | None = None  # raw override
    w32tm_exit_code: int = 0
    w32tm_error: FactError | None = None


class DefenderSection(_Model):
    installed: bool = True  # Get-MpPreference exists
    error: FactError | None = None  # Get-MpPreference fails (service stopped, ...)
    exclusion_path: list[str] = Field(
        default_factory=lambda: [MARS_PATH + "\\Scratch", MARS_PATH + "\\bin"]
    )
    exclusion_process: list[str] = Field(default_factory=lambda: [MARS_PATH + "\\bin\\cbengine.exe"])
    exclusion_extension: list[str] = Field(default_factory=list)
    realtime_disabled: bool = False


class TaskDef(_Model):
    """One scheduled task (keyed by its full path + name in the YAML)."""

    path: str = "\\Microsoft\\OnlineBackup\\"
    name: str
    state: str = "Ready"
    enabled: bool = True
    user_id: str = "SYSTEM"
    user_sid: str | None = "S-1-5-18"
    logon_type: str = "ServiceAccount"
    run_level: str = "Highest"


def _default_tasks() -> dict[str, TaskDef]:
    return {"\\Microsoft\\OnlineBackup\\Microsoft-OnlineBackup": TaskDef(name="Microsoft-OnlineBackup")}


DEFAULT_EXECUTION_POLICY = {
    "MachinePolicy": "Undefined",
    "UserPolicy": "Undefined",
    "Process": "Undefined",
    "CurrentUser": "Undefined",
    "LocalMachine": "RemoteSigned",
}


class HotfixDef(_Model):
    """One Win32_QuickFixEngineering row; the date is relative to the host's clock."""

    days_ago: float
    installed_on_raw: str | None = None  # override the rendered "M/d/yyyy" text


def _default_hotfixes() -> dict[str, HotfixDef]:
    return {
        "KB5034127": HotfixDef(days_ago=62),
        "KB5034863": HotfixDef(days_ago=33),
        "KB5035849": HotfixDef(days_ago=6),
    }


class EventDef(_Model):
    """One event log record, its time relative to the host's clock (hours_ago + days_ago)."""

    log: str
    provider: str
    id: int
    level: int = 2
    days_ago: float = 0.0
    hours_ago: float = 0.0
    message: str = ""
    properties: list[str] = Field(default_factory=list)


class AzureSection(_Model):
    smbios_asset_tag: str | None = "8837-2514-0194-6601-2750-3122-42"
    manufacturer: str = "Dell Inc."
    model: str = "PowerEdge R640"
    imds: Literal["unreachable", "ok"] = "unreachable"


class ConnectivityRule(_Model):
    host: str  # fnmatch pattern, case-insensitive
    port: int | None = None
    result: Literal["ok", "timeout", "refused", "dns"] = "ok"


class ConnectivitySection(_Model):
    """Outbound TCP from the host as the firewall/proxy lets it: first matching rule wins."""

    default: Literal["ok", "timeout", "refused", "dns"] = "ok"
    rules: list[ConnectivityRule] = Field(default_factory=list)
    latency_ms: int = 38


class CustomAnswer(_Model):
    output: str | None = None
    error: FactError | None = None


class MachineState(_Model):
    """One simulated Windows host."""

    hostname: str = "SRV01"
    domain: str = "WORKGROUP"
    os: OsInfo = Field(default_factory=OsInfo)
    locale: LocaleInfo = Field(default_factory=LocaleInfo)
    powershell: PowerShellInfo = Field(default_factory=PowerShellInfo)
    users: list[LabUser] = Field(default_factory=lambda: [LabUser(name="fleetcheck", password="Lab-Passw0rd!")])
    winrm: WinRMSettings = Field(default_factory=WinRMSettings)
    # Fact sections: what the simulated probes answer from (fleetcheck.lab.simprobes).
    # Defaults describe a healthy, fully patched Server 2019 with the MARS agent, so a
    # bare MachineState() passes every check of the system-state playbook.
    system_drive: str = "C:"
    features: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_FEATURES))
    server_manager: bool = True  # ServerManager module present (False on client SKUs)
    services: dict[str, ServiceDef] = Field(default_factory=_default_services)
    registry: dict[str, dict[str, Any]] = Field(default_factory=_default_registry)
    files: dict[str, FileDef] = Field(default_factory=_default_files)
    acls: dict[str, AclDef] = Field(default_factory=_default_acls)
    volumes: dict[str, VolumeDef] = Field(default_factory=_default_volumes)
    shadow_storage: ShadowStorageSection = Field(default_factory=ShadowStorageSection)
    vss: VssSection = Field(default_factory=VssSection)
    wsb: WsbSection = Field(default_factory=WsbSection)
    time: TimeSection = Field(default_factory=TimeSection)
    defender: DefenderSection = Field(default_factory=DefenderSection)
    scheduled_tasks: dict[str, TaskDef] = Field(default_factory=_default_tasks)
    task_scheduler_module: bool = True
    execution_policy: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_EXECUTION_POLICY))
    hotfixes: dict[str, HotfixDef] = Field(default_factory=_default_hotfixes)
    events: dict[str, EventDef] = Field(default_factory=dict)
    azure: AzureSection = Field(default_factory=AzureSection)
    azure_powershell_modules: dict[str, str] = Field(default_factory=dict)  # name -> version
    connectivity: ConnectivitySection = Field(default_factory=ConnectivitySection)
    #: probe id -> the error that probe reports instead of data (e.g. access denied).
    probe_errors: dict[str, FactError] = Field(default_factory=dict)
    #: custom probe id -> what the user's script printed (the lab runs no PowerShell).
    custom_probes: dict[str, CustomAnswer] = Field(default_factory=dict)

    def registry_value(self, key: str, name: str) -> Any:
        """A registry value (None when key or value is absent); key lookup is case-insensitive."""
        values = self.registry_key(key)
        if values is None:
            return None
        low = name.lower()
        return next((v for k, v in values.items() if k.lower() == low), None)

    def registry_key(self, key: str) -> dict[str, Any] | None:
        low = _norm_key(key)
        return next((v for k, v in self.registry.items() if _norm_key(k) == low), None)

    def file(self, path: str) -> FileDef | None:
        low = path.lower()
        return next((f for p, f in self.files.items() if p.lower() == low), None)


class MachineStateError(ValueError):
    """A machine YAML that cannot be used: the message names the file, the field and the problem."""


def _norm_key(key: str) -> str:
    k = key.replace("/", "\\").rstrip("\\").lower()
    for long, short in (("hkey_local_machine", "hklm"), ("hklm:", "hklm")):
        if k.startswith(long):
            k = short + k[len(long) :]
    return k


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Overlay wins; nested mappings merge; a None value deletes the key."""
    out = dict(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def format_validation_error(source: str, exc: ValidationError, tree: Any = None) -> str:
    """The pydantic errors of a machine, each with its field path and, from `tree` (the
    loaded MarkedDict), its line."""
    lines = [f"{source}: invalid machine state"]
    for err in exc.errors()[:10]:
        loc = tuple(err["loc"])
        where = ".".join(str(x) for x in loc) or "(top level)"
        line = line_of(tree, loc) if tree is not None else None
        at = f" (line {line})" if line else ""
        lines.append(f"  {where}{at}: {err['msg']}")
    lines.append("  fix the field(s) above; see fleetcheck/lab/machine.py for every field and its default")
    return "\n".join(lines)


def read_yaml_mapping(path: Path) -> tuple[dict[str, Any], Any]:
    """A YAML file's top mapping, and the same mapping as loaded with lines (for errors)."""
    try:
        text = read_text(path)
    except YamlFileError as exc:
        raise MachineStateError(f"{path}: cannot read: {exc.problem}") from None
    try:
        data = parse_yaml(text, str(path))
    except YamlFileError as exc:
        at = f" line {exc.line}" if exc.line else ""
        raise MachineStateError(f"{path}:{at} {exc.problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MachineStateError(f"{path}: the top level must be a mapping of machine fields")
    return data, data


def machine_from_dict(data: dict[str, Any], source: str = "<machine>", tree: Any = None) -> MachineState:
    try:
        return MachineState.model_validate(data)
    except ValidationError as exc:
        raise MachineStateError(format_validation_error(source, exc, tree)) from None


def load_machine(path: str | Path) -> MachineState:
    """Load one machine YAML (all fields optional; defaults are a healthy Server 2019)."""
    p = Path(path)
    data, tree = read_yaml_mapping(p)
    return machine_from_dict(data, str(p), tree)
