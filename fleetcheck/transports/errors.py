"""Map the client libraries' exceptions into fleetcheck's `HostError` tree, at the transport boundary.

Each transport wraps its library calls in `map_exceptions(context)` (the pattern of httpx's
`map_httpcore_exceptions`): whatever pypsrp, pywinrm, requests/urllib3, asyncssh, pyspnego,
ssl or the OS raise leaves the transport as one `fleetcheck.errors.HostError` subclass,
carrying the admin's sentence, a stable `error_type` and whether a retry may help. The runner
then decides with `isinstance` only.

`classify` is a pure function over exception objects and a little context about the
attempt. The libraries wrap errors several layers deep (requests -> urllib3 -> OSError), so
the rules look through the whole cause chain. Messages never quote a secret: any text taken
from an exception goes through `redact` with the attempt's secrets.

Status choices (documented because several are judgement calls):
- connection refused / reset / name not resolved / no TCP answer -> `Unreachable`
- credentials rejected, HTTP 401/403, WSMan access denied -> `AuthRejected` (never retried)
- no answer within the deadline, WSMan OperationTimeout -> `TimedOut`
- TLS problems, HTTP 4xx/5xx, WSMan faults (quotas included), garbage -> `ProtocolError`
Transient (worth a retry with backoff): reset, HTTP 503, WinRM quotas, lost SSH link.
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fleetcheck.errors import (
    WSMAN_ACCESS_DENIED,
    WSMAN_CANNOT_CONNECT,
    WSMAN_INVALID_SELECTORS,
    WSMAN_MAX_OPERATIONS,
    WSMAN_MAX_SHELLS,
    WSMAN_PROFILE_MARKED,
    WSMAN_TIMED_OUT,
    AuthRejected,
    HostError,
    ProtocolError,
    TimedOut,
    Unreachable,
    Unsupported,
)
from fleetcheck.results import HostStatus

#: Other WinRM per-user quota faults (0x803381A3, 0x803381A4), named by their code only.
WSMAN_OTHER_QUOTA_CODES = frozenset({2150859171, 2150859172})

_MAX_DETAIL = 160


class DeadlineExceeded(TimeoutError):
    """The per-host deadline ran out (raised by the transports' own budget checks)."""


class TooSlow(DeadlineExceeded):
    """The host answered, but not completely within the deadline (a trickling response)."""


class ResponseRefused(Exception):
    """A response the transports will not read: too large, or compressed (WinRM never compresses)."""


class RunCancelled(Exception):
    """The run was interrupted (Ctrl-C) while this host was in progress."""


class OutputTooLarge(Exception):
    """The host sent more output than the cap allows."""


@dataclass(frozen=True)
class FailureContext:
    """What the classifier needs to know about the attempt (never the password itself in text)."""

    transport: str = "psrp"
    address: str = ""
    port: int | None = None
    auth: str = "negotiate"
    timeout: float | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    kerberos: Any = None  # the host's KerberosOptions (SPN host and service), for the messages

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}" if self.port else self.address


_BY_STATUS: dict[HostStatus, type[HostError]] = {
    HostStatus.UNREACHABLE: Unreachable,
    HostStatus.AUTH_FAILED: AuthRejected,
    HostStatus.TIMEOUT: TimedOut,
    HostStatus.PROTOCOL_ERROR: ProtocolError,
    HostStatus.UNSUPPORTED: Unsupported,
}


def host_error(
    status: HostStatus, message: str, error_type: str, transient: bool = False, *, wsman_code: int | None = None
) -> HostError:
    """The `HostError` subclass for `status`, with the admin's sentence and a stable short code."""
    if status is HostStatus.PROTOCOL_ERROR:
        return ProtocolError(message, wsman_code=wsman_code, error_type=error_type, transient=transient)
    return _BY_STATUS.get(status, ProtocolError)(message, error_type=error_type, transient=transient)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret (of 3+ characters) occurring in `text`."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "********")
    return text


