"""Turn the first exception of a host's session into one status and an admin's sentence.

Sans-IO: `classify` is a pure function over exception objects (from pypsrp, pywinrm,
requests/urllib3, asyncssh, ssl and the OS) and a little context about the attempt.
The libraries wrap errors several layers deep (requests -> urllib3 -> OSError), so the
rules look through the whole cause chain. Messages never quote a secret: any text taken
from an exception goes through `redact` with the attempt's secrets.

Status choices (documented because several are judgement calls):
- connection refused / reset / name not resolved / no TCP answer -> `unreachable`
- credentials rejected, HTTP 401/403, WSMan access denied -> `auth_failed` (never retried)
- no answer within the deadline, WSMan OperationTimeout -> `timeout`
- TLS problems, HTTP 4xx/5xx, WSMan faults (quota included), garbage -> `protocol_error`
Transient (worth a retry with backoff): reset, HTTP 503, WinRM shell quota, lost SSH link.
"""

from __future__ import annotations

import errno
import socket
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fleetcheck.results import HostStatus

WSMAN_TIMED_OUT = 2150858793  # 0x80338029 w:TimedOut (OperationTimeout)
WSMAN_SHELL_QUOTA = 2150859174  # 0x803381A6 MaxShellsPerUser exceeded
WSMAN_INVALID_SELECTORS = 2150858843  # 0x8033805B unknown shell/command
WSMAN_CANNOT_CONNECT = 2150858770  # 0x80338012
WSMAN_ACCESS_DENIED = 2147942405  # 0x80070005 E_ACCESSDENIED
WSMAN_PROFILE_MARKED = 2147943418  # 0x800703FA registry key marked for deletion
WSMAN_QUOTA_CODES = frozenset({WSMAN_SHELL_QUOTA, 2150859173, 2150859171, 2150859172})

_MAX_DETAIL = 160


class DeadlineExceeded(TimeoutError):
    """The per-host deadline ran out (raised by the transports' own budget checks)."""


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


@dataclass(frozen=True)
class Failure:
    """One classified failure: the host's status, the sentence, a stable short code, retry hint."""

    status: HostStatus
    message: str
    error_type: str
    transient: bool = False


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


def _auth_failure(ctx: FailureContext, what: str = "credentials rejected") -> Failure:
    label = _AUTH_LABELS.get(ctx.auth, ctx.auth)
    hint = _AUTH_HINTS.get(ctx.auth, "check the user name and password")
    return Failure(HostStatus.AUTH_FAILED, f"{what} ({label}) - {hint}", "auth")


# --- rules: each looks at the whole chain and returns a Failure or None -------------


Rule = Callable[[list[BaseException], FailureContext], "Failure | None"]


