"""PSRP over WinRM with pypsrp: one RunspacePool per host, one pipeline, explicit open/close.

pypsrp is synchronous, so each host runs in a worker thread of a bounded executor that the
runner owns. Three pypsrp habits are tamed here:
- `with RunspacePool` reports the error of the close, not the first one: we open and close
  explicitly, keep the first exception and swallow errors from closing;
- Receive retries read timeouts five times with growing backoff (minutes per hung host):
  `_BoundedWSMan.invoke` disables those retries, checks the budget before every request and
  shrinks socket timeouts to the time left;
- after a transport error the WSMan object's encryption state is stale: the shell is
  deleted over a fresh connection instead (an unfinished pipeline is terminated first);
- pypsrp builds its requests session inside its first request: `build_session_unsent` has
  it built beforehand, so the response cap (httpcap) bounds that first response too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import requests
from pypsrp.complex_objects import PSInvocationState
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan
from requests import Session

from fleetcheck.transports.base import (
    MAX_OUTPUT_BYTES,
    Budget,
    ScriptOutput,
    ThreadedTransport,
    quiet_token_loggers,
    track_connections,
)
from fleetcheck.transports.errors import OutputTooLarge, RunCancelled
from fleetcheck.transports.httpcap import cap_responses, first_failure
from fleetcheck.transports.kerberos import TICKETS, pypsrp_auth_kwargs, pypsrp_mechanism
from fleetcheck.transports.target import PsrpSettings, Target, settings_as

log = logging.getLogger(__name__)
quiet_token_loggers()

#: [MS-WSMV] 2.2.4.38: ends a command (what pywinrm and the native client's envelope send too).
SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
#: Seconds a Receive may long-poll on the host before WSMan answers "no output yet".
DEFAULT_OPERATION_TIMEOUT = 10


#: pypsrp's WSMan() registers its XML prefixes with ElementTree's process-wide
#: `register_namespace`, which rewrites a shared dict while it copies it: two worker threads
#: constructing at once failed one host in about 1,200 with "RuntimeError: dictionary keys
#: changed during iteration (at xml/etree/ElementTree.py:997 in register_namespace)".
_CONSTRUCTING = threading.Lock()


class _BoundedWSMan(WSMan):
    """WSMan whose every request respects the attempt's budget."""

    def __init__(self, *args: Any, budget: Budget, **kwargs: Any) -> None:
        with _CONSTRUCTING:
            super().__init__(*args, **kwargs)
        self._budget = budget
        self._connect_cap = float(self.transport.connection_timeout)
        self._op_cap = int(self.operation_timeout)
        self._tuned: Any = None  # the requests session already set up for the budget

    def invoke(
        self,
        action: str,
        resource_uri: str,
        resource: Any,
        option_set: Any = None,
        selector_set: Any = None,
        timeout: int | None = None,
        *,
        retries_on_read_timeout: int = 0,
    ) -> Any:
        # The caller's timeout and read-timeout retries are replaced by the budget's own.
        left = self._budget.begin_request(abortable=not action.endswith("/transfer/Create"))
        try:
            session = self.transport.session or build_session_unsent(self.transport)
            if session is not None and session is not self._tuned:
                session.trust_env = False  # proxy/CA environment read once, not per request
                track_connections(session, self._budget)
                cap_responses(session, self._budget)
                self._tuned = session
            # Long-polls must end (with a WSMan TimedOut fault) before the socket read times out.
            self.operation_timeout = max(1, min(self._op_cap, int(left) - 1))
            transport: Any = self.transport  # pypsrp types these as int; requests takes floats
            transport.connection_timeout = max(0.1, min(self._connect_cap, left))
            transport.read_timeout = max(0.1, min(self.operation_timeout + 5.0, left))
            return super().invoke(
                action, resource_uri, resource, option_set, selector_set, None, retries_on_read_timeout=0
            )
        finally:
            self._budget.end_request()


#: An endpoint requests refuses before any I/O (no scheme): `MissingSchema` from `prepare_request`.
_UNSENDABLE_ENDPOINT = ""


def build_session_unsent(transport: Any) -> Session | None:
    """Have pypsrp build its requests session without sending anything; return it.

    Why: pypsrp 0.9 builds its session inside `send`, right before the first request (the
    shell Create, or the authentication exchange that precedes it over HTTP), and offers no
    public way to build it earlier. A cap mounted on the session after that request misses
    the first response: an endless body or a compression bomb there grows memory without
    bound. Building the session ourselves would copy pypsrp's auth and adapter set-up (and
    drift from it); a process-wide urllib3 hook would touch every other user of requests.
    Instead `send` is called once with an endpoint that has no scheme: pypsrp builds its
    session as usual, then `prepare_request` raises requests' `MissingSchema` before any
    connection is opened, and the real endpoint is put back. Only public names are used
    (`send`, `endpoint`, `session`); if a later pypsrp no longer builds the session first,
    this returns None and the caller mounts its cap as soon as the session appears.
    """
    endpoint = transport.endpoint
    transport.endpoint = _UNSENDABLE_ENDPOINT
    try:
        transport.send(b"")
    except requests.exceptions.MissingSchema:
        pass
    finally:
        transport.endpoint = endpoint
    session = transport.session
    return session if isinstance(session, Session) else None


def wsman_settings(target: Target) -> dict[str, Any]:
    """pypsrp WSMan keyword arguments for a host, defaulting as a Windows admin expects."""
    psrp = settings_as(target, PsrpSettings)
    cert_validation: bool | str = psrp.cert_validation
    if cert_validation and psrp.ca_path:
        cert_validation = str(psrp.ca_path)
    return {
        "server": target.address,
        "port": psrp.effective_port,
        "ssl": psrp.scheme == "https",
        "auth": psrp.auth,
        "username": psrp.username,
        "cert_validation": cert_validation,
        # HTTP: NTLM/Kerberos message encryption; HTTPS: TLS protects the payload.
        "encryption": "auto",
        "no_proxy": True,
        "reconnection_retries": 0,
        "reconnection_backoff": 0.0,
        "operation_timeout": DEFAULT_OPERATION_TIMEOUT,
        "connection_timeout": 30,
        "read_timeout": DEFAULT_OPERATION_TIMEOUT + 5,
    }


