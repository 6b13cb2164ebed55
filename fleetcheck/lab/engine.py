"""The lab's stand-in for PowerShell: answers a script from the machine state.

The lab never runs PowerShell. Every shell (PSRP pipeline, WinRS `powershell -EncodedCommand`,
SSH exec) hands the engine the same `ScriptRequest` and an `OutputSink`, and turns what the
engine writes into its own wire format:

    request = ScriptRequest(script=text, parameters={"ArgsJson": "..."}, transport="psrp", user="srv01\\fleetcheck")
    outcome = await run_script(host, request, sink)

- `sink.write_output(value)` for each pipeline object (`str`, `int`, `dict`, or `PSVersionValue`);
- `sink.write_error(record)` for each non-terminating error record (`LabErrorRecord`);
- the returned `ScriptOutcome.terminating` is set when the script "threw" (PSRP: pipeline
  Failed; text transports: error on stderr, exit code 1).

`ScriptOutcome.exit_code` is what powershell.exe would exit with (0, or 1 after an error).
Fleetcheck bundles (marker `# fleetcheck:bundle=v1`) are answered by
`fleetcheck.lab.simprobes.answer_bundle(host, script, args_json)`; a handful of generic
commands are answered here; anything else gets PowerShell's CommandNotFoundException record.
Engine-level faults (`on: script`): `slow_output`, `hang`, `oversized_output`, `bad_json`,
`probe_throws`.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetcheck.lab.faults import pick_fault
from fleetcheck.lab.host import LabHost
from fleetcheck.probes.bundle import BUNDLE_MARKER
from fleetcheck.remedies.bundle import REMEDY_MARKER

RECEIVED_SCRIPTS_KEPT = 50
_SCRIPT_RECORD_CAP = 4096  # characters of each received script kept for tests
_OVERSIZED_DEFAULT = 4 * 1024 * 1024

_NOT_RECOGNIZED = (
    "The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable "
    "program. Check the spelling of the name, or if a path was included, verify that the path is correct "
    "and try again."
)


@dataclass(frozen=True)
class LabErrorRecord:
    """The parts of a PowerShell ErrorRecord that clients show or classify."""

    message: str
    exception_type: str = "System.Management.Automation.RuntimeException"
    category: str = "NotSpecified"  # ErrorCategory name
    reason: str = "RuntimeException"
    fully_qualified_error_id: str = "RuntimeException"
    target: str | None = None
    command: str = ""  # what PowerShell prints as "X : message"


@dataclass(frozen=True)
class PSVersionValue:
    """A System.Version (what `$PSVersionTable.PSVersion` returns)."""

    text: str

    def parts(self) -> tuple[int, int, int, int]:
        nums = [int(p) for p in re.findall(r"\d+", self.text)[:4]]
        nums += [-1] * (4 - len(nums))
        return nums[0], nums[1], nums[2], nums[3]


@dataclass
class ScriptRequest:
    """What a shell received: one script plus named parameters."""

    script: str
    parameters: dict[str, Any] = field(default_factory=dict)
    transport: str = "psrp"  # psrp | winrs | ssh
    user: str = ""


@dataclass
class ScriptOutcome:
    terminating: LabErrorRecord | None = None
    exit_code: int = 0
    hung: bool = False
    should_exit: int | None = None  # `exit N` ran: PSRP hosts get SetShouldExit(N)


class OutputSink(Protocol):
    """Where the engine writes; each shell implements it for its wire format."""

    def write_output(self, value: Any) -> None: ...

    def write_error(self, record: LabErrorRecord) -> None: ...


def not_recognized(name: str) -> LabErrorRecord:
    """PowerShell's record for an unknown command."""
    return LabErrorRecord(
        message=_NOT_RECOGNIZED.format(name=name),
        exception_type="System.Management.Automation.CommandNotFoundException",
        category="ObjectNotFound",
        reason="CommandNotFoundException",
        fully_qualified_error_id="CommandNotFoundException",
        target=name,
        command=name,
    )


def _kept(text: str) -> str:
    # interned: hundreds of hosts receiving the same bundle share one copy
    return sys.intern(str(text[:_SCRIPT_RECORD_CAP]))  # str(): psrpcore hands PSString, which cannot be interned


