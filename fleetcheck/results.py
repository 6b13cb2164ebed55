"""Result model shared by the runner, the evaluator and every report.

Plain pydantic data: reports and history never see a socket or a PowerShell object.
The JSON form of `RunResult` is the documented `fleetcheck/report/v1` schema.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

REPORT_SCHEMA = "fleetcheck/report/v1"


class CheckStatus(StrEnum):
    """Outcome of one check on one host, worst last in `CHECK_SEVERITY_ORDER`."""

    PASS = "pass"
    SKIP = "skip"
    WAIVED = "waived"
    WARN = "warn"
    UNKNOWN = "unknown"
    ERROR = "error"
    FAIL = "fail"


class HostStatus(StrEnum):
    """Final classification of a host; every host ends with exactly one."""

    COMPLIANT = "compliant"
    NONCOMPLIANT = "noncompliant"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    TIMEOUT = "timeout"
    PROTOCOL_ERROR = "protocol_error"
    UNSUPPORTED = "unsupported"


#: Host statuses meaning "we could not check this host" (exit code 3).
UNCHECKED_STATUSES = frozenset(
    {
        HostStatus.UNREACHABLE,
        HostStatus.AUTH_FAILED,
        HostStatus.TIMEOUT,
        HostStatus.PROTOCOL_ERROR,
        HostStatus.UNSUPPORTED,
    }
)


#: Check statuses that count as failing everywhere: they make a host noncompliant, and changes,
#: streaks, counts, metrics and reports call them failures. A check we could not judge
#: (`unknown`) or whose probe failed (`error`) is not a pass: we cannot vouch for that host.
FAILING = frozenset({CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.UNKNOWN})

EXIT_OK = 0
EXIT_NONCOMPLIANT = 1
EXIT_USAGE = 2
EXIT_UNCHECKED = 3
EXIT_INTERRUPTED = 4


def map_text(value: Any, fix: Callable[[str], str]) -> Any:
    """JSON-like `value` with `fix` applied to every string in it, mapping keys included."""
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {map_text(k, fix): map_text(v, fix) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [map_text(v, fix) for v in value]
    return value


def clean_text(text: str) -> str:
    """Pair UTF-16 surrogate halves into the character they encode; a lone half becomes U+FFFD.

    A non-BMP character (an emoji) split by a careless decoder arrives as two halves that
    UTF-8 cannot encode: every writer (journal, reports, history) would refuse the text.
    """
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class CheckResult(BaseModel):
    """One check evaluated on one host's facts."""

    check_id: str
    status: CheckStatus
    message: str
    observed: Any = None
    expected: Any = None
    remediation: str = ""
    severity: str = "medium"
    tags: list[str] = Field(default_factory=list)
    waiver: str | None = None


class HostResult(BaseModel):
    """Everything we learned about one host in one run."""

    host: str
    address: str = ""
    transport: str = ""
    groups: list[str] = Field(default_factory=list)
    status: HostStatus
    message: str = ""
    error_type: str | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    started_at: datetime | None = None
    duration_s: float = 0.0
    attempts: int = 1
    #: What authenticated the session: kerberos, ntlm (Negotiate fell back or NTLM asked), basic,
    #: credssp or certificate; None for SSH and for hosts never reached.
    auth_mechanism: str | None = None

    @field_validator("message")
    @classmethod
    def _encodable(cls, value: str) -> str:
        """The host's own text (error output) must reach every writer, whatever it holds."""
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return clean_text(value)
        return value


class RunResult(BaseModel):
    """A whole run: what reports and history are built from."""

    schema_: str = Field(default=REPORT_SCHEMA, alias="schema")
    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    inventory: str = ""
    playbooks: list[str] = Field(default_factory=list)
    check_ids: list[str] = Field(default_factory=list)
    hosts: list[HostResult] = Field(default_factory=list)
    interrupted: bool = False
    fleetcheck_version: str = ""

    model_config = {"populate_by_name": True}

    def counts(self) -> dict[str, int]:
        """Host and check counts: what history stores, the summary line and every report show."""
        hosts = self.hosts
        return {
            "hosts": len(hosts),
            "compliant": sum(1 for h in hosts if h.status is HostStatus.COMPLIANT),
            "noncompliant": sum(1 for h in hosts if h.status is HostStatus.NONCOMPLIANT),
            "unchecked": sum(1 for h in hosts if h.status in UNCHECKED_STATUSES),
            "failing_checks": sum(1 for h in hosts for c in h.checks if c.status in FAILING),
            "waived_checks": sum(1 for h in hosts for c in h.checks if c.status is CheckStatus.WAIVED),
        }


def host_status(checks: Sequence[CheckResult]) -> tuple[HostStatus, str]:
    """A checked host's status and one-line summary from its check results.

    Any failing check (fail, error, unknown) makes the host noncompliant; pass, warn, skip
    and waived keep it compliant (warnings are advice, a waiver an accepted failure).
    """
    bad = [c for c in checks if c.status in FAILING]
    if not bad:
        warns = sum(1 for c in checks if c.status is CheckStatus.WARN)
        waived = sum(1 for c in checks if c.status is CheckStatus.WAIVED)
        if waived:
            return HostStatus.COMPLIANT, f"{len(checks) - waived} checks passed, {waived} waived"
        tail = f", {warns} warning{'s' if warns != 1 else ''}" if warns else ""
        return HostStatus.COMPLIANT, f"{len(checks)} checks passed{tail}"
    parts = []
    for status in (CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.UNKNOWN):
        ids = [c.check_id for c in bad if c.status is status]
        if ids:
            parts.append(f"{status.value}: {', '.join(ids)}")
    return HostStatus.NONCOMPLIANT, "; ".join(parts)


#: `--fail-on` choices: which hosts make the run fail. `any` is the default.
FAIL_ON = ("any", "noncompliant", "unreachable")


def exit_code(run: RunResult, fail_on: str = "any") -> int:
    """0 all checked and compliant; 1 a check failed; 3 a host unchecked (beats 1: a host we could
    not check hides what it would have said); 4 interrupted.

    `fail_on` narrows what fails the run, for fleets where some host is always down:
    `noncompliant` exits 1 for a failed check and ignores hosts that could not be checked (they
    still show in the table and reports); `unreachable` exits 3 for a host that could not be
    checked and ignores failed checks; `any` is both, 3 beating 1. An interrupted run is always 4.
    """
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on: expected one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    if run.interrupted:
        return EXIT_INTERRUPTED
    if fail_on != "noncompliant" and any(h.status in UNCHECKED_STATUSES for h in run.hosts):
        return EXIT_UNCHECKED
    if fail_on != "unreachable" and any(h.status is HostStatus.NONCOMPLIANT for h in run.hosts):
        return EXIT_NONCOMPLIANT
    return EXIT_OK
