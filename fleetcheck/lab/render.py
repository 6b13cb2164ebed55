"""How engine values look as console text (WinRS, SSH, `Out-String -Stream`) and as CLIXML errors.

Only what fleetcheck and smoke tests need: strings as-is, numbers, System.Version as the
table PowerShell prints, hashtables as Name/Value. The facts JSON is a string anyway.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from fleetcheck.lab.engine import LabErrorRecord, PSVersionValue

CLIXML_HEADER = "#< CLIXML\r\n"


def out_string_lines(value: Any) -> list[str]:
    """`Out-String -Stream` of one object."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").split("\n")
    if isinstance(value, PSVersionValue):
        major, minor, build, rev = value.parts()
        return [
            "",
            "Major  Minor  Build  Revision",
            "-----  -----  -----  --------",
            f"{major:<6} {minor:<6} {build:<6} {rev:<8}".rstrip(),
            "",
            "",
        ]
    if isinstance(value, dict):
        width = max([4, *(len(str(k)) for k in value)])
        lines = ["", f"{'Name':<{width}} Value", f"{'----':<{width}} -----"]
        lines += [f"{k!s:<{width}} {v}" for k, v in value.items()]
        return [*lines, "", ""]
    if isinstance(value, bool):
        return ["True" if value else "False"]
    return [str(value)]


def console_text(values: list[Any]) -> str:
    """Console text of several objects, CRLF line ends as on Windows."""
    return "".join(line + "\r\n" for value in values for line in out_string_lines(value))


def error_text(record: LabErrorRecord, script: str = "") -> str:
    """The formatted error PowerShell 5.1 writes to its error stream."""
    command = record.command or (record.target or "")
    first_line = (script.strip().splitlines() or [command])[0][:120]
    lines = [f"{command} : {record.message}" if command else record.message]
    if command:
        lines += ["At line:1 char:1", f"+ {first_line}", "+ " + "~" * max(1, len(command))]
    target = f"({record.target}:String)" if record.target else "(:)"
    lines += [
        f"    + CategoryInfo          : {record.category}: {target} [], {record.reason}",
        f"    + FullyQualifiedErrorId : {record.fully_qualified_error_id}",
        " ",
    ]
    return "\r\n".join(lines) + "\r\n"


def _clixml_escape(text: str) -> str:
    return escape(text).replace("\r", "_x000D_").replace("\n", "_x000A_")


def clixml_errors(texts: list[str]) -> str:
    """stderr of `powershell -EncodedCommand` when errors were written (`#< CLIXML` + Objs)."""
    body = "".join(
        f'<S S="Error">{_clixml_escape(line + chr(13) + chr(10))}</S>' for text in texts for line in text.rstrip("\r\n").split("\r\n")
    )
    return f'{CLIXML_HEADER}<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">{body}</Objs>'
