"""The fixed command line used where PSRP parameters do not exist (WinRS, SSH).

cmd.exe caps a command line at 8191 characters, so the command line is a constant,
short bootstrap; everything variable travels on stdin:

    line 1:   base64(UTF-8 JSON argument)       -- only [A-Za-z0-9+/=], so never code
    the rest: the static probe script (ASCII)

The bootstrap reads both and invokes the script as `& $sb -ArgsJson $json`. Nothing from
an inventory or playbook is ever spliced into PowerShell text. The lab parses this same
shape (`fleetcheck.lab.engine`), so keep the marker and layout stable.
"""

from __future__ import annotations

import base64

BOOTSTRAP_MARKER = "#fleetcheck:bootstrap=v1"

#: Windows PowerShell 3.0+ compatible (no ::new(), no classes).
BOOTSTRAP_SCRIPT = (
    "$ErrorActionPreference='Stop';"
    "[Console]::OutputEncoding=New-Object System.Text.UTF8Encoding $false;"
    "$fcA=[Console]::In.ReadLine();"
    "$fcJ=[System.Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($fcA));"
    "$fcS=[Console]::In.ReadToEnd();"
    "& ([scriptblock]::Create($fcS)) -ArgsJson $fcJ"
    f"\n{BOOTSTRAP_MARKER}\n"
)

POWERSHELL_EXE = "powershell.exe"
POWERSHELL_FLAGS = ("-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass")


def encode_command(script: str) -> str:
    """PowerShell's -EncodedCommand form: base64 of UTF-16-LE."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


def bootstrap_command_line() -> str:
    """The whole command line (well under cmd.exe's 8191-character limit)."""
    return " ".join((POWERSHELL_EXE, *POWERSHELL_FLAGS, "-EncodedCommand", encode_command(BOOTSTRAP_SCRIPT)))


def bootstrap_stdin(script: str, args_json: str) -> bytes:
    """What the bootstrap expects on stdin: the base64 argument line, then the script."""
    arg_line = base64.b64encode(args_json.encode("utf-8")).decode("ascii")
    return (arg_line + "\r\n" + script).encode("utf-8")


def parse_bootstrap_stdin(data: bytes) -> tuple[str, str]:
    """Inverse of `bootstrap_stdin` (used by the lab): returns (script, args_json)."""
    text = data.decode("utf-8")
    first, _, rest = text.partition("\n")
    args_json = base64.b64decode(first.strip()).decode("utf-8")
    return rest, args_json
