"""Result model shared by the runner, the evaluator and every report.

Plain pydantic data: reports and history never see a socket or a PowerShell object.
The JSON form of `RunResult` is the documented `fleetcheck/report/v1` schema.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

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
