"""`vssadmin list shadowstorage`: associations by volume GUID paths and sizes by position.

Used only when the CIM classes (bytes, no parsing) fail. Each association is a header line
followed by indented lines in a fixed order: for-volume, storage volume, used, allocated,
maximum. The console wraps at 80 columns, sometimes inside a `\\\\?\\Volume{...}` path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VOLUME = re.compile(r"(?:\(([A-Za-z]:)\))?\s*(\\\\\?\\Volume\{[0-9a-fA-F-]{36}\}\\?)")
_SIZE = re.compile(r"(\d+(?:[.,]\d+)?)\s*([^\W\d_]+)")
_PERCENT = re.compile(r"\(\s*(\d+(?:[.,]\d+)?)\s*%\s*\)")
_CONSOLE_WIDTH = 80

#: Unit tokens → bytes (vssadmin uses binary multiples). French octet spellings included.
_UNITS: dict[str, int] = {
    "b": 1,
    "bytes": 1,
    "octets": 1,
    "kb": 1024,
    "ko": 1024,
    "mb": 1024**2,
    "mo": 1024**2,
    "gb": 1024**3,
    "go": 1024**3,
    "tb": 1024**4,
    "to": 1024**4,
    "pb": 1024**5,
    "po": 1024**5,
    "eb": 1024**6,
    "eo": 1024**6,
}
UNBOUNDED = "UNBOUNDED"


@dataclass(frozen=True)
class Size:
    """A parsed size: `bytes` is None when the text could not be read (never guessed as 0)."""

    text: str
    bytes: int | None
    percent: float | None = None
    unbounded: bool = False


@dataclass(frozen=True)
class ShadowStorage:
    """One shadow storage association."""

    for_volume: str  # \\?\Volume{guid}\
    for_drive: str | None  # "C:" when printed
    storage_volume: str
    storage_drive: str | None
    used: Size
    allocated: Size
    maximum: Size


def parse_size(text: str) -> Size:
    """`2.06 GB (1%)`, `11,8 Go`, `UNBOUNDED`; unknown units give bytes=None."""
    raw = text.strip()
    pct_m = _PERCENT.search(raw)
    percent = float(pct_m.group(1).replace(",", ".")) if pct_m else None
    if raw.upper().startswith(UNBOUNDED):
        return Size(raw, None, percent, unbounded=True)
    m = _SIZE.search(raw[: pct_m.start()] if pct_m else raw)
    if not m:
        return Size(raw, None, percent)
    factor = _UNITS.get(m.group(2).casefold())
    if factor is None:
        return Size(raw, None, percent)
    return Size(raw, round(float(m.group(1).replace(",", ".")) * factor), percent)


def _unwrap(text: str) -> list[str]:
    """Lines with console wraps at exactly 80 columns joined back."""
    out: list[str] = []
    pending = ""
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = pending + line
        pending = ""
        if len(line) == _CONSOLE_WIDTH and not line.endswith(" "):
            pending = line
            continue
        out.append(line.rstrip())
    if pending:
        out.append(pending)
    return out


def _value(line: str) -> str:
    m = re.search(r"[:：]\s", line) or re.search(r"[:：]", line)
    return line[m.end() :].strip() if m else line.strip()


def parse_shadowstorage(text: str) -> list[ShadowStorage]:
    """Every association in the output; incomplete blocks are dropped."""
    lines = _unwrap(text)
    result: list[ShadowStorage] = []
    i = 0
    while i < len(lines):
        # An association: two consecutive indented lines with volume paths, then three size lines.
        block = lines[i : i + 5]
        if len(block) == 5 and all(ln[:1].isspace() for ln in block):
            v1, v2 = _VOLUME.search(block[0]), _VOLUME.search(block[1])
            if v1 and v2:
                result.append(
                    ShadowStorage(
                        for_volume=v1.group(2),
                        for_drive=v1.group(1),
                        storage_volume=v2.group(2),
                        storage_drive=v2.group(1),
                        used=parse_size(_value(block[2])),
                        allocated=parse_size(_value(block[3])),
                        maximum=parse_size(_value(block[4])),
                    )
                )
                i += 5
                continue
        i += 1
    return result
