"""Host-controlled text made safe for terminals and XML, once, at the report boundary.

Host names, messages and observed values come from inventories and from hosts. An escape
sequence in them (ESC, OSC `ESC ] ... BEL`, the 8-bit CSI 0x9B) would drive the admin's
terminal, and the same bytes make a JUnit file ill-formed XML (XML 1.0 forbids most C0
controls). Every report goes through `sanitize_result` before it renders: each control
character becomes its visible Unicode "control picture" (ESC -> ␛), tab and newline stay.

Almost every nightly result holds no such character, so `sanitize_result` first asks the
result's own JSON (pydantic serializes in Rust, ~40x cheaper than walking the dump in
Python) and only walks and rebuilds the result when something there could be unsafe.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

from pydantic import BaseModel

from fleetcheck.results import HostResult, RunResult, map_text

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
#: What JSON makes of an unsafe character once every escaped backslash (a pair) is removed:
#: the C0 controls become escapes (backslash b, f, r or u00XX); everything else is written raw.
_ESCAPES = ("\\b", "\\f", "\\r", "\\u")
_UNSAFE_ESCAPE = re.compile(
    r"\\(?:[bfr]|u00[01][0-9a-fA-F]|u007[fF]|u00[89][0-9a-fA-F]|u[dD][89a-fA-F][0-9a-fA-F]{2}|u[fF]{3}[eEfF])"
)


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ .. ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def sanitize_text(text: str) -> str:
    """`text` without terminal control sequences or characters XML 1.0 cannot hold."""
    return _UNSAFE.sub(_picture, text)


def _walk(value: Any) -> Any:
    return map_text(value, sanitize_text)


def may_be_unsafe(result: RunResult) -> bool:
    """False only when no string anywhere in `result` holds a character `sanitize_text` replaces."""
    return _run_may_be_unsafe(result) or any(_may_be_unsafe(host) for host in result.hosts)


def _may_be_unsafe(model: BaseModel, **dump: Any) -> bool:
    """Read from the model's JSON with C-speed string operations (a regex over megabytes of
    JSON would cost more than the walk it saves); a false alarm only costs the walk."""
    try:
        text = model.model_dump_json(**dump)
    except ValueError:  # a lone surrogate cannot be UTF-8: only the walk can replace it
        return True
    return _json_may_be_unsafe(text)


def _json_may_be_unsafe(text: str) -> bool:
    if "\x7f" in text or (not text.isascii() and _UNSAFE.search(text)):
        return True
    bare = text.replace("\\\\", "")  # what is left of a backslash starts an escape
    return any(e in bare for e in _ESCAPES) and _UNSAFE_ESCAPE.search(bare) is not None


def _run_may_be_unsafe(result: RunResult) -> bool:
    return _may_be_unsafe(result, by_alias=True, exclude={"hosts"})


#: Results `sanitize_result` returned: id -> (the result, weakly; its host list's id and length
#: then). Every output of a run (each report, then the terminal table) asks about the same
#: object; reading 10,000 hosts' JSON again for each would cost a second per output. Results
#: are not changed in place after the run (waivers and merges make new ones), and a new or
#: longer host list is checked again.
_CLEAN: dict[int, tuple[weakref.ref[RunResult], int, int]] = {}


#: Host rows found clean when the run recorded them: id -> the row, weakly (see `note_row`).
_CLEAN_ROWS: dict[int, weakref.ref[HostResult]] = {}


def note_row(host: HostResult, text: str | None) -> None:
    """Check a host's row as the run records it, from its compact JSON (`text`, which the
    journal writes anyway; None when the row cannot be encoded).

    The check then costs nothing at the report boundary, where a nightly run waits for it
    after its last host: a row recorded clean is not read again. A row is not changed in
    place once recorded (waivers and merges copy it), so a copy is checked afresh."""
    if text is None or _json_may_be_unsafe(text):
        return
    key = id(host)
    _CLEAN_ROWS[key] = weakref.ref(host, lambda _ref: _CLEAN_ROWS.pop(key, None))


def row_known_clean(host: HostResult) -> bool:
    """True when `note_row` found this very row clean (a copy is not known)."""
    ref = _CLEAN_ROWS.get(id(host))
    return ref is not None and ref() is host


def _known_clean(result: RunResult) -> bool:
    entry = _CLEAN.get(id(result))
    return entry is not None and entry[0]() is result and entry[1:] == (id(result.hosts), len(result.hosts))


def _remember(result: RunResult) -> RunResult:
    key = id(result)
    _CLEAN[key] = (weakref.ref(result, lambda _ref: _CLEAN.pop(key, None)), id(result.hosts), len(result.hosts))
    return result


def sanitize_result(result: RunResult) -> RunResult:
    """`result` with every string (host names, messages, observed values) safe.

    Host by host, so a fleet with one hostile host rebuilds one row, and a clean result is
    returned as it is (no copy of 10,000 hosts' results is made to find nothing)."""
    if _known_clean(result):
        return result
    hosts = [
        HostResult.model_validate(_walk(host.model_dump(mode="python")))
        if not row_known_clean(host) and _may_be_unsafe(host)
        else host
        for host in result.hosts
    ]
    if _run_may_be_unsafe(result):
        clean = RunResult.model_validate(_walk(result.model_dump(mode="python", by_alias=True, exclude={"hosts"})))
        return _remember(clean.model_copy(update={"hosts": hosts}))
    if all(new is old for new, old in zip(hosts, result.hosts, strict=True)):
        return _remember(result)
    return _remember(result.model_copy(update={"hosts": hosts}))