def _record_script(host: LabHost, request: ScriptRequest) -> None:
    params = {k: (_kept(v) if isinstance(v, str) else v) for k, v in request.parameters.items()}
    host.received_scripts.append(
        {
            "script": _kept(request.script),
            "script_length": len(request.script),
            "parameters": params,
            "transport": request.transport,
        }
    )
    if len(host.received_scripts) > RECEIVED_SCRIPTS_KEPT:
        del host.received_scripts[: len(host.received_scripts) - RECEIVED_SCRIPTS_KEPT]


def whoami(host: LabHost, user: str) -> str:
    """`whoami` prints `domain\\user` in lower case; local accounts use the computer name."""
    if "\\" in user:
        dom, _, name = user.partition("\\")
        if dom in ("", "."):
            dom = host.machine.hostname
        return f"{dom}\\{name}".lower()
    for u in host.machine.users:
        if u.name.lower() == user.lower() and u.domain:
            return f"{u.domain}\\{u.name}".lower()
    return f"{host.machine.hostname}\\{user}".lower()


_LITERAL = re.compile(r"""^(?:write-output|echo|write-host)\s+(?:'((?:[^']|'')*)'|"([^"$`]*)"|([^\s'"$`;|&()]+))$""", re.I)


#: Lines that wrappers put around a command without changing its output: comments, and what
#: Ansible's PowerShell shell plugin adds (strict mode, exit-code propagation).
_WRAPPER_LINE = re.compile(
    r"^\s*(?:#.*"
    r"|Set-StrictMode\s+-Version\s+\S+\s*;?"
    r"|\$(?:ErrorActionPreference|ProgressPreference)\s*=\s*'?\w+'?\s*;?"
    r"|If\s*\(-not\s+\$\?\)\s*\{.*\bexit\b.*\}\s*)$",
    re.I,
)


def answer_generic(host: LabHost, script: str, user: str) -> Any | None:
    """The handful of commands third-party clients use as smoke tests; None when unknown."""
    lines = [line for line in script.splitlines() if line.strip() and not _WRAPPER_LINE.match(line)]
    text = "\n".join(lines).strip().rstrip(";").strip()
    low = text.lower()
    if low in ("hostname", "hostname.exe", "$env:computername"):
        return host.machine.hostname
    if low in ("whoami", "whoami.exe"):
        return whoami(host, user)
    if low in ("$psversiontable.psversion", "$psversiontable.psversion.tostring()"):
        value = PSVersionValue(host.machine.powershell.version)
        return value.text if low.endswith("tostring()") else value
    match = _LITERAL.match(text)
    if match:
        single, double, bare = match.groups()
        if single is not None:
            return single.replace("''", "'")
        return double if double is not None else bare
    return None


def _first_word(script: str) -> str:
    text = script.strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not _WRAPPER_LINE.match(line):
            return re.split(r"[\s;|(]", line, maxsplit=1)[0] or line
    return text[:64]


def _answer_bundle(host: LabHost, script: str, args_json: str) -> str | LabErrorRecord:
    try:
        simprobes = importlib.import_module("fleetcheck.lab.simprobes")
    except ImportError:
        return LabErrorRecord(
            message="The lab cannot answer fleetcheck bundles yet (fleetcheck.lab.simprobes is missing).",
            fully_qualified_error_id="LabSimprobesMissing",
        )
    try:
        answer = simprobes.answer_bundle(host, script, args_json)
    except ValueError as exc:  # unusable ArgsJson: the real script stops where it binds the argument
        return LabErrorRecord(
            message=str(exc),
            exception_type="System.ArgumentException",
            category="InvalidArgument",
            reason="ArgumentException",
            fully_qualified_error_id="System.ArgumentException,Microsoft.PowerShell.Commands.ConvertFromJsonCommand",
        )
    return str(answer)


async def _sleep_fault(host: LabHost) -> None:
    spec = pick_fault(host, "script", ("latency",), exact=True)  # `*` latency is per request already
    if spec is not None and spec.value:
        await asyncio.sleep(spec.value)


