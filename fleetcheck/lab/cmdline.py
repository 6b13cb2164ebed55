"""powershell.exe and cmd.exe command lines as Windows parses them (pure functions).

Shared by the WinRS cmd shell and the SSH endpoint (cmd.exe as the default shell), so both
accept and reject exactly the same command lines.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

#: cmd.exe's maximum command-line length (characters).
CMD_LINE_LIMIT = 8191


def split_command_line(line: str) -> list[str]:
    """Split like CommandLineToArgvW: whitespace separates, double quotes group, \\" is a quote."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = False
    have_token = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            j = i
            while j < len(line) and line[j] == "\\":
                j += 1
            count = j - i
            if j < len(line) and line[j] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    i = j + 1
                else:
                    i = j
                have_token = True
                continue
            current.append("\\" * count)
            i = j
            have_token = True
            continue
        if ch == '"':
            in_quotes = not in_quotes
            have_token = True
        elif ch in " \t" and not in_quotes:
            if have_token:
                args.append("".join(current))
                current, have_token = [], False
        else:
            current.append(ch)
            have_token = True
        i += 1
    if have_token:
        args.append("".join(current))
    return args


@dataclass
class PowerShellInvocation:
    """What a powershell.exe command line asks for."""

    script: str | None = None  # None: read the script from stdin (-Command -)
    from_stdin: bool = False
    error: str | None = None  # powershell.exe's own complaint about its arguments
    flags: dict[str, str] = field(default_factory=dict)


# powershell.exe parameters: full name -> takes a value. Any unambiguous prefix is accepted.
_PS_PARAMS: dict[str, bool] = {
    "command": True,
    "encodedcommand": True,
    "file": True,
    "noexit": False,
    "nologo": False,
    "noninteractive": False,
    "noprofile": False,
    "executionpolicy": True,
    "inputformat": True,
    "outputformat": True,
    "windowstyle": True,
    "version": True,
    "sta": False,
    "mta": False,
    "psconsolefile": True,
    "configurationname": True,
}
_PS_ALIASES = {
    "c": "command",
    "e": "encodedcommand",
    "ec": "encodedcommand",
    "f": "file",
    "ep": "executionpolicy",
}
_ENCODED_ERROR = (
    "Cannot process the command because the value specified with -EncodedCommand is not properly encoded. "
    "The value must be Base64 encoded."
)


def _resolve_param(token: str) -> str | None:
    if len(token) < 2 or token[0] not in "-/":
        return None
    name = token[1:].lower()
    if name in _PS_ALIASES:
        return _PS_ALIASES[name]
    matches = [p for p in _PS_PARAMS if p.startswith(name)]
    return matches[0] if len(matches) == 1 else None


def parse_powershell_args(args: list[str]) -> PowerShellInvocation:
    """Interpret powershell.exe's arguments (after the executable)."""
    inv = PowerShellInvocation()
    i = 0
    while i < len(args):
        param = _resolve_param(args[i])
        if param is None:  # the first non-parameter starts the command text
            inv.script = " ".join(args[i:])
            return inv
        if param == "command":
            rest = args[i + 1 :]
            if rest == ["-"] or not rest:
                inv.from_stdin = True
            else:
                inv.script = " ".join(rest)
            return inv
        if param == "encodedcommand":
            if i + 1 >= len(args):
                inv.error = "Missing argument for parameter EncodedCommand."
                return inv
            try:
                inv.script = base64.b64decode(args[i + 1], validate=True).decode("utf-16-le")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                inv.error = _ENCODED_ERROR
            i += 2
            continue
        if param == "file":
            inv.error = "The -File parameter is not supported by this simulated host."
            return inv
        if _PS_PARAMS[param]:
            inv.flags[param] = args[i + 1] if i + 1 < len(args) else ""
            i += 2
        else:
            inv.flags[param] = ""
            i += 1
    if inv.script is None:
        inv.from_stdin = True  # stdin redirected, no command: PowerShell reads commands from it
    return inv


def is_powershell(exe: str) -> bool:
    name = exe.replace("/", "\\").rsplit("\\", 1)[-1].lower()
    return name in ("powershell", "powershell.exe")
