"""The native text a simulated host prints (w32tm, vssadmin) and its clock.

The probes ship native text back raw and the product parses it (facts remote, judgement
local), so the lab must print it in the exact layout of the real English captures, CRLF and
all; the parsers' tests run against these renderings as well as against the captures.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleetcheck.lab.machine import MachineState

#: Native text a probe ships at most (the probes cut there too, and say so).
NATIVE_MAX = 262_144
#: vssadmin's "UNBOUNDED" maximum shadow storage.
UNBOUNDED = 0xFFFFFFFFFFFFFFFF


def host_now(machine: MachineState) -> datetime:
    """The host's clock: real UTC now plus the machine's configured offset."""
    return datetime.now(UTC) + timedelta(seconds=machine.time.clock_offset_seconds)


def iso(dt: datetime) -> str:
    """Like .ToUniversalTime().ToString('o'): 7 fractional digits and Z."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond:06d}0Z"



def render_w32tm(m: MachineState, now: datetime) -> str:
    """`w32tm /query /status` in the layout of the real English capture (CRLF)."""
    w = m.time.w32tm
    leap_text = {0: "no warning", 1: "last minute has 61 seconds", 2: "last minute has 59 seconds",
                 3: "not synchronized"}.get(w.leap_indicator, "unknown")
    stratum_text = ("unspecified" if w.stratum == 0 else "primary reference - syncd by radio clock"
                    if w.stratum == 1 else "secondary reference - syncd by (S)NTP")
    if w.last_sync_minutes_ago is None:
        last = "unspecified"
    else:
        t = now + timedelta(minutes=utc_offset_minutes(m, now) - w.last_sync_minutes_ago)
        last = f"{t.month}/{t.day}/{t.year} {t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    tick_ns = 1e9 * 2.0**w.precision
    lines = [
        f"Leap Indicator: {w.leap_indicator}({leap_text})",
        f"Stratum: {w.stratum} ({stratum_text})",
        f"Precision: {w.precision} ({tick_ns:.3f}ns per tick)",
        f"Root Delay: {w.root_delay}",
        f"Root Dispersion: {w.root_dispersion}",
        f"ReferenceId: {w.reference_id}",
        f"Last Successful Sync Time: {last}",
        f"Source: {w.source}",
        f"Poll Interval: {w.poll_interval} ({2 ** w.poll_interval}s)",
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


#: Windows time zone ids the scenarios use -> IANA zone and standard offset (fallback without tzdata).
WINDOWS_ZONES = {
    "UTC": ("UTC", 0),
    "W. Europe Standard Time": ("Europe/Amsterdam", 60),
    "Korea Standard Time": ("Asia/Seoul", 540),
    "Eastern Standard Time": ("America/New_York", -300),
    "GMT Standard Time": ("Europe/London", 0),
}


def utc_offset_minutes(m: MachineState, now: datetime) -> int:
    """The host's current UTC offset: configured, or derived from its time zone id (with DST)."""
    if m.time.utc_offset_minutes is not None:
        return m.time.utc_offset_minutes
    iana, standard = WINDOWS_ZONES.get(m.time.timezone_id, ("UTC", 0))
    try:
        from zoneinfo import ZoneInfo

        offset = now.astimezone(ZoneInfo(iana)).utcoffset()
    except Exception:  # no tz database on this machine
        return standard
    return int(offset.total_seconds() // 60) if offset is not None else standard



_WRITER_STATES = {0: "Unknown", 1: "Stable", 2: "Waiting for freeze", 3: "Waiting for thaw",
                  4: "Waiting for post snapshot", 5: "Waiting for completion"}


def render_vss_writers(m: MachineState) -> str:
    """`vssadmin list writers` in the layout of the real English captures (CRLF)."""
    lines = [
        "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool",
        "(C) Copyright 2001-2013 Microsoft Corp.",
        "",
    ]
    # No "Waiting for responses" line: the real captures in ../shared/samples go straight to the writers.
    for name, w in m.vss.writers.items():
        lines += [
            f"Writer name: '{name}'",
            f"   Writer Id: {w.id}",
            f"   Writer Instance Id: {w.instance_id}",
            f"   State: [{w.state}] {_WRITER_STATES.get(w.state, 'Failed')}",
            f"   Last error: {w.last_error}",
            "",
        ]
    return "\r\n".join(lines) + "\r\n"



def device_id(m: MachineState, ref: str) -> str:
    if ref.startswith("\\\\?\\"):
        return ref
    letter = ref.rstrip("\\").upper()
    for v in m.volumes.values():
        if (v.drive_letter or "").upper() == letter:
            return v.device_id
    return ref



def _size(n: int) -> str:
    """vssadmin's size: three significant digits and a unit."""
    value, unit = float(n), "B"
    for u in ("KB", "MB", "GB", "TB", "PB"):
        if value < 1024:
            break
        value, unit = value / 1024, u
    digits = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{digits}f} {unit}"


def render_shadowstorage(m: MachineState) -> str:
    """`vssadmin list shadowstorage` in the layout of the real English capture (CRLF)."""
    lines = ["vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool",
             "(C) Copyright 2001-2013 Microsoft Corp.", ""]
    for a in m.shadow_storage.associations.values():
        vol, diff = device_id(m, a.volume), device_id(m, a.diff_volume)
        cap = next((v.capacity for v in m.volumes.values() if v.device_id == vol), None) or 1
        letter = next((v.drive_letter for v in m.volumes.values() if v.device_id == vol), "") or ""
        dletter = next((v.drive_letter for v in m.volumes.values() if v.device_id == diff), "") or ""
        limit = "UNBOUNDED" if a.max_bytes >= UNBOUNDED else f"{_size(a.max_bytes)} ({a.max_bytes * 100 // cap}%)"
        lines += [
            "Shadow Copy Storage association",
            f"   For volume: ({letter}){vol}",
            f"   Shadow Copy Storage volume: ({dletter}){diff}",
            f"   Used Shadow Copy Storage space: {_size(a.used_bytes)} ({a.used_bytes * 100 // cap}%)",
            f"   Allocated Shadow Copy Storage space: {_size(a.allocated_bytes)} ({a.allocated_bytes * 100 // cap}%)",
            f"   Maximum Shadow Copy Storage space: {limit}",
            "",
        ]
    return "\r\n".join(lines) + "\r\n"