def _output_text(ps: PowerShell) -> str:
    parts: list[str] = []
    size = 0
    for item in ps.output:
        text = item if isinstance(item, str) else str(item)
        size += len(text)
        if size > MAX_OUTPUT_BYTES:
            raise OutputTooLarge(f"more than {MAX_OUTPUT_BYTES} characters of output")
        parts.append(text)
    return "\n".join(parts)


def _exception_message(exc: Any) -> str | None:
    """The .NET exception's Message from a deserialized ErrorRecord.Exception."""
    if exc is None:
        return None
    for attr in ("adapted_properties", "extended_properties"):
        props = getattr(exc, attr, None)
        if isinstance(props, dict) and props.get("Message"):
            return str(props["Message"])
    msg = getattr(exc, "message", None)
    return str(msg) if msg else None


def record_text(rec: Any) -> str:
    """An error record as PowerShell shows it first: details, else the exception message."""
    text = getattr(rec, "details_message", None) or _exception_message(getattr(rec, "exception", None))
    text = text or getattr(rec, "message", None) or str(rec)
    fqid = getattr(rec, "fq_error", None)
    return f"{text} ({fqid})" if fqid else str(text)


def _error_texts(ps: PowerShell) -> list[str]:
    return [record_text(rec) for rec in ps.streams.error[:50]]


class PsrpTransport(ThreadedTransport):
    """Runs the bundle as `add_script(script).add_parameter("ArgsJson", args_json)`."""

    name = "psrp"

    def run_sync(self, target: Target, script: str, args_json: str, budget: Budget) -> ScriptOutput:
        return run_sync(target, script, args_json, budget)


def run_sync(target: Target, script: str, args_json: str, budget: Budget) -> ScriptOutput:
    """Open a pool, run one pipeline, close; raise the FIRST failure."""
    settings = wsman_settings(target)
    psrp = settings_as(target, PsrpSettings)
    password = psrp.secret()
    settings["password"] = password
    settings.update(pypsrp_auth_kwargs(psrp.auth, psrp, password, TICKETS))
    wsman = _BoundedWSMan(budget=budget, **settings)
    pool = RunspacePool(wsman)
    ps: PowerShell | None = None
    first: BaseException | None = None
    original: BaseException | None = None
    result = ScriptOutput()
    try:
        pool.open()
        ps = PowerShell(pool)
        ps.add_script(script).add_parameter("ArgsJson", args_json)
        ps.begin_invoke()
        size = 0
        while ps.state == PSInvocationState.RUNNING:
            seen = len(ps.output)
            ps.poll_invoke()
            size += sum(len(str(item)) for item in ps.output[seen:])
            if size > MAX_OUTPUT_BYTES:  # stop collecting now, not after the host sent everything
                raise OutputTooLarge(f"more than {MAX_OUTPUT_BYTES} characters of output")
        result = ScriptOutput(
            stdout=_output_text(ps),
            errors=_error_texts(ps),
            failed=bool(ps.had_errors) or ps.state == PSInvocationState.FAILED,
            auth_mechanism=pypsrp_mechanism(wsman, settings["auth"]),
        )
    except BaseException as exc:
        original = exc
        first = first_failure(exc, budget, target)
    # Same connection only if it is known good: no error, or a cancel seen between requests.
    clean = not budget.aborted and (original is None or isinstance(original, RunCancelled))
    _close_quietly(pool, wsman, settings, target, budget, clean=clean, pipeline=_unfinished(ps))
    if first is not None:
        raise first
    return result


def _unfinished(ps: PowerShell | None) -> str | None:
    """The command id of a pipeline that was started (or being started) and did not end, else None."""
    if ps is None or ps.state in (PSInvocationState.COMPLETED, PSInvocationState.FAILED, PSInvocationState.STOPPED):
        return None
    # NOT_STARTED too: a cancel may cut the Command request after the host received it.
    return str(ps.id).upper()


def _close_quietly(
    pool: RunspacePool,
    wsman: WSMan,
    settings: dict[str, Any],
    target: Target,
    budget: Budget,
    *,
    clean: bool,
    pipeline: str | None = None,
) -> None:
    """Terminate an unfinished pipeline, then delete the remote shell; never let a close error replace the real one.

    Each step is tried on its own: a Signal that fails (a reset connection, a host that never
    saw the command) must not cost the Delete, which is what frees the host's shell quota.
    """
    budget.start_closing()
    shell = pool.shell
    try:
        if not getattr(shell, "opened", False):
            return
        if not clean:
            # The failed connection's encryption state is stale: talk over a fresh one.
            shell.wsman = _BoundedWSMan(budget=budget, **settings)
        if pipeline is not None:
            try:
                shell.signal(SIGNAL_TERMINATE, pipeline)
            except Exception as exc:
                log.debug("signalling the pipeline on %s failed: %s", target.address, type(exc).__name__)
                with contextlib.suppress(Exception):
                    shell.wsman.close()
                shell.wsman = _BoundedWSMan(budget=budget, **settings)
        shell.close()
    except BaseException as exc:  # closing is best effort by design
        log.debug("closing the shell on %s failed: %s", target.address, type(exc).__name__)
    finally:
        with contextlib.suppress(Exception):
            wsman.close()
        with contextlib.suppress(Exception):
            shell.wsman.close()
