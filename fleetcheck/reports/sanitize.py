"""Host-controlled text made safe for terminals and XML, once, at the report boundary.

Host names, messages and observed values come from inventories and from hosts. An escape
sequence in them (ESC, OSC `ESC ] ... BEL`, the 8-bit CSI 0x9B) would drive the admin's
terminal, and the same bytes make a JUnit file ill-formed XML (XML 1.0 forbids most C0
controls). Every report goes through `sanitize_result` before it renders: each control
character becomes its visible Unicode "control picture" (ESC -> ␛), tab and newline stay.
"""

from __future__ import annotations

import re
from typing import Any

from fleetcheck.results import RunResult

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


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
    if isinstance(value, str):
        return sanitize_text(value)
    if isinstance(value, dict):
        return {_walk(k): _walk(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v) for v in value]
    return value


def sanitize_result(result: RunResult) -> RunResult:
    """A copy of `result` whose every string (host names, messages, observed values) is safe."""
    return RunResult.model_validate(_walk(result.model_dump(mode="python", by_alias=True)))
