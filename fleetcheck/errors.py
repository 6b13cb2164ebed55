"""fleetcheck's one exception tree.

Every error the product raises on purpose descends from `FleetcheckError`, so a caller of the
library (or the CLI) catches one root and decides by branch:

- `UserError`: something the user gave us is wrong (inventory, playbook, waivers, an option, a
  report spec). The message names the file, line and what to do; the CLI exits 2.
- `HostError`: one host could not be checked. Each subclass *is* a host status, carries the
  admin-facing sentence and whether a retry may help. Transports raise these after mapping
  their library's exceptions at the boundary (the way httpx maps httpcore's), so the runner
  classifies with `isinstance`, never by matching another library's class names or messages.

The WSMan fault codes that the product names in its messages live here, once, so the
scanner's advice and the lab's faults cannot drift apart.
"""

from __future__ import annotations

from typing import ClassVar

from fleetcheck.results import HostStatus

#: 0x80338029 w:TimedOut: the OperationTimeout of one Receive elapsed (normal while waiting).
WSMAN_TIMED_OUT = 2150858793
#: 0x803381A5: "the maximum number of concurrent shells for this user has been exceeded"
#: (WinRM's MaxShellsPerUser quota).
WSMAN_MAX_SHELLS = 2150859173
#: 0x803381A6: the maximum number of concurrent operations for this user has been exceeded
#: (WinRM's MaxConcurrentOperationsPerUser quota).
WSMAN_MAX_OPERATIONS = 2150859174
#: 0x8033805B: unknown shell or command (the selector names nothing on the server).
WSMAN_INVALID_SELECTORS = 2150858843
#: 0x80338012: the client cannot connect to the destination.
WSMAN_CANNOT_CONNECT = 2150858770
#: 0x80070005 E_ACCESSDENIED.
WSMAN_ACCESS_DENIED = 2147942405
#: 0x800703FA: the user's registry key was marked for deletion (profile unloaded).
WSMAN_PROFILE_MARKED = 2147943418


class FleetcheckError(Exception):
    """Root of every error fleetcheck raises on purpose."""


class UserError(FleetcheckError):
    """Bad input from the user: a file, an option or a setting. The CLI exits 2 with the message."""

    exit_code: ClassVar[int] = 2


class HostError(FleetcheckError):
    """One host could not be checked; the subclass is the host's status.

    `message` is the sentence an admin reads in the table; `error_type` a short stable code
    for reports and history; `transient` says whether a retry with backoff may help.
    """

    status: ClassVar[HostStatus] = HostStatus.PROTOCOL_ERROR
    default_error_type: ClassVar[str] = "protocol_error"
    default_transient: ClassVar[bool] = False

    def __init__(self, message: str, *, error_type: str | None = None, transient: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type or self.default_error_type
        self.transient = self.default_transient if transient is None else transient


class Unreachable(HostError):
    """No usable connection: refused, reset, name not resolved, no TCP answer."""

    status = HostStatus.UNREACHABLE
    default_error_type = "unreachable"


class AuthRejected(HostError):
    """Credentials or the authentication exchange were refused. Never retried (account lockout)."""

    status = HostStatus.AUTH_FAILED
    default_error_type = "auth_failed"


class TimedOut(HostError):
    """The host's deadline ran out; the deadline covers every byte of the attempt."""

    status = HostStatus.TIMEOUT
    default_error_type = "timeout"


class ProtocolError(HostError):
    """The host answered, but not as WinRM/PSRP/SSH should (HTTP error, WSMan fault, garbage, TLS)."""

    status = HostStatus.PROTOCOL_ERROR
    default_error_type = "protocol_error"

    def __init__(
        self,
        message: str,
        *,
        wsman_code: int | None = None,
        error_type: str | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message, error_type=error_type, transient=transient)
        self.wsman_code = wsman_code


class Unsupported(HostError):
    """The host cannot run the bundle (PowerShell too old, language mode, missing endpoint)."""

    status = HostStatus.UNSUPPORTED
    default_error_type = "unsupported"
