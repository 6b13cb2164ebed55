"""MARS agent checks: installed, version, service, reachability, schedule, scratch space, AV exclusions."""

from __future__ import annotations

import fnmatch
import ntpath

from pydantic import Field, model_validator

from fleetcheck.checks.base import (
    CheckDef,
    CheckParams,
    EvalContext,
    Facts,
    NoParams,
    Verdict,
    failed,
    passed,
    skipped,
    unknown,
    version_at_least,
    warned,
)
from fleetcheck.checks.numbers import beside
from fleetcheck.probes.schema import (
    ConnectivityData,
    DefenderData,
    MarsData,
    ScheduledTasksData,
    ServicesData,
    VolumeInfo,
    VolumesData,
)

GB = 1024**3
SYSTEM_SID = "S-1-5-18"
NOT_INSTALLED = "The MARS agent is not installed (see mars-installed)"


def _mars(facts: Facts) -> MarsData | None:
    mars = facts.get("mars", MarsData)
    return mars if mars.installed else None


# --------------------------------------------------------------------------- mars-installed
def mars_installed(facts: Facts, p: NoParams, ctx: EvalContext) -> Verdict:
    mars = facts.get("mars", MarsData)
    if mars.installed:
        return passed(f"MARS agent installed in {mars.install_path}", observed=mars.install_path, expected="installed")
    return failed("The MARS agent is not installed", observed="not installed", expected="installed")


# --------------------------------------------------------------------------- mars-version
class VersionParams(CheckParams):
    minimum_version: str = Field(default="2.0.9262.0", pattern=r"^\d+(\.\d+){1,3}$")


def mars_version(facts: Facts, p: VersionParams, ctx: EvalContext) -> Verdict:
    mars = _mars(facts)
    expected = f">= {p.minimum_version}"
    if mars is None:
        return skipped(NOT_INSTALLED)
    if not mars.cbengine_present:
        return failed(
            "The agent is registered but cbengine.exe is missing",
            observed=mars.cbengine_path,
            expected=expected,
            remediation="Repair or reinstall the MARS agent from https://aka.ms/azurebackup_agent.",
        )
    ok = version_at_least(mars.agent_version, p.minimum_version)
    if ok is None:
        return unknown(f"Agent version unreadable ({mars.agent_version!r})", observed=mars.agent_version, expected=expected)
    if ok:
        return passed(f"Agent version {mars.agent_version}", observed=mars.agent_version, expected=expected)
    return failed(f"Agent version {mars.agent_version} is older than {p.minimum_version}", mars.agent_version, expected)


# --------------------------------------------------------------------------- mars-service
class MarsServiceParams(CheckParams):
    service: str = Field(default="obengine", min_length=1, max_length=256)


def mars_service(facts: Facts, p: MarsServiceParams, ctx: EvalContext) -> Verdict:
    if _mars(facts) is None:
        return skipped(NOT_INSTALLED)
    svc = facts.get("services", ServicesData).get(p.service)
    if svc is None or not svc.present:
        return failed(f"The agent service {p.service} does not exist", observed="missing", expected="Running")
    observed = f"{svc.start_mode}, {svc.state}"
    if svc.state == "Running":
        return passed(f"Agent service {p.service} is running", observed, "Running")
    return failed(f"Agent service {p.service} is {svc.state or 'not running'}", observed, "Running")


# --------------------------------------------------------------------------- mars-connectivity
DEFAULT_ENDPOINTS = ["login.microsoftonline.com", "login.windows.net", "www.msftconnecttest.com"]


class ConnectivityCheckParams(CheckParams):
    endpoints: list[str] = Field(default_factory=lambda: list(DEFAULT_ENDPOINTS), min_length=1, max_length=64)
    port: int = Field(default=443, ge=1, le=65535)
    timeout_s: float = Field(default=3.0, gt=0, le=30)

    @model_validator(mode="after")
    def _names(self) -> ConnectivityCheckParams:
        for e in self.endpoints:
            if not e or len(e) > 253 or any(ch.isspace() for ch in e):
                raise ValueError(f"invalid endpoint host name {e!r}")
        return self