def exception_chain(exc: BaseException, limit: int = 12) -> Iterator[BaseException]:
    """The exception, then its causes: __cause__, __context__, urllib3 `.reason`, nested args."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < limit:
        cur = todo.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        yield cur
        context = None if cur.__suppress_context__ else cur.__context__
        nested: list[object] = [cur.__cause__, context, getattr(cur, "reason", None), *cur.args]
        todo.extend(n for n in nested if isinstance(n, BaseException))


def _module(exc: BaseException) -> str:
    return type(exc).__module__.split(".")[0]


def _detail(exc: BaseException, ctx: FailureContext) -> str:
    text = " ".join(str(exc).split())
    text = redact(text, ctx.secrets)
    return text[:_MAX_DETAIL] + ("..." if len(text) > _MAX_DETAIL else "")


def _seconds(ctx: FailureContext) -> str:
    if ctx.timeout is None:
        return "the time allowed"
    return f"{ctx.timeout:g} s"


_AUTH_LABELS = {
    "negotiate": "Negotiate/NTLM",
    "ntlm": "NTLM",
    "basic": "Basic",
    "kerberos": "Kerberos",
    "credssp": "CredSSP",
    "certificate": "certificate",
    "password": "SSH password",
    "key": "SSH key",
}

_AUTH_HINTS = {
    "negotiate": "check username format DOMAIN\\user (or .\\user for a local account) and the password",
    "ntlm": "check username format DOMAIN\\user (or .\\user for a local account) and the password",
    "basic": "Basic needs a local account, AllowBasic on the host, and HTTPS",
    "kerberos": "check the ticket (klist) and that the host name resolves to its SPN",
    "certificate": "the host has no certmapping for this certificate's UPN and issuer, or the certificate is not valid",
    "credssp": "check the user name and password, and that CredSSP is enabled on the host (Auth/CredSSP)",
    "password": "check the user name and password",
    "key": "check that the public key is in the account's authorized_keys (administrators_authorized_keys for admins)",
}


def auth_rejected(auth: str, what: str = "credentials rejected") -> AuthRejected:
    """The host refused the credentials of method `auth` (labelled and hinted for an admin)."""
    label = _AUTH_LABELS.get(auth, auth)
    hint = _AUTH_HINTS.get(auth, "check the user name and password")
    return AuthRejected(f"{what} ({label}) - {hint}", error_type="auth")


def missing_credentials() -> AuthRejected:
    """No user name or password for a method that needs both: a settings problem."""
    msg = "no credentials for this host - set username and password_env (or use --ask-pass)"
    return AuthRejected(msg, error_type="auth_config")


def cleartext_auth(auth: str) -> AuthRejected:
    """A method whose credentials would cross plain HTTP unencrypted: refused before sending."""
    label = _AUTH_LABELS.get(auth, auth)
    msg = f"{label} over HTTP would send credentials unencrypted - use scheme: https (port 5986) or auth: negotiate"
    return AuthRejected(msg, error_type="auth_config")


def _auth_failure(ctx: FailureContext, what: str = "credentials rejected") -> HostError:
    return auth_rejected(ctx.auth, what)


# --- rules: each looks at the whole chain and returns a Failure or None -------------


Rule = Callable[[list[BaseException], FailureContext], "HostError | None"]


def _ours(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    for exc in chain:
        if isinstance(exc, TooSlow):
            return host_error(HostStatus.TIMEOUT, f"{exc} (answers kept arriving, too slowly)", "too_slow")
        if isinstance(exc, ResponseRefused):
            return host_error(HostStatus.PROTOCOL_ERROR, f"response refused: {exc}", "response_refused")
        if isinstance(exc, DeadlineExceeded):
            return host_error(HostStatus.TIMEOUT, f"no answer within {_seconds(ctx)}", "timeout")
        if isinstance(exc, RunCancelled):
            return host_error(HostStatus.TIMEOUT, "interrupted before the host answered", "interrupted")
        if isinstance(exc, OutputTooLarge):
            return host_error(HostStatus.PROTOCOL_ERROR, f"output too large: {_detail(exc, ctx)}", "output_too_large")
    return None


def _auth_setup(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    """Auth methods this machine cannot use: a settings problem, same for every host."""
    for exc in chain:
        low = str(exc).lower()
        missing = isinstance(exc, ImportError) or (_module(exc) == "winrm" and "not installed" in low)
        if missing and ("gssapi" in low or "kerberos" in low):
            msg = "Kerberos is not available on this machine - pip install 'fleetcheck[kerberos]' (needs libkrb5-dev), or use auth: negotiate"
            return host_error(HostStatus.AUTH_FAILED, msg, "auth_unavailable")
        if missing and "credssp" in low:
            msg = "CredSSP is not available on this machine - pip install 'fleetcheck[credssp]', or use auth: negotiate"
            return host_error(HostStatus.AUTH_FAILED, msg, "auth_unavailable")
        if isinstance(exc, ValueError) and "cannot use message encryption with auth" in low:
            return cleartext_auth(ctx.auth)
        if "no username or password" in low or "requires a username" in low or "requires a password" in low:
            return missing_credentials()
        if _module(exc) == "winrm" and "cert_pem" in low:
            msg = "certificate auth needs the client certificate and its key - set cert_path and key_path (PEM)"
            return host_error(HostStatus.AUTH_FAILED, msg, "auth_config")
    return None


def _auth(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    for exc in chain:
        name = type(exc).__name__
        mod = _module(exc)
        if mod in ("pypsrp", "winrm") and name in ("AuthenticationError", "InvalidCredentialsError"):
            return _auth_failure(ctx)
        if mod == "winrm" and name == "BasicAuthDisabledError":
            return host_error(HostStatus.AUTH_FAILED, "Basic authentication is disabled on the host (AllowBasic)", "auth")
        if mod == "asyncssh" and name == "PermissionDenied":
            return _auth_failure(ctx)
        if isinstance(exc, PermissionError) and "challenge" in str(exc).lower():
            # requests_ntlm: a 401 that offers no NTLM challenge (method disabled or refused)
            msg = "authentication refused: the host offered no NTLM challenge - is Negotiate enabled for WinRM?"
            return host_error(HostStatus.AUTH_FAILED, msg, "auth")
    return None


def _tls(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    for exc in chain:
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or exc.reason or "verification failed"
            if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
                msg = (
                    f"TLS certificate does not match {ctx.address} ({reason}) - connect by the name in the "
                    "certificate, or set cert_validation: false"
                )
                return host_error(HostStatus.PROTOCOL_ERROR, msg, "tls_hostname")
            msg = f"TLS certificate not trusted ({reason}) - set ca_path or cert_validation: false"
            return host_error(HostStatus.PROTOCOL_ERROR, msg, "tls_untrusted")
    for exc in chain:
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or _detail(exc, ctx)
            hint = " - is this an HTTP port? check scheme and port" if "WRONG_VERSION" in str(reason).upper() else ""
            return host_error(HostStatus.PROTOCOL_ERROR, f"TLS handshake failed ({reason}){hint}", "tls")
    return None


def _ssh_specific(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    for exc in chain:
        if _module(exc) != "asyncssh":
            continue
        name = type(exc).__name__
        if name == "HostKeyNotVerifiable":
            msg = "SSH host key not trusted - add it to known_hosts, or set known_hosts: none (lab only)"
            return host_error(HostStatus.PROTOCOL_ERROR, msg, "ssh_hostkey")
        if name == "ConnectionLost":
            return host_error(HostStatus.UNREACHABLE, f"SSH connection to {ctx.endpoint} lost", "reset", True)
        if name in ("DisconnectError", "ProtocolError", "KeyExchangeFailed", "ProtocolNotSupported", "MACError"):
            return host_error(HostStatus.PROTOCOL_ERROR, f"SSH session failed: {_detail(exc, ctx)}", "ssh")
        if name == "ChannelOpenError":
            return host_error(HostStatus.PROTOCOL_ERROR, f"SSH channel refused: {_detail(exc, ctx)}", "ssh")
    return None


def _wsman_fault(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    for exc in chain:
        if type(exc).__name__ != "WSManFaultError" or _module(exc) not in ("pypsrp", "winrm"):
            continue
        code = getattr(exc, "wsman_fault_code", None) if _module(exc) == "winrm" else getattr(exc, "code", None)
        return _fault_failure(int(code) if code is not None else None, str(getattr(exc, "reason", "") or ""), ctx)
    for exc in chain:  # pywinrm turns the Receive timeout fault into its own type
        if type(exc).__name__ == "WinRMOperationTimeoutError":
            return _fault_failure(WSMAN_TIMED_OUT, "", ctx)
    return None


def wsman_fault_error(code: int | None, reason: str, ctx: FailureContext) -> HostError:
    """The `HostError` a WSMan fault stands for, worded alike for every WinRM client."""
    return _fault_failure(code, reason, ctx)


def _fault_failure(code: int | None, reason: str, ctx: FailureContext) -> HostError:
    reason = redact(" ".join(reason.split()), ctx.secrets)[:_MAX_DETAIL]
    if code == WSMAN_MAX_SHELLS:
        msg = "WinRM shell quota reached (MaxShellsPerUser) - close stale sessions or raise the limit"
        return host_error(HostStatus.PROTOCOL_ERROR, msg, "quota", True, wsman_code=code)
    if code == WSMAN_MAX_OPERATIONS:
        msg = (
            "WinRM operation quota reached (MaxConcurrentOperationsPerUser) - "
            "close stale sessions or raise the limit"
        )
        return host_error(HostStatus.PROTOCOL_ERROR, msg, "quota", True, wsman_code=code)
    if code in WSMAN_OTHER_QUOTA_CODES:
        msg = f"WinRM quota reached (0x{code:08X}) - close stale sessions or raise the limit"
        return host_error(HostStatus.PROTOCOL_ERROR, msg, "quota", True, wsman_code=code)
    if code == WSMAN_TIMED_OUT:  # pypsrp cannot ride it out while opening the pool: worth a retry
        msg = "WinRM operation timed out on the host (OperationTimeout) - the host is overloaded or hung"
        return host_error(HostStatus.TIMEOUT, msg, "wsman_timeout", True)
    if code == WSMAN_ACCESS_DENIED:
        msg = "access denied by WinRM - the account must be a local administrator or in Remote Management Users"
        return host_error(HostStatus.AUTH_FAILED, msg, "access_denied")
    if code == WSMAN_CANNOT_CONNECT:
        return host_error(HostStatus.UNREACHABLE, f"WinRM client cannot connect to {ctx.endpoint}", "wsman_connect")
    if code == WSMAN_INVALID_SELECTORS:
        msg = "the remote shell disappeared (idle timeout or closed by another client)"
        return host_error(HostStatus.PROTOCOL_ERROR, msg, "shell_gone", True, wsman_code=code)
    if code == WSMAN_PROFILE_MARKED:
        msg = (
            "WinRM provider failed (0x800703FA: a user profile key is marked for deletion) - "
            "restart the WinRM service or sign out the account's stale sessions"
        )
        return host_error(HostStatus.PROTOCOL_ERROR, msg, "wsman_800703FA", wsman_code=code)
    hex_code = f"0x{code:08X}" if code is not None else "without a code"
    tail = f": {reason}" if reason else ""
    return host_error(HostStatus.PROTOCOL_ERROR, f"WinRM fault {hex_code}{tail}", f"wsman_{hex_code}", wsman_code=code)


def _http_status(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    for exc in chain:
        if type(exc).__name__ != "WinRMTransportError" or _module(exc) not in ("pypsrp", "winrm"):
            continue
        return http_status_error(getattr(exc, "code", None), ctx)
    return None


def http_status_error(code: int | None, ctx: FailureContext) -> HostError:
    """The `HostError` an HTTP answer without a usable WSMan fault stands for (every WinRM client)."""
    if code in (401,):
        return _auth_failure(ctx)
    if code == 403:
        return host_error(HostStatus.AUTH_FAILED, "access denied (HTTP 403) by the WinRM listener", "http_403")
    if code == 503:
        msg = "WinRM service unavailable (HTTP 503) - busy or restarting"
        return host_error(HostStatus.UNREACHABLE, msg, "http_503", True)
    if code == 404:
        msg = f"no WinRM endpoint at {ctx.endpoint}/wsman (HTTP 404) - check port and path"
        return host_error(HostStatus.PROTOCOL_ERROR, msg, "http_404")
    if code == 400:
        msg = "WinRM rejected the request (HTTP 400) - often a message-encryption or channel-binding mismatch"
        return host_error(HostStatus.PROTOCOL_ERROR, msg, "http_400")
    if code == 413:
        msg = "request larger than the host's MaxEnvelopeSizekb (HTTP 413)"
        return host_error(HostStatus.PROTOCOL_ERROR, msg, "http_413")
    return host_error(HostStatus.PROTOCOL_ERROR, f"WinRM answered HTTP {code} without a usable fault", f"http_{code}")


def _socket(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    listener = "sshd" if ctx.transport == "ssh" else "WinRM"
    for exc in chain:
        if isinstance(exc, ConnectionRefusedError) or (
            isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED
        ):
            msg = f"connection refused on {ctx.endpoint} - is {listener} listening?"
            return host_error(HostStatus.UNREACHABLE, msg, "refused")
    for exc in chain:
        if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError) or (
            type(exc).__name__ == "RemoteDisconnected"
        ):
            return host_error(HostStatus.UNREACHABLE, f"connection reset by {ctx.endpoint}", "reset", True)
    for exc in chain:
        if isinstance(exc, socket.gaierror) or type(exc).__name__ == "NameResolutionError":
            return host_error(HostStatus.UNREACHABLE, f"cannot resolve {ctx.address} - check address", "dns")
        if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return host_error(HostStatus.UNREACHABLE, f"no route to {ctx.endpoint}", "no_route")
    return None


def _timeouts(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    for exc in chain:
        name = type(exc).__name__
        if name in ("ConnectTimeout", "ConnectTimeoutError"):
            msg = f"no answer to the connection attempt on {ctx.endpoint} - host down or port filtered"
            return host_error(HostStatus.UNREACHABLE, msg, "connect_timeout")
    for exc in chain:
        if isinstance(exc, TimeoutError) or type(exc).__name__ in ("ReadTimeout", "ReadTimeoutError", "Timeout"):
            return host_error(HostStatus.TIMEOUT, f"no answer within {_seconds(ctx)}", "timeout")
    return None


def _garbage(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    for exc in chain:
        if isinstance(exc, ET.ParseError):
            return host_error(HostStatus.PROTOCOL_ERROR, "malformed WinRM response (not valid XML)", "malformed")
        if _module(exc) == "spnego":
            return _spnego_failure(exc, ctx)
        name = type(exc).__name__
        if _module(exc) == "pypsrp" and name in ("InvalidRunspacePoolStateError", "InvalidPSRPOperation"):
            return host_error(
                HostStatus.PROTOCOL_ERROR, f"PowerShell runspace pool unusable: {_detail(exc, ctx)}", "broken_pool"
            )
        if _module(exc) in ("pypsrp", "winrm") and name == "WinRMError":
            return host_error(HostStatus.PROTOCOL_ERROR, f"WinRM protocol error: {_detail(exc, ctx)}", "wsman")
        if _module(exc) in ("requests", "urllib3") and name in ("ProtocolError", "ChunkedEncodingError"):
            return host_error(HostStatus.PROTOCOL_ERROR, f"broken HTTP response: {_detail(exc, ctx)}", "http")
        if isinstance(exc, UnicodeDecodeError):
            return host_error(HostStatus.PROTOCOL_ERROR, "output was not valid text (encoding)", "encoding")
    return None


_SPNEGO_DECRYPT = frozenset({"BadMICError", "UnsupportedQop", "NoContextError", "ContextExpiredError"})


def _spnego_failure(exc: BaseException, ctx: FailureContext) -> HostError:
    """pyspnego errors: unwrapping a message (encryption) or building the auth token."""
    name = type(exc).__name__
    if name in _SPNEGO_DECRYPT:
        msg = f"message encryption failed ({name}) - the response could not be decrypted"
        return host_error(HostStatus.PROTOCOL_ERROR, msg, "decrypt")
    if name in ("NoCredentialError", "InvalidCredentialError", "CredentialsExpiredError"):
        msg = "no usable credentials - set username and password_env (or obtain a Kerberos ticket)"
        return host_error(HostStatus.AUTH_FAILED, msg, "auth")
    label = _AUTH_LABELS.get(ctx.auth, ctx.auth)
    return host_error(HostStatus.AUTH_FAILED, f"{label} authentication failed ({name}): {_detail(exc, ctx)}", "auth")


def _connection_generic(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    for exc in chain:
        if type(exc).__name__ == "ConnectionError" and _module(exc) == "requests":
            return host_error(HostStatus.UNREACHABLE, f"cannot connect to {ctx.endpoint}: {_detail(exc, ctx)}", "connect")
        if isinstance(exc, ConnectionError):
            return host_error(HostStatus.UNREACHABLE, f"connection to {ctx.endpoint} failed", "connect", True)
    return None


def _kerberos(chain: list[BaseException], ctx: FailureContext) -> HostError | None:
    """Kerberos failures by cause (KDC, principal, password, ticket, SPN, clock, credentials)."""
    if ctx.auth not in ("kerberos", "negotiate", "credssp"):
        return None
    from fleetcheck.transports.kerberos import explain

    for exc in chain:
        problem = explain(exc, ctx.address, ctx.kerberos)
        if problem is not None:
            return host_error(HostStatus.AUTH_FAILED, redact(problem.message, ctx.secrets), problem.error_type)
    return None


RULES: tuple[Rule, ...] = (
    _ours,
    _kerberos,
    _auth_setup,
    _auth,
    _tls,
    _ssh_specific,
    _wsman_fault,
    _http_status,
    _socket,
    _timeouts,
    _garbage,
    _connection_generic,
)


#: The WinRM transports (pypsrp, pywinrm, the native client): every rule but asyncssh's.
WSMAN_RULES: tuple[Rule, ...] = tuple(rule for rule in RULES if rule is not _ssh_specific)
#: The SSH transport: asyncssh's rules and the shared ones, no WSMan faults or HTTP codes.
SSH_RULES: tuple[Rule, ...] = tuple(rule for rule in RULES if rule not in (_wsman_fault, _http_status))


def classify(exc: BaseException, ctx: FailureContext | None = None, rules: tuple[Rule, ...] = RULES) -> HostError:
    """Classify the FIRST exception of an attempt (never one raised while closing)."""
    if isinstance(exc, HostError):
        return exc
    ctx = ctx or FailureContext()
    chain = list(exception_chain(exc))
    for rule in rules:
        failure = rule(chain, ctx)
        if failure is not None:
            return failure
    msg = f"unexpected {type(exc).__name__}: {_detail(exc, ctx)}{raised_at(exc)}"
    return host_error(HostStatus.PROTOCOL_ERROR, msg, "internal")


def raised_at(exc: BaseException) -> str:
    """` (at package/module.py:line in function)`: where an unexpected exception was raised.

    A bug report then says where to look, and it is safe to show: a code location, never a
    value (the rare races and library bugs that end here are otherwise gone with the process).
    """
    tb = exc.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    path = code.co_filename.replace("\\", "/")
    if "site-packages/" in path:
        path = path.rsplit("site-packages/", 1)[1]
    elif "/fleetcheck/" in path:
        path = "fleetcheck/" + path.rsplit("/fleetcheck/", 1)[1]
    else:
        stdlib = re.search(r"/python3\.\d+/(.+)$", path)
        path = stdlib.group(1) if stdlib else path.rsplit("/", 1)[-1]
    return f" (at {path}:{tb.tb_lineno} in {code.co_name})"


@contextlib.contextmanager
def map_exceptions(ctx: FailureContext, rules: tuple[Rule, ...] = RULES) -> Iterator[None]:
    """Let only `HostError` leave the block: a library's exception becomes its classified subclass."""
    try:
        yield
    except HostError:
        raise
    except Exception as exc:
        raise classify(exc, ctx, rules) from exc
