"""What crosses the broker: batches of hosts one way, per-host events the other.

Everything here is plain JSON. A batch carries each host's identity, transport settings
and the NAME of its password variable, never a password: the site's worker reads the value
from its own environment (`WireTarget.to_target`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from fleetcheck.errors import AuthRejected, HostError, ProtocolError, TimedOut, Unreachable, Unsupported
from fleetcheck.results import HostStatus
from fleetcheck.transports.base import ScriptOutput
from fleetcheck.transports.target import Target

#: The host statuses a worker may report for a failed host, as our exception classes.
_ERRORS: dict[HostStatus, type[HostError]] = {
    HostStatus.UNREACHABLE: Unreachable,
    HostStatus.AUTH_FAILED: AuthRejected,
    HostStatus.TIMEOUT: TimedOut,
    HostStatus.PROTOCOL_ERROR: ProtocolError,
    HostStatus.UNSUPPORTED: Unsupported,
}


class WireTarget(BaseModel):
    """A `Target` without its password: the worker's environment supplies it by name."""

    model_config = ConfigDict(extra="forbid")

    name: str
    address: str
    settings: dict[str, Any]
    groups: list[str] = []
    tags: list[str] = []
    timeout: float
    site: str
    password_env: str | None = None

    @classmethod
    def from_target(cls, target: Target, password_env: str | None) -> WireTarget:
        return cls(
            name=target.name,
            address=target.address,
            settings=target.settings.model_dump(mode="json", exclude={"password"}),
            groups=list(target.groups),
            tags=list(target.tags),
            timeout=target.timeout,
            site=target.site,
            password_env=password_env,
        )

    def to_target(self, environ: Mapping[str, str] | None = None) -> Target:
        """The worker's target: the password (if any) from the worker's own environment."""
        env = os.environ if environ is None else environ
        settings = dict(self.settings)
        if self.password_env and env.get(self.password_env):
            settings["password"] = SecretStr(env[self.password_env])
        return Target.model_validate(
            {
                "name": self.name,
                "address": self.address,
                "settings": settings,
                "groups": tuple(self.groups),
                "tags": tuple(self.tags),
                "timeout": self.timeout,
                "site": self.site,
            }
        )


class Batch(BaseModel):
    """Hosts of one site for one run: the bundle, its argument and the targets."""

    model_config = ConfigDict(extra="forbid")

    run: str  # the run's dispatch id: names its event stream and its stop flag
    batch: str
    site: str
    script: str
    args_json: str
    targets: list[WireTarget]
    #: A run-wide deadline (`--timeout`) overriding each host's own; None: the host's.
    timeout: float | None = None
    #: `--psrp-client` of the run (pypsrp | native); None: each host's setting.
    psrp_client: Literal["pypsrp", "native"] | None = None


@dataclass
class RemoteOutput(ScriptOutput):
    """Output a site's worker got, with the worker's time of the answer (the scan time)."""

    scanned_at: datetime | None = None


class HostOutcome(BaseModel):
    """What the worker got from one host: its output, or the failure that ended its attempts."""

    host: str
    stdout: str = ""
    errors: list[str] = []
    failed: bool = False
    exit_code: int | None = None
    status: HostStatus | None = None  # set when the host failed
    message: str = ""
    error_type: str | None = None
    attempts: int = 1
    #: The worker's clock when the host answered.
    scanned_at: datetime | None = None
    #: What authenticated the worker's session (kerberos, ntlm, ...).
    auth_mechanism: str | None = None

    @classmethod
    def from_output(cls, host: str, output: ScriptOutput, attempts: int, scanned_at: datetime) -> HostOutcome:
        return cls(
            host=host, stdout=output.stdout, errors=list(output.errors), failed=output.failed,
            exit_code=output.exit_code, attempts=attempts, scanned_at=scanned_at,
            auth_mechanism=output.auth_mechanism,
        )

    def output(self) -> ScriptOutput:
        """The output as the transport returned it, or the host's failure raised as ours."""
        if self.status is not None:
            kind = _ERRORS.get(self.status, ProtocolError)
            raise kind(self.message, error_type=self.error_type, transient=False)
        return RemoteOutput(
            stdout=self.stdout, errors=list(self.errors), failed=self.failed, exit_code=self.exit_code,
            auth_mechanism=self.auth_mechanism, scanned_at=self.scanned_at,
        )


EventKind = Literal["alive", "started", "done"]


class Event(BaseModel):
    """One event of a run's stream: a worker is alive, began a host, or finished one."""

    kind: EventKind
    site: str
    worker: str = ""
    batch: str = ""
    host: str = ""
    outcome: HostOutcome | None = None

    def fields(self) -> dict[str, str]:
        """As one Redis stream entry (string fields)."""
        return {"event": self.model_dump_json(exclude_none=True)}

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Event:
        raw = fields.get(b"event", fields.get("event", b"{}"))
        return cls.model_validate(json.loads(raw))