def mars_connectivity(facts: Facts, p: ConnectivityCheckParams, ctx: EvalContext) -> Verdict:
    results = facts.get("connectivity", ConnectivityData).results
    wanted = {(e.lower(), p.port) for e in p.endpoints}
    mine = [r for r in results if (r.host.lower(), r.port) in wanted]
    expected = f"TCP {p.port} reachable: " + ", ".join(p.endpoints)
    if not mine:
        return unknown("No connectivity result for the playbook's endpoints", expected=expected)
    bad = [f"{r.host}:{r.port} ({r.error or 'failed'})" for r in mine if not r.tcp_ok]
    if bad:
        return failed(f"{len(bad)} of {len(mine)} Azure endpoints unreachable: " + ", ".join(bad), bad, expected)
    return passed(f"All {len(mine)} Azure endpoints reachable on TCP {p.port}", [r.host for r in mine], expected)


# --------------------------------------------------------------------------- mars-schedule
class ScheduleParams(CheckParams):
    task_path: str = Field(default="\\Microsoft\\OnlineBackup\\", min_length=1, max_length=1024)
    #: Principals allowed to run the tasks (SIDs); the article allows SYSTEM or a local admin.
    allowed_sids: list[str] = Field(default_factory=lambda: [SYSTEM_SID])


_SYSTEM_NAMES = {"system", "nt authority\\system", "localsystem", SYSTEM_SID.lower()}


def _runs_as_allowed(user_sid: str | None, user_id: str, allowed: list[str]) -> bool:
    if user_sid:
        return user_sid in allowed
    return SYSTEM_SID in allowed and user_id.strip().lower() in _SYSTEM_NAMES


def _effective_policy(policies: dict[str, str]) -> str | None:
    if "Effective" in policies:
        return policies["Effective"]
    for scope in ("MachinePolicy", "UserPolicy", "Process", "CurrentUser", "LocalMachine"):
        value = policies.get(scope)
        if value and value != "Undefined":
            return value
    return "Restricted" if policies else None  # Windows Server default when nothing is set


def mars_schedule(facts: Facts, p: ScheduleParams, ctx: EvalContext) -> Verdict:
    if _mars(facts) is None:
        return skipped(NOT_INSTALLED)
    data = facts.get("scheduled_tasks", ScheduledTasksData)
    expected = f"tasks in {p.task_path} enabled, run as {', '.join(p.allowed_sids)}; execution policy not Restricted"
    if not data.module_available:
        return unknown("Scheduled tasks could not be read (ScheduledTasks module missing)", expected=expected)
    tasks = [t for t in data.tasks if t.path.lower() == p.task_path.lower()]
    problems: list[str] = []
    if not tasks:
        problems.append(f"no scheduled task in {p.task_path}")
    for t in tasks:
        if not t.enabled or t.state == "Disabled":
            problems.append(f"{t.name} is disabled")
        if not _runs_as_allowed(t.user_sid, t.user_id, p.allowed_sids):
            problems.append(f"{t.name} runs as {t.user_sid or t.user_id or 'unknown'}")
    policy = _effective_policy(data.execution_policy)
    if policy == "Restricted":
        problems.append("execution policy is Restricted")
    observed = {
        "tasks": [f"{t.name}: {t.state}, {t.user_sid or t.user_id}" for t in tasks],
        "execution_policy": policy,
    }
    if problems:
        return failed("Scheduled backup cannot run: " + "; ".join(problems), observed, expected)
    if policy is None:
        return unknown("Execution policy could not be read", observed, expected)
    return passed(f"{len(tasks)} agent task(s) enabled and running as SYSTEM; policy {policy}", observed, expected)


# --------------------------------------------------------------------------- scratch-space
class ScratchParams(CheckParams):
    pass_free_percent: float = Field(default=10.0, gt=0, le=100)
    fail_free_percent: float = Field(default=5.0, ge=0, le=100)
    #: Extra free space system state backup needs on the scratch volume (the docs say 30-35 GB).
    system_state_extra_gb: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _order(self) -> ScratchParams:
        if self.fail_free_percent > self.pass_free_percent:
            raise ValueError("fail_free_percent must not exceed pass_free_percent")
        return self


def volume_for_path(path: str, volumes: list[VolumeInfo]) -> VolumeInfo | None:
    """The volume whose mount point is the longest prefix of `path` (case-insensitive)."""
    norm = path.replace("/", "\\").lower()
    best: VolumeInfo | None = None
    best_len = -1
    for v in volumes:
        roots = [v.name] + ([v.drive_letter + "\\"] if v.drive_letter else [])
        for root in roots:
            r = (root or "").lower()
            if r and not r.endswith("\\"):
                r += "\\"
            if r and (norm + "\\").startswith(r) and len(r) > best_len:
                best, best_len = v, len(r)
    return best


