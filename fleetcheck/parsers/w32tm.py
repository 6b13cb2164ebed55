"""`w32tm /query /status [/verbose]`: numeric fields read by their position, labels ignored.

The status block is nine `label: value` lines in a fixed order (leap indicator, stratum,
precision, root delay, root dispersion, reference id, last sync time, source, poll interval);
`/verbose` appends phase offset, clock rate, state machine, flags, role, last sync error and
seconds since the last good sync. Labels are translated and can wrap, so we find the block by
the shape of its values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LEADING_INT = re.compile(r"^\s*(-?\d+)")
_SECONDS = re.compile(r"^\s*(-?\d+(?:[.,]\d+)?)\s*s")
_REFID = re.compile(r"0x([0-9A-Fa-f]{1,8})")
_REF_SOURCE = re.compile(r"\(\s*[^:：]*[:：]\s*\"?([^\")]+)\"?\s*\)")
_COLON = re.compile(r"[:：]")
_DIGIT = re.compile(r"\d")
_LEAP = re.compile(r"[0-3]\s*\(")
_STRATUM = re.compile(r"\d+\s*\(")
_LOCL = 0x4C4F434C  # "LOCL": the local CMOS clock, free running


@dataclass(frozen=True)
class W32tmStatus:
    """What the rules need from the status output; `None` where a value was unreadable."""

    leap_indicator: int | None
    stratum: int | None
    reference_id: int | None
    reference_source: str  # IP address or 4-letter name, as printed
    last_sync_text: str  # locale-formatted; digits-free text ("unspecified") means never
    source: str  # peer name without the ",0x9" flags
    poll_interval: int | None
    phase_offset_s: float | None = None
    state_machine: int | None = None
    last_sync_error: int | None = None
    seconds_since_good_sync: float | None = None

    @property
    def ever_synced(self) -> bool:
        return any(ch.isdigit() for ch in self.last_sync_text)

    @property
    def local_clock(self) -> bool:
        """The host is its own source (free-running CMOS clock)."""
        return self.reference_id == _LOCL or (self.reference_id == 0 and self.stratum in (0, 1))

    @property
    def synchronized(self) -> bool:
        """Synchronized to an outside source: not alarm, sane stratum, a peer, a sync seen."""
        return (
            self.leap_indicator is not None
            and self.leap_indicator != 3
            and self.stratum is not None
            and 1 <= self.stratum <= 15
            and self.reference_id not in (None, 0)
            and not self.local_clock
            and self.ever_synced
        )


def _int(value: str) -> int | None:
    m = _LEADING_INT.match(value)
    return int(m.group(1)) if m else None


def _seconds(value: str) -> float | None:
    m = _SECONDS.match(value)
    return float(m.group(1).replace(",", ".")) if m else None


def _split(line: str) -> tuple[str, str] | None:
    """`label: value` → parts; None for lines that continue a wrapped value."""
    m = _COLON.search(line)
    if not m:
        return None
    label = line[: m.start()].strip()
    if not label or _DIGIT.search(label) or label.startswith("("):
        return None
    return label, line[m.end() :].strip()


def _fields(text: str) -> list[list[str]]:
    """Values grouped into blank-line separated sections; wrapped lines glued back on."""
    sections: list[list[str]] = [[]]
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not raw.strip():
            if sections[-1]:
                sections.append([])
            continue
        parts = _split(raw)
        if parts is None:
            if sections[-1]:
                sections[-1][-1] += " " + raw.strip()
            continue
        sections[-1].append(parts[1])
    return [s for s in sections if s]


def _find_status(values: list[str]) -> int | None:
    """Index of the leap indicator: `n(...)`, then `n (...)`, and a 0x reference id 5 later."""
    for i in range(len(values) - 8):
        leap, stratum, refid = values[i], values[i + 1], values[i + 5]
        if (
            _LEAP.match(leap)
            and _STRATUM.match(stratum)
            and _REFID.match(refid.strip())
        ):
            return i
    return None


def parse_w32tm_status(text: str) -> W32tmStatus | None:
    """The status, or None when no status block is recognisable (e.g. an error message)."""
    sections = _fields(text)
    for n, values in enumerate(sections):
        start = _find_status(values)
        if start is None:
            continue
        v = values[start:]
        ref_m = _REFID.search(v[5])
        src_m = _REF_SOURCE.search(v[5])
        verbose = values[start + 9 :] or (sections[n + 1] if n + 1 < len(sections) else [])
        status = W32tmStatus(
            leap_indicator=_int(v[0]),
            stratum=_int(v[1]),
            reference_id=int(ref_m.group(1), 16) if ref_m else None,
            reference_source=src_m.group(1).strip() if src_m else "",
            last_sync_text=v[6],
            source=v[7].split(",0x")[0].strip(),
            poll_interval=_int(v[8]),
        )
        if len(verbose) >= 7:
            status = W32tmStatus(
                **{
                    **status.__dict__,
                    "phase_offset_s": _seconds(verbose[0]),
                    "state_machine": _int(verbose[2]),
                    "last_sync_error": _int(verbose[5]),
                    "seconds_since_good_sync": _seconds(verbose[6]),
                }
            )
        return status
    return None
