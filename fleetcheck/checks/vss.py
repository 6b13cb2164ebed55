"""VSS checks: writer states, writer time-out events, shadow storage growth, EFI partition lock events."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from fleetcheck.checks.base import (
    CheckDef,
    CheckParams,
    EvalContext,
    Facts,
    Verdict,
    failed,
    hresult_hex,
    hresult_in_text,
    is_access_denied,
    item_denied,
    parse_utc,
    passed,
    unknown,
    warned,
)
from fleetcheck.checks.numbers import beside
from fleetcheck.parsers.shadowstorage import parse_shadowstorage
from fleetcheck.parsers.vsswriters import parse_vss_writers
from fleetcheck.probes.schema import (
    EventEntry,
    EventsData,
    NativeTextData,
    ShadowStorageData,
    VolumeInfo,
    VolumesData,
)

GB = 1024**3
UNBOUNDED = 0xFFFFFFFFFFFFFFFF
VSS_E_WRITERERROR_TIMEOUT = 0x800423F2
WSB_E_ESP_LOCK = 0x8078011E  # Windows Backup could not lock the EFI system partition

# Event sources (locale-free: log, provider, id).
VSS_LOG, VSS_PROVIDER, VSS_WRITER_REJECTED = "Application", "VSS", 8229
VOLSNAP_LOG, VOLSNAP_PROVIDER = "System", "volsnap"
WSB_LOG = "Microsoft-Windows-Backup"


class LookBack(CheckParams):
    look_back_days: int = Field(default=7, ge=1, le=366)


class EventsUnreadable(Exception):
    """The event query of a check could not be run (access denied, broken log)."""


def events_in_window(
    facts: Facts, log: str, provider: str | None, ids: list[int], days: int, ctx: EvalContext
) -> list[EventEntry]:
    """Entries of the matching query results, only ids asked for and only within the window.

    The events request may be merged with other playbooks' (longer windows, more ids), so we
    filter again here. A missing log means nothing was ever written there: no events."""
    data = facts.get("events", EventsData)
    since = ctx.scan_time - timedelta(days=days)
    found: list[EventEntry] = []
    matched = False
    for res in data.results:
        if res.log.lower() != log.lower():
            continue
        if provider and res.provider and res.provider.lower() != provider.lower():
            continue
        if res.ids and not set(ids) & set(res.ids):
            continue
        matched = True
        if res.error is not None:
            if item_denied(res.error) or res.error.type not in ("LogNotFound", "EventLogNotFoundException"):
                raise EventsUnreadable(f"{res.error.type}: {res.error.message}".rstrip(": "))
            continue
        for e in res.entries:
            when = parse_utc(e.time_created)
            if e.id in ids and (provider is None or e.provider.lower() == provider.lower()) and when and when >= since:
                found.append(e)
    if not matched:
        raise EventsUnreadable(f"no event query result for {log}/{provider or '*'} {ids}")
    return sorted(found, key=lambda e: e.time_created, reverse=True)


def _event_texts(e: EventEntry) -> list[str]:
    return [*e.properties, e.message]


def _describe(e: EventEntry) -> str:
    return f"{e.provider} {e.id} at {e.time_created}"


# --------------------------------------------------------------------------- vss-writers
class WritersParams(CheckParams):
    #: Writer names or writer ids (GUIDs) to leave out, e.g. a writer known to be flaky.
    ignore_writers: list[str] = Field(default_factory=list)


def vss_writers(facts: Facts, p: WritersParams, ctx: EvalContext) -> Verdict:
    data = facts.get("vss_writers", NativeTextData)
    writers = parse_vss_writers(data.text)
    expected = "every writer [1] Stable or [5] Waiting for completion, no error"
    if not writers:
        why = f"exit code {data.exit_code}" if data.exit_code else "no writer blocks"
        return unknown(
            f"vssadmin list writers gave no writer list ({why})",
            observed=data.text[:200],
            expected=expected,
            remediation="Run the scan as a local administrator; if vssadmin itself fails, restart the VSS service.",
        )
    ignored = {x.lower().strip("{}") for x in p.ignore_writers}
    checked = [w for w in writers if w.name.lower() not in ignored and w.writer_id not in ignored]
    bad = [w for w in checked if not w.healthy]
    observed = [f"{w.name}: [{w.state}] {w.last_error}" for w in bad] or f"{len(checked)} writers stable"
    if bad:
        names = ", ".join(f"{w.name} [{w.state if w.state is not None else '?'}] {w.state_name}" for w in bad)
        return failed(f"{len(bad)} VSS writer(s) not healthy: {names}", observed, expected)
    note = " (output truncated)" if data.truncated else ""
    return passed(f"All {len(checked)} VSS writers are stable{note}", observed, expected)


# --------------------------------------------------------------------------- vss-timeout-events
def vss_timeout_events(facts: Facts, p: LookBack, ctx: EvalContext) -> Verdict:
    expected = f"no VSS {VSS_WRITER_REJECTED} with {hresult_hex(VSS_E_WRITERERROR_TIMEOUT)} in {p.look_back_days} days"
    try:
        events = events_in_window(facts, VSS_LOG, VSS_PROVIDER, [VSS_WRITER_REJECTED], p.look_back_days, ctx)
    except EventsUnreadable as exc:
        return unknown(f"Application log could not be read: {exc}", expected=expected)
    timeouts = [e for e in events if hresult_in_text(VSS_E_WRITERERROR_TIMEOUT, _event_texts(e))]
    if timeouts:
        return failed(
            f"{len(timeouts)} VSS writer time-out(s) ({hresult_hex(VSS_E_WRITERERROR_TIMEOUT)}) in {p.look_back_days} days, last {timeouts[0].time_created}",
            [_describe(e) for e in timeouts[:5]],
            expected,
        )
    if events:
        return warned(
            f"{len(events)} VSS writer rejection(s) (event {VSS_WRITER_REJECTED}) without a time-out code in {p.look_back_days} days",
            [_describe(e) for e in events[:5]],
            expected,
            remediation="Read these events in the Application log: a writer refused a snapshot event.",
        )
    return passed(f"No VSS writer time-out in {p.look_back_days} days", "none", expected)


# --------------------------------------------------------------------------- shadow-storage
class ShadowParams(CheckParams):
    look_back_days: int = Field(default=7, ge=1, le=366)
    #: Space the shadow storage must still be able to grow by (limit headroom and free space).
    min_growth_gb: float = Field(default=1.0, ge=0)
    event_ids: list[int] = Field(default_factory=lambda: [24, 25])


def _system_volumes(volumes: list[VolumeInfo]) -> list[VolumeInfo]:
    return [v for v in volumes if v.boot_volume or v.system_volume]


def _storages(data: ShadowStorageData) -> list[tuple[str, str, int | None, int | None]]:
    """(volume, diff volume, used, max) from CIM bytes or, failing that, the vssadmin text."""
    if data.storages:
        return [(s.volume_device_id, s.diff_volume_device_id, s.used_bytes, s.max_bytes) for s in data.storages]
    out: list[tuple[str, str, int | None, int | None]] = []
    for a in parse_shadowstorage(data.vssadmin_text or ""):
        out.append((a.for_volume, a.storage_volume, a.used.bytes, UNBOUNDED if a.maximum.unbounded else a.maximum.bytes))
    return out


def _same_volume(a: str, b: str) -> bool:
    return a.rstrip("\\").lower() == b.rstrip("\\").lower()


def shadow_storage(facts: Facts, p: ShadowParams, ctx: EvalContext) -> Verdict:
    expected = f"storage of system volumes can grow >= {p.min_growth_gb:g} GB; no VolSnap {p.event_ids} in {p.look_back_days} days"
    data = facts.get("shadow_storage", ShadowStorageData)
    volumes = facts.get("volumes", VolumesData).volumes
    if data.source == "vssadmin" and not data.storages and data.vssadmin_text is None:
        why = data.cim_error.type if data.cim_error else "no data"
        return unknown(f"Shadow storage could not be read ({why})", expected=expected)
    problems: list[str] = []
    observed: list[str] = []
    min_growth = int(p.min_growth_gb * GB)
    by_id = {v.device_id.rstrip("\\").lower(): v for v in volumes}
    for vol in _system_volumes(volumes):
        label = vol.drive_letter or vol.name or vol.device_id
        for src, diff, used, maximum in _storages(data):
            if not _same_volume(src, vol.device_id):
                continue
            diff_vol = by_id.get(diff.rstrip("\\").lower())
            if used is None or maximum is None:
                problems.append(f"{label} shadow storage sizes unreadable")
                continue
            room = None if maximum == UNBOUNDED else maximum - used
            free = diff_vol.free_space if diff_vol else None
            observed.append(
                f"{label}: used {used / GB:.2f} GB, max {'UNBOUNDED' if room is None else f'{maximum / GB:.2f} GB'}"
                + (f", {free / GB:.2f} GB free on storage volume" if free is not None else "")
            )
            if room is not None and room < min_growth:
                problems.append(
                    f"{label} shadow storage limit reached ({used / GB:.2f} of {maximum / GB:.2f} GB, "
                    f"{beside(room / GB, p.min_growth_gb, 2)} GB left)"
                )
            if free is not None and free < min_growth:
                problems.append(
                    f"{label} has only {beside(free / GB, p.min_growth_gb, 2)} GB free where its shadow copies are stored"
                )
    try:
        events = events_in_window(facts, VOLSNAP_LOG, VOLSNAP_PROVIDER, p.event_ids, p.look_back_days, ctx)
    except EventsUnreadable as exc:
        events = []
        if not problems:
            return unknown(f"System log could not be read: {exc}", observed, expected)
    if events:
        problems.append(f"{len(events)} VolSnap storage event(s), last {_describe(events[0])}")
    if problems:
        return failed("Shadow copy storage cannot grow: " + "; ".join(problems), observed, expected)
    return passed("Shadow copy storage of the system volumes can grow", observed or "no association (default storage)", expected)


# --------------------------------------------------------------------------- efi-lock-events
class EfiParams(CheckParams):
    look_back_days: int = Field(default=7, ge=1, le=366)
    #: Windows Backup failure events that carry the HRESULT of the job.
    event_ids: list[int] = Field(default_factory=lambda: [5, 517, 518, 521, 546])


def efi_lock_events(facts: Facts, p: EfiParams, ctx: EvalContext) -> Verdict:
    expected = f"no backup failure {hresult_hex(WSB_E_ESP_LOCK)} in {p.look_back_days} days"
    try:
        events = events_in_window(facts, WSB_LOG, None, p.event_ids, p.look_back_days, ctx)
    except EventsUnreadable as exc:
        return unknown(f"Windows Backup log could not be read: {exc}", expected=expected)
    locked = [e for e in events if hresult_in_text(WSB_E_ESP_LOCK, _event_texts(e))]
    if locked:
        return failed(
            f"{len(locked)} backup failure(s) from a locked EFI system partition in {p.look_back_days} days, last {locked[0].time_created}",
            [_describe(e) for e in locked[:5]],
            expected,
        )
    return passed(f"No EFI partition lock failure in {p.look_back_days} days", "none", expected)


def _events(queries: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {"events": {"queries": queries}}


CHECKS = [
    CheckDef(
        id="vss-writers",
        title="VSS writers stable",
        family="vss",
        rule=vss_writers,
        params=WritersParams,
        requests=lambda p: {"vss_writers": {}},
        severity="high",
        tags=("vss",),
        verifies="Every writer listed by vssadmin list writers is in state [1] Stable or [5] Waiting for completion and reports no error.",
        why="System state backup asks every writer to freeze and thaw; a failed writer makes the snapshot, and the job, fail.",
        fix="Restart the service that owns the failed writer (e.g. CryptSvc for System Writer, Winmgmt for WMI Writer, VSS for most others), or reboot, then list the writers again.",
    ),
    CheckDef(
        id="vss-timeout-events",
        title="No VSS writer time-outs",
        family="vss",
        rule=vss_timeout_events,
        params=LookBack,
        requests=lambda p: _events(
            [{"log": VSS_LOG, "provider": VSS_PROVIDER, "ids": [VSS_WRITER_REJECTED], "since_hours": p.look_back_days * 24}]
        ),
        severity="medium",
        tags=("vss", "events"),
        verifies="The Application log has no VSS event 8229 carrying 0x800423F2 (writer time-out) within look_back_days.",
        why="Writer time-outs between freeze and thaw are the usual cause of 'WSB job failed with VSS errors'.",
        fix="Back up when the server is less busy (CPU and memory), make sure no other backup product runs at the same time, then retry.",
    ),
    CheckDef(
        id="shadow-storage",
        title="Shadow copy storage can grow",
        family="vss",
        rule=shadow_storage,
        params=ShadowParams,
        requests=lambda p: {
            "shadow_storage": {},
            "volumes": {},
            **_events(
                [{"log": VOLSNAP_LOG, "provider": VOLSNAP_PROVIDER, "ids": list(p.event_ids), "since_hours": p.look_back_days * 24}]
            ),
        },
        severity="high",
        tags=("vss", "storage", "events"),
        verifies="For volumes holding system files, the shadow storage limit and the free space of the storage volume leave at least min_growth_gb, and VolSnap events 24/25 are absent within look_back_days.",
        why="The system state snapshot needs room to grow its shadow copy; when it cannot, the backup fails with an insufficient space error.",
        fix="Free space on the volume, or raise the limit: vssadmin resize shadowstorage /for=C: /on=C: /maxsize=20%",
    ),
    CheckDef(
        id="efi-lock-events",
        title="No EFI partition lock failures",
        family="vss",
        rule=efi_lock_events,
        params=EfiParams,
        requests=lambda p: _events(
            [{"log": WSB_LOG, "ids": list(p.event_ids), "since_hours": p.look_back_days * 24}]
        ),
        severity="medium",
        tags=("wsb", "events"),
        verifies="The Windows Backup log has no failure carrying 0x8078011E (EFI system partition locked) within look_back_days.",
        why="When security or backup software holds the EFI system partition, system state backup cannot snapshot it and fails.",
        fix="Ask the antivirus/security vendor to let the backup lock the EFI partition, or wait for other backup software to finish and retry.",
    ),
]

__all__ = ["CHECKS", "is_access_denied"]