def scratch_space(facts: Facts, p: ScratchParams, ctx: EvalContext) -> Verdict:
    mars = _mars(facts)
    if mars is None:
        return skipped(NOT_INSTALLED)
    scratch = mars.scratch_location_config or mars.scratch_location_provider
    expected = f">= {p.pass_free_percent:g}% free and >= {p.system_state_extra_gb:g} GB free"
    if not scratch:
        return unknown("The scratch folder is not configured in the registry", expected=expected)
    vol = volume_for_path(scratch, facts.get("volumes", VolumesData).volumes)
    if vol is None or not vol.capacity or vol.free_space is None:
        return unknown(f"No volume size found for the scratch folder {scratch}", observed=scratch, expected=expected)
    pct = vol.free_space * 100.0 / vol.capacity
    free_gb = vol.free_space / GB
    observed = {"scratch": scratch, "volume": vol.name or vol.device_id, "free_percent": round(pct, 2), "free_gb": round(free_gb, 2)}
    where = f"{vol.name or vol.device_id} (scratch {scratch})"
    if pct < p.fail_free_percent:
        return failed(f"Only {beside(pct, p.fail_free_percent)}% free on {where}", observed, expected)
    if free_gb < p.system_state_extra_gb:
        return failed(
            f"Only {beside(free_gb, p.system_state_extra_gb)} GB free on {where}; "
            f"system state needs {p.system_state_extra_gb:g} GB",
            observed,
            expected,
        )
    if pct < p.pass_free_percent:
        return warned(f"{beside(pct, p.pass_free_percent)}% free on {where}, below {p.pass_free_percent:g}%", observed, expected)
    mismatch = (
        mars.scratch_location_config
        and mars.scratch_location_provider
        and mars.scratch_location_config.rstrip("\\").lower() != mars.scratch_location_provider.rstrip("\\").lower()
    )
    if mismatch:
        return warned(
            "The two ScratchLocation registry values point to different folders",
            observed={**observed, "provider": mars.scratch_location_provider},
            expected="both ScratchLocation values equal",
            remediation="Set Config\\ScratchLocation and Config\\CloudBackupProvider\\ScratchLocation to the same folder, then restart obengine.",
        )
    return passed(f"{beside(pct, p.pass_free_percent)}% ({free_gb:.1f} GB) free on {where}", observed, expected)


# --------------------------------------------------------------------------- av-exclusions
class AvParams(CheckParams):
    require_scratch: bool = True
    require_bin: bool = True
    processes: list[str] = Field(default_factory=lambda: ["cbengine.exe"])
    extra_paths: list[str] = Field(default_factory=list)


def _norm(path: str) -> str:
    return path.replace("/", "\\").rstrip("\\").lower()


def path_excluded(path: str, exclusions: list[str]) -> bool:
    """True when an exclusion equals, contains (parent folder) or wildcard-matches `path`."""
    target = _norm(path)
    for ex in exclusions:
        e = _norm(ex)
        if not e:
            continue
        if target == e or target.startswith(e + "\\") or fnmatch.fnmatchcase(target, e):
            return True
    return False


def process_excluded(process: str, exclusions: list[str]) -> bool:
    want = process.lower()
    return any(ntpath.basename(_norm(e)) == want or _norm(e) == want for e in exclusions)


def av_exclusions(facts: Facts, p: AvParams, ctx: EvalContext) -> Verdict:
    mars = _mars(facts)
    if mars is None:
        return skipped(NOT_INSTALLED)
    defender = facts.get("defender", DefenderData)
    if not defender.available:
        return unknown(
            f"Microsoft Defender is not available ({defender.reason or 'no answer'}); check your antivirus by hand",
            observed=defender.reason,
            expected="exclusions for the agent",
            remediation="Exclude the agent's bin folder, the scratch folder and cbengine.exe in the antivirus product in use.",
        )
    paths = list(p.extra_paths)
    if p.require_bin and mars.install_path:
        paths.append(ntpath.join(mars.install_path, "bin"))
    scratch = mars.scratch_location_config or mars.scratch_location_provider
    if p.require_scratch and scratch:
        paths.append(scratch)
    missing = [x for x in paths if not path_excluded(x, defender.exclusion_path)]
    missing += [x for x in p.processes if not process_excluded(x, defender.exclusion_process)]
    expected = paths + p.processes
    observed = {"paths": defender.exclusion_path, "processes": defender.exclusion_process}
    if missing:
        return failed("Defender does not exclude: " + ", ".join(missing), observed, expected)
    return passed("Defender excludes the agent's folders and engine", observed, expected)


