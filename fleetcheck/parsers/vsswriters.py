"""`vssadmin list writers`: writer blocks found by their two GUID lines, state by `[n]`.

Block layout (every language): name line with the name in quotes, writer id `{guid}`, instance
id `{guid}`, state line `... [n] text`, last-error line. Labels are translated, so we anchor on
the GUID pair and read the neighbouring lines by position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GUID = re.compile(r"\{([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}")
_STATE = re.compile(r"\[(\d{1,2})\]")
_LABEL_END = re.compile(r"[:：]\s*")
_QUOTED = re.compile(r"['\u2018\u2019\"](.+)['\u2018\u2019\"]")

#: VSS_WRITER_STATE values (vssadmin prints the number in brackets).
WRITER_STATES: dict[int, str] = {
    0: "UNKNOWN",
    1: "STABLE",
    2: "WAITING_FOR_FREEZE",
    3: "WAITING_FOR_THAW",
    4: "WAITING_FOR_POST_SNAPSHOT",
    5: "WAITING_FOR_BACKUP_COMPLETE",
    6: "FAILED_AT_IDENTIFY",
    7: "FAILED_AT_PREPARE_BACKUP",
    8: "FAILED_AT_PREPARE_SNAPSHOT",
    9: "FAILED_AT_FREEZE",
    10: "FAILED_AT_THAW",
    11: "FAILED_AT_POST_SNAPSHOT",
    12: "FAILED_AT_BACKUP_COMPLETE",
    13: "FAILED_AT_PRE_RESTORE",
    14: "FAILED_AT_POST_RESTORE",
    15: "FAILED_AT_BACKUPSHUTDOWN",
}

#: "No error" as vssadmin prints it in the languages we have seen or could confirm. Only a
#: secondary signal: an unrecognised text yields `last_error_ok = None`, never a failure.
_NO_ERROR_TEXTS = frozenset(
    s.casefold()
    for s in (
        "No error",  # en
        "Aucune erreur",  # fr
        "Kein Fehler",  # de
        "Geen fout",  # nl
        "Sin error",  # es
        "Nessun errore",  # it
        "Nenhum erro",  # pt
        "오류 없음",  # ko
        "エラーなし",  # ja
        "无错误",  # zh-CN
        "沒有錯誤",  # zh-TW
    )
)
#: English last-error texts that do signal a problem (seen in real captures / vssadmin resources).
_ERROR_TEXTS = frozenset(
    s.casefold()
    for s in (
        "Retryable error",
        "Non-retryable error",
        "Not responding",
        "Timed out",
        "Unexpected error",
        "Inconsistent shadow copy",
        "Out of resources",
    )
)


@dataclass(frozen=True)
class VssWriter:
    """One writer block."""

    name: str
    writer_id: str  # lower-case GUID without braces
    instance_id: str
    state: int | None  # None when the `[n]` could not be read
    state_text: str  # the localized text after `[n]`, for display only
    last_error: str  # localized text, for display only
    last_error_ok: bool | None  # True = "no error", False = a known error text, None = unrecognised

    @property
    def state_name(self) -> str:
        return WRITER_STATES.get(self.state, "UNKNOWN") if self.state is not None else "UNREADABLE"

    @property
    def healthy(self) -> bool:
        """Stable or waiting for backup completion, and not reporting a known error."""
        return self.state in (1, 5) and self.last_error_ok is not False


def _after_label(line: str) -> str:
    """The value part of `label : value` (ASCII or full-width colon)."""
    m = _LABEL_END.search(line)
    return line[m.end() :].strip() if m else line.strip()


def _classify_error(text: str) -> bool | None:
    key = " ".join(text.split()).casefold()
    if key in _NO_ERROR_TEXTS:
        return True
    if key in _ERROR_TEXTS:
        return False
    return None


def parse_vss_writers(text: str) -> list[VssWriter]:
    """All writer blocks of the output, in order; banners and prompts are ignored."""
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    # Each line searched once ("{" first: most lines hold no GUID, and `in` is cheaper than a regex).
    guids = [_GUID.search(ln) if "{" in ln else None for ln in lines]
    writers: list[VssWriter] = []
    i = 0
    while i < len(lines) - 1:
        first, second = guids[i], guids[i + 1]
        if not (first and second):
            i += 1
            continue
        name_line = lines[i - 1] if i > 0 else ""
        quoted = _QUOTED.search(name_line)
        name = quoted.group(1) if quoted else _after_label(name_line)
        state: int | None = None
        state_text = last_error = ""
        rest = lines[i + 2 : i + 4]
        if rest:
            m = _STATE.search(rest[0])
            if m:
                state = int(m.group(1))
                state_text = rest[0][m.end() :].strip()
        if len(rest) > 1 and not guids[i + 3]:
            last_error = _after_label(rest[1])
        writers.append(
            VssWriter(
                name=name,
                writer_id=first.group(1).lower(),
                instance_id=second.group(1).lower(),
                state=state,
                state_text=state_text,
                last_error=last_error,
                last_error_ok=_classify_error(last_error) if last_error else None,
            )
        )
        i += 2
    return writers