async def run_script(host: LabHost, request: ScriptRequest, sink: OutputSink) -> ScriptOutcome:
    """Answer one script; see the module docstring for the contract."""
    _record_script(host, request)
    await _sleep_fault(host)
    if pick_fault(host, "script", ("hang",)) is not None:
        await asyncio.Event().wait()  # never set: cancelled when the shell goes away
    if (spec := pick_fault(host, "script", ("probe_throws",))) is not None:
        return ScriptOutcome(
            terminating=LabErrorRecord(
                message="Exception calling \"Invoke\" with \"0\" argument(s): \"Simulated probe failure.\"",
                exception_type="System.Management.Automation.MethodInvocationException",
                category="NotSpecified",
                reason="MethodInvocationException",
                fully_qualified_error_id="ScriptMethodRuntimeException",
            ),
            exit_code=1,
        )
    slow = pick_fault(host, "script", ("slow_output",))
    delay = float(slow.value or 0.5) if slow is not None else 0.0
    loop = asyncio.get_running_loop()
    first_due = loop.time() + delay
    if delay:
        # A slow script works during its run time: the lab computes the answer halfway through it,
        # not in the burst of sessions that start together (which the lab's CPU would then
        # delay behind its answers), nor at the end, where all the answers would come due at once.
        await asyncio.sleep(delay / 2)
    if REMEDY_MARKER in request.script:  # remedy scripts change the machine: fleetcheck.lab.remedies
        values, outcome = await importlib.import_module("fleetcheck.lab.remedies").answer_remedy(host, request)
    else:
        values, outcome = _answer(host, request)
    if (spec := pick_fault(host, "script", ("bad_json",))) is not None:
        values = ['{"schema": "fleetcheck/facts/v1", "probes": {"truncated": [1, 2,']
    if (spec := pick_fault(host, "script", ("oversized_output",))) is not None:
        size = int(spec.value or _OVERSIZED_DEFAULT)
        line = "X" * 1023
        values = [line] * max(1, size // 1024)
    for index, value in enumerate(values):
        if delay:
            # each item `delay` after the one before; the first `delay` after the script started
            await asyncio.sleep(max(0.0, first_due - loop.time()) if index == 0 else delay)
        if isinstance(value, LabErrorRecord):
            sink.write_error(value)
        else:
            sink.write_output(value)
    return outcome


#: `exit $LASTEXITCODE` / `exit 3` as the last line (Ansible's raw wrapper and similar).
_EXIT_LINE = re.compile(r"^\s*exit(?:\s+(\$LASTEXITCODE|-?\d+))?\s*;?\s*$", re.I)
#: `cmd.exe /c X`, `cmd /c X`, `powershell.exe -Command X`: run X, as the wrapper would.
_WRAPPED = re.compile(
    r"^\s*(?:&\s*)?(?:cmd(?:\.exe)?\s+/c|powershell(?:\.exe)?\s+(?:-NoProfile\s+|-NonInteractive\s+)*-Command)\s+(.+)$",
    re.I,
)


def _split_exit(script: str) -> tuple[str, str | None]:
    """The script without a trailing `exit` line, and that line's argument ("" for a bare exit)."""
    lines = script.rstrip().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if lines:
        match = _EXIT_LINE.match(lines[-1])
        if match:
            return "\n".join(lines[:-1]), match.group(1) or ""
    return script, None


def _unwrap(script: str) -> str:
    match = _WRAPPED.match(script.strip())
    return match.group(1).strip().strip('"') if match and "\n" not in script.strip() else script


def _answer(host: LabHost, request: ScriptRequest) -> tuple[list[Any], ScriptOutcome]:
    script, exit_arg = _split_exit(request.script)
    script = _unwrap(script)
    values, outcome = _answer_script(host, request, script)
    if exit_arg is not None:
        # a native command sets $LASTEXITCODE: 0 when it ran, 1 when it was not found
        last = outcome.exit_code
        code = last if exit_arg.lower() == "$lastexitcode" else int(exit_arg or 0)
        outcome.should_exit = code
        outcome.exit_code = code
    return values, outcome


def _answer_script(host: LabHost, request: ScriptRequest, script: str) -> tuple[list[Any], ScriptOutcome]:
    if BUNDLE_MARKER in script:
        args_json = str(request.parameters.get("ArgsJson", "{}"))
        answer = _answer_bundle(host, script, args_json)
        if isinstance(answer, LabErrorRecord):
            return [], ScriptOutcome(terminating=answer, exit_code=1)
        return [answer], ScriptOutcome()
    generic = answer_generic(host, script, request.user)
    if generic is not None:
        return [generic], ScriptOutcome()
    return [not_recognized(_first_word(script))], ScriptOutcome(exit_code=1)