_AGENT_FIX = "Install or update the agent from https://aka.ms/azurebackup_agent."

CHECKS = [
    CheckDef(
        id="mars-installed",
        title="MARS agent installed",
        family="agent",
        rule=mars_installed,
        requests=lambda p: {"mars": {}},
        severity="critical",
        tags=("mars",),
        verifies="The agent's Setup registry key with InstallPath exists.",
        why="System state backup to Azure is done by the Microsoft Azure Recovery Services (MARS) agent.",
        fix=_AGENT_FIX,
    ),
    CheckDef(
        id="mars-version",
        title="MARS agent recent enough",
        family="agent",
        rule=mars_version,
        params=VersionParams,
        requests=lambda p: {"mars": {}},
        severity="high",
        tags=("mars",),
        verifies="The file version of cbengine.exe is at least the playbook's minimum_version.",
        why="Old agents miss fixes for system state backup and lose support for newer vault features; very old ones cannot talk to the service at all.",
        fix=_AGENT_FIX + " Upgrading in place keeps the registration.",
    ),
    CheckDef(
        id="mars-service",
        title="MARS agent service running",
        family="agent",
        rule=mars_service,
        params=MarsServiceParams,
        requests=lambda p: {"mars": {}, "services": {"names": [p.service]}},
        severity="high",
        tags=("mars", "services"),
        verifies="The agent's engine service (obengine) is running.",
        why="The engine service runs every scheduled and manual backup job.",
        fix="Start-Service obengine (net start obengine); if it stops again, read the CloudBackup event log.",
    ),
    CheckDef(
        id="mars-connectivity",
        title="Azure endpoints reachable",
        family="agent",
        rule=mars_connectivity,
        params=ConnectivityCheckParams,
        requests=lambda p: {
            "connectivity": {
                "endpoints": [{"host": e, "port": p.port} for e in p.endpoints],
                "timeout_ms": int(p.timeout_s * 1000),
            }
        },
        severity="high",
        tags=("mars", "network"),
        verifies="From the host itself, a TCP connection to each endpoint of the playbook succeeds within the timeout.",
        why="The agent sends backup data and authenticates over HTTPS; blocked endpoints make every job fail.",
        fix="Allow outbound HTTPS (443) to the Azure Backup, Azure AD and storage endpoints (service tags AzureBackup, Storage, AzureActiveDirectory), and set the machine proxy if one is needed.",
    ),
    CheckDef(
        id="mars-schedule",
        title="Agent scheduled tasks usable",
        family="agent",
        rule=mars_schedule,
        params=ScheduleParams,
        requests=lambda p: {"mars": {}, "scheduled_tasks": {"task_path": p.task_path}},
        severity="medium",
        tags=("mars", "schedule"),
        verifies="The agent's tasks under Microsoft\\OnlineBackup exist, are enabled and run as SYSTEM; the execution policy is not Restricted.",
        why="Scheduled backups run through these tasks and a PowerShell step; a disabled task or a Restricted policy makes scheduled jobs fail while manual ones work.",
        fix="Enable the tasks, set their account to SYSTEM, and run Set-ExecutionPolicy RemoteSigned -Scope LocalMachine (or Unrestricted).",
    ),
    CheckDef(
        id="scratch-space",
        title="Scratch folder has free space",
        family="agent",
        rule=scratch_space,
        params=ScratchParams,
        requests=lambda p: {"mars": {}, "volumes": {}},
        severity="high",
        tags=("mars", "storage"),
        verifies="The volume of the agent's scratch folder has at least pass_free_percent free (warn above fail_free_percent) and at least system_state_extra_gb free.",
        why="The agent stages data and the system state image in the scratch folder; a full volume stops the job.",
        fix="Free space on that volume or move the scratch folder to a larger local volume (update both ScratchLocation registry values, then restart obengine).",
    ),
    CheckDef(
        id="av-exclusions",
        title="Antivirus excludes the agent",
        family="agent",
        rule=av_exclusions,
        params=AvParams,
        requests=lambda p: {"mars": {}, "defender": {}},
        severity="medium",
        tags=("mars", "antivirus"),
        verifies="Microsoft Defender excludes the agent's bin folder, the scratch folder and the cbengine.exe process; unknown without Defender.",
        why="Scanning the agent's files while a job runs slows it down or locks files and makes jobs fail.",
        fix="Add-MpPreference -ExclusionPath '<install>\\bin','<scratch>' -ExclusionProcess 'cbengine.exe' (and csc.exe of each .NET Framework version).",
    ),
]