def _ours(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    for exc in chain:
        if isinstance(exc, DeadlineExceeded):
            return Failure(HostStatus.TIMEOUT, f"no answer within {_seconds(ctx)}", "timeout")
        if isinstance(exc, RunCancelled):
            return Failure(HostStatus.TIMEOUT, "interrupted before the host answered", "interrupted")
        if isinstance(exc, OutputTooLarge):
            return Failure(HostStatus.PROTOCOL_ERROR, f"output too large: {_detail(exc, ctx)}", "output_too_large")
    return None


def _auth_setup(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    """Auth methods this machine cannot use: a settings problem, same for every host."""
    label = _AUTH_LABELS.get(ctx.auth, ctx.auth)
    for exc in chain:
        low = str(exc).lower()
        missing = isinstance(exc, ImportError) or (_module(exc) == "winrm" and "not installed" in low)
        if missing and ("gssapi" in low or "kerberos" in low):
            msg = "Kerberos is not available on this machine - pip install 'fleetcheck[kerberos]' (needs libkrb5-dev), or use auth: negotiate"
            return Failure(HostStatus.AUTH_FAILED, msg, "auth_unavailable")
        if missing and "credssp" in low:
            msg = "CredSSP is not available on this machine - pip install 'fleetcheck[credssp]', or use auth: negotiate"
            return Failure(HostStatus.AUTH_FAILED, msg, "auth_unavailable")
        if isinstance(exc, ValueError) and "cannot use message encryption with auth" in low:
            msg = f"{label} over HTTP would send credentials unencrypted - use scheme: https (port 5986) or auth: negotiate"
            return Failure(HostStatus.AUTH_FAILED, msg, "auth_config")
        if "no username or password" in low or "requires a username" in low or "requires a password" in low:
            msg = "no credentials for this host - set username and password_env (or use --ask-pass)"
            return Failure(HostStatus.AUTH_FAILED, msg, "auth_config")
        if _module(exc) == "winrm" and "cert_pem" in low:
            msg = "certificate auth needs the client certificate and its key - set cert_path and key_path (PEM)"
            return Failure(HostStatus.AUTH_FAILED, msg, "auth_config")
    return None


def _auth(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    for exc in chain:
        name = type(exc).__name__
        mod = _module(exc)
        if mod in ("pypsrp", "winrm") and name in ("AuthenticationError", "InvalidCredentialsError"):
            return _auth_failure(ctx)
        if mod == "winrm" and name == "BasicAuthDisabledError":
            return Failure(HostStatus.AUTH_FAILED, "Basic authentication is disabled on the host (AllowBasic)", "auth")
        if mod == "asyncssh" and name == "PermissionDenied":
            return _auth_failure(ctx)
        if isinstance(exc, PermissionError) and "challenge" in str(exc).lower():
            # requests_ntlm: a 401 that offers no NTLM challenge (method disabled or refused)
            msg = "authentication refused: the host offered no NTLM challenge - is Negotiate enabled for WinRM?"
            return Failure(HostStatus.AUTH_FAILED, msg, "auth")
    return None


def _tls(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    for exc in chain:
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or exc.reason or "verification failed"
            if "hostname" in reason.lower() or "ip address mismatch" in reason.lower():
                msg = (
                    f"TLS certificate does not match {ctx.address} ({reason}) - connect by the name in the "
                    "certificate, or set cert_validation: false"
                )
                return Failure(HostStatus.PROTOCOL_ERROR, msg, "tls_hostname")
            msg = f"TLS certificate not trusted ({reason}) - set ca_path or cert_validation: false"
            return Failure(HostStatus.PROTOCOL_ERROR, msg, "tls_untrusted")
    for exc in chain:
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or _detail(exc, ctx)
            hint = " - is this an HTTP port? check scheme and port" if "WRONG_VERSION" in str(reason).upper() else ""
            return Failure(HostStatus.PROTOCOL_ERROR, f"TLS handshake failed ({reason}){hint}", "tls")
    return None


def _ssh_specific(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    for exc in chain:
        if _module(exc) != "asyncssh":
            continue
        name = type(exc).__name__
        if name == "HostKeyNotVerifiable":
            msg = "SSH host key not trusted - add it to known_hosts, or set known_hosts: none (lab only)"
            return Failure(HostStatus.PROTOCOL_ERROR, msg, "ssh_hostkey")
        if name == "ConnectionLost":
            return Failure(HostStatus.UNREACHABLE, f"SSH connection to {ctx.endpoint} lost", "reset", True)
        if name in ("DisconnectError", "ProtocolError", "KeyExchangeFailed", "ProtocolNotSupported", "MACError"):
            return Failure(HostStatus.PROTOCOL_ERROR, f"SSH session failed: {_detail(exc, ctx)}", "ssh")
        if name == "ChannelOpenError":
            return Failure(HostStatus.PROTOCOL_ERROR, f"SSH channel refused: {_detail(exc, ctx)}", "ssh")
    return None


def _wsman_fault(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    for exc in chain:
        if type(exc).__name__ != "WSManFaultError" or _module(exc) not in ("pypsrp", "winrm"):
            continue
        code = getattr(exc, "wsman_fault_code", None) if _module(exc) == "winrm" else getattr(exc, "code", None)
        return _fault_failure(int(code) if code is not None else None, str(getattr(exc, "reason", "") or ""), ctx)
    for exc in chain:  # pywinrm turns the Receive timeout fault into its own type
        if type(exc).__name__ == "WinRMOperationTimeoutError":
            return _fault_failure(WSMAN_TIMED_OUT, "", ctx)
    return None


def _fault_failure(code: int | None, reason: str, ctx: FailureContext) -> Failure:
    reason = redact(" ".join(reason.split()), ctx.secrets)[:_MAX_DETAIL]
    if code in WSMAN_QUOTA_CODES:
        msg = "WinRM shell quota reached (MaxShellsPerUser) - close stale sessions or raise the limit"
        return Failure(HostStatus.PROTOCOL_ERROR, msg, "quota", True)
    if code == WSMAN_TIMED_OUT:  # pypsrp cannot ride it out while opening the pool: worth a retry
        msg = "WinRM operation timed out on the host (OperationTimeout) - the host is overloaded or hung"
        return Failure(HostStatus.TIMEOUT, msg, "wsman_timeout", True)
    if code == WSMAN_ACCESS_DENIED:
        msg = "access denied by WinRM - the account must be a local administrator or in Remote Management Users"
        return Failure(HostStatus.AUTH_FAILED, msg, "access_denied")
    if code == WSMAN_CANNOT_CONNECT:
        return Failure(HostStatus.UNREACHABLE, f"WinRM client cannot connect to {ctx.endpoint}", "wsman_connect")
    if code == WSMAN_INVALID_SELECTORS:
        msg = "the remote shell disappeared (idle timeout or closed by another client)"
        return Failure(HostStatus.PROTOCOL_ERROR, msg, "shell_gone", True)
    if code == WSMAN_PROFILE_MARKED:
        msg = (
            "WinRM provider failed (0x800703FA: a user profile key is marked for deletion) - "
            "restart the WinRM service or sign out the account's stale sessions"
        )
        return Failure(HostStatus.PROTOCOL_ERROR, msg, "wsman_800703FA")
    hex_code = f"0x{code:08X}" if code is not None else "without a code"
    tail = f": {reason}" if reason else ""
    return Failure(HostStatus.PROTOCOL_ERROR, f"WinRM fault {hex_code}{tail}", f"wsman_{hex_code}")


def _http_status(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    for exc in chain:
        if type(exc).__name__ != "WinRMTransportError" or _module(exc) not in ("pypsrp", "winrm"):
            continue
        code = getattr(exc, "code", None)
        if code in (401,):
            return _auth_failure(ctx)
        if code == 403:
            return Failure(HostStatus.AUTH_FAILED, "access denied (HTTP 403) by the WinRM listener", "http_403")
        if code == 503:
            msg = "WinRM service unavailable (HTTP 503) - busy or restarting"
            return Failure(HostStatus.UNREACHABLE, msg, "http_503", True)
        if code == 404:
            msg = f"no WinRM endpoint at {ctx.endpoint}/wsman (HTTP 404) - check port and path"
            return Failure(HostStatus.PROTOCOL_ERROR, msg, "http_404")
        if code == 400:
            msg = "WinRM rejected the request (HTTP 400) - often a message-encryption or channel-binding mismatch"
            return Failure(HostStatus.PROTOCOL_ERROR, msg, "http_400")
        if code == 413:
            msg = "request larger than the host's MaxEnvelopeSizekb (HTTP 413)"
            return Failure(HostStatus.PROTOCOL_ERROR, msg, "http_413")
        return Failure(HostStatus.PROTOCOL_ERROR, f"WinRM answered HTTP {code} without a usable fault", f"http_{code}")
    return None


def _socket(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    listener = "sshd" if ctx.transport == "ssh" else "WinRM"
    for exc in chain:
        if isinstance(exc, ConnectionRefusedError) or (
            isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED
        ):
            msg = f"connection refused on {ctx.endpoint} - is {listener} listening?"
            return Failure(HostStatus.UNREACHABLE, msg, "refused")
    for exc in chain:
        if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError) or (
            type(exc).__name__ == "RemoteDisconnected"
        ):
            return Failure(HostStatus.UNREACHABLE, f"connection reset by {ctx.endpoint}", "reset", True)
    for exc in chain:
        if isinstance(exc, socket.gaierror) or type(exc).__name__ == "NameResolutionError":
            return Failure(HostStatus.UNREACHABLE, f"cannot resolve {ctx.address} - check address", "dns")
        if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL):
            return Failure(HostStatus.UNREACHABLE, f"no route to {ctx.endpoint}", "no_route")
    return None


def _timeouts(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    for exc in chain:
        name = type(exc).__name__
        if name in ("ConnectTimeout", "ConnectTimeoutError"):
            msg = f"no answer to the connection attempt on {ctx.endpoint} - host down or port filtered"
            return Failure(HostStatus.UNREACHABLE, msg, "connect_timeout")
    for exc in chain:
        if isinstance(exc, TimeoutError) or type(exc).__name__ in ("ReadTimeout", "ReadTimeoutError", "Timeout"):
            return Failure(HostStatus.TIMEOUT, f"no answer within {_seconds(ctx)}", "timeout")
    return None


def _garbage(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    for exc in chain:
        if isinstance(exc, ET.ParseError):
            return Failure(HostStatus.PROTOCOL_ERROR, "malformed WinRM response (not valid XML)", "malformed")
        if _module(exc) == "spnego":
            return _spnego_failure(exc, ctx)
        name = type(exc).__name__
        if _module(exc) == "pypsrp" and name in ("InvalidRunspacePoolStateError", "InvalidPSRPOperation"):
            return Failure(
                HostStatus.PROTOCOL_ERROR, f"PowerShell runspace pool unusable: {_detail(exc, ctx)}", "broken_pool"
            )
        if _module(exc) in ("pypsrp", "winrm") and name == "WinRMError":
            return Failure(HostStatus.PROTOCOL_ERROR, f"WinRM protocol error: {_detail(exc, ctx)}", "wsman")
        if _module(exc) in ("requests", "urllib3") and name in ("ProtocolError", "ChunkedEncodingError"):
            return Failure(HostStatus.PROTOCOL_ERROR, f"broken HTTP response: {_detail(exc, ctx)}", "http")
        if isinstance(exc, UnicodeDecodeError):
            return Failure(HostStatus.PROTOCOL_ERROR, "output was not valid text (encoding)", "encoding")
    return None


_SPNEGO_DECRYPT = frozenset({"BadMICError", "UnsupportedQop", "NoContextError", "ContextExpiredError"})


def _spnego_failure(exc: BaseException, ctx: FailureContext) -> Failure:
    """pyspnego errors: unwrapping a message (encryption) or building the auth token."""
    name = type(exc).__name__
    if name in _SPNEGO_DECRYPT:
        msg = f"message encryption failed ({name}) - the response could not be decrypted"
        return Failure(HostStatus.PROTOCOL_ERROR, msg, "decrypt")
    if name in ("NoCredentialError", "InvalidCredentialError", "CredentialsExpiredError"):
        msg = "no usable credentials - set username and password_env (or obtain a Kerberos ticket)"
        return Failure(HostStatus.AUTH_FAILED, msg, "auth")
    label = _AUTH_LABELS.get(ctx.auth, ctx.auth)
    return Failure(HostStatus.AUTH_FAILED, f"{label} authentication failed ({name}): {_detail(exc, ctx)}", "auth")


def _connection_generic(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    for exc in chain:
        if type(exc).__name__ == "ConnectionError" and _module(exc) == "requests":
            return Failure(HostStatus.UNREACHABLE, f"cannot connect to {ctx.endpoint}: {_detail(exc, ctx)}", "connect")
        if isinstance(exc, ConnectionError):
            return Failure(HostStatus.UNREACHABLE, f"connection to {ctx.endpoint} failed", "connect", True)
    return None


def _kerberos(chain: list[BaseException], ctx: FailureContext) -> Failure | None:
    """Kerberos failures by cause (KDC, principal, password, ticket, SPN, clock, credentials)."""
    if ctx.auth not in ("kerberos", "negotiate", "credssp"):
        return None
    from fleetcheck.transports.kerberos import explain

    for exc in chain:
        problem = explain(exc, ctx.address, ctx.kerberos)
        if problem is not None:
            return Failure(HostStatus.AUTH_FAILED, redact(problem.message, ctx.secrets), problem.error_type)
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


def classify(exc: BaseException, ctx: FailureContext | None = None) -> Failure:
    """Classify the FIRST exception of an attempt (never one raised while closing)."""
    ctx = ctx or FailureContext()
    chain = list(exception_chain(exc))
    for rule in RULES:
        failure = rule(chain, ctx)
        if failure is not None:
            return failure
    msg = f"unexpected {type(exc).__name__}: {_detail(exc, ctx)}"
    return Failure(HostStatus.PROTOCOL_ERROR, msg, "internal")
