"""WinRS (cmd shell over WinRM) with pywinrm: the constant bootstrap, script and argument on stdin.

cmd.exe caps a command line at 8191 characters, so the command line is the fixed
`bootstrap_command_line()` and everything variable goes through stdin in envelope-sized
chunks (`send_command_input`). Stdout is the facts document; stderr carries PowerShell's
CLIXML error records, decoded here into plain lines. Like the psrp transport, every WSMan
request checks the attempt's budget and socket timeouts shrink to the time left.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from requests import Session
from winrm.protocol import Protocol
from winrm.transport import Transport

from fleetcheck.transports.base import (
    MAX_OUTPUT_BYTES,
    Budget,
    ScriptOutput,
    ThreadedTransport,
    quiet_token_loggers,
    track_connections,
)
from fleetcheck.transports.bootstrap import bootstrap_command_line, bootstrap_stdin
from fleetcheck.transports.clixml import decode_clixml_errors
from fleetcheck.transports.errors import OutputTooLarge, RunCancelled, cleartext_auth
from fleetcheck.transports.httpcap import cap_responses, first_failure
from fleetcheck.transports.kerberos import TICKETS, options_for, pywinrm_auth_kwargs, use_ccache
from fleetcheck.transports.target import Target, WinrmSettings, endpoint_address, settings_as

log = logging.getLogger(__name__)
quiet_token_loggers()

#: Raw bytes per Send: base64 makes 4/3 of it, well inside pywinrm's 150 KiB envelope.
STDIN_CHUNK = 60_000
DEFAULT_OPERATION_TIMEOUT = 10

_PYWINRM_AUTH = {
    "negotiate": "ntlm",
    "ntlm": "ntlm",
    "basic": "basic",
    "kerberos": "kerberos",
    "credssp": "credssp",
    "certificate": "certificate",
}

class _BoundedProtocol(Protocol):
    """pywinrm Protocol whose every request respects the attempt's budget."""

    def __init__(self, *args: Any, budget: Budget, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._budget = budget
        self._op_cap = int(self.operation_timeout_sec)
        bound_first_request(self.transport, budget)

    def send_message(self, message: str) -> bytes:
        left = self._budget.begin_request(abortable="/transfer/Create<" not in message)
        try:
            self.operation_timeout_sec = max(1, min(self._op_cap, int(left) - 1))
            # pywinrm uses one number for connect and read; it must exceed the long-poll.
            self.transport.read_timeout_sec = max(0.1, min(self.operation_timeout_sec + 5.0, left))  # type: ignore[assignment]
            # Builds the session (HTTPS: nothing sent) or returns it; idempotent per session.
            _bound_session(self.transport.build_session(), self._budget)
            return super().send_message(message)
        finally:
            self._budget.end_request()


def _bound_session(session: Session, budget: Budget) -> None:
    track_connections(session, budget)  # before the session opens its first pool
    cap_responses(session, budget)
    session.trust_env = False  # proxy/CA environment was read when it was built


def bound_first_request(transport: Transport, budget: Budget) -> None:
    """Bound the request pywinrm sends while building its session (HTTP with message encryption).

    Why: `Transport.build_session` sends a blank authentication request
    (`setup_encryption`) before it returns the session, so a cap mounted on the returned
    session would miss that first response. `setup_encryption(session)` is public and
    receives the new session before anything is sent: the instance's method is wrapped to
    mount the cap and the connection tracking first. pywinrm's own `send_message` and its
    error mapping (401 -> InvalidCredentialsError, other statuses -> WinRMTransportError)
    are left as they are.
    """
    setup = transport.setup_encryption

    def bounded_setup(session: Session) -> None:
        _bound_session(session, budget)
        setup(session)

    transport.setup_encryption = bounded_setup  # type: ignore[method-assign]


def protocol_settings(target: Target) -> dict[str, Any]:
    """pywinrm Protocol keyword arguments for a host (password added at the call)."""
    winrm = settings_as(target, WinrmSettings)
    return {
        "endpoint": f"{winrm.scheme}://{endpoint_address(target.address)}:{winrm.effective_port}/wsman",
        "transport": _PYWINRM_AUTH.get(winrm.auth, "ntlm"),
        "username": winrm.username,
        "server_cert_validation": "validate" if winrm.cert_validation else "ignore",
        "ca_trust_path": str(winrm.ca_path) if winrm.ca_path else None,
        "message_encryption": "auto",
        "proxy": None,
        "read_timeout_sec": DEFAULT_OPERATION_TIMEOUT + 5,
        "operation_timeout_sec": DEFAULT_OPERATION_TIMEOUT,
        **pywinrm_auth_kwargs(winrm.auth, winrm),
    }


class WinrmTransport(ThreadedTransport):
    """pywinrm WinRS: `powershell.exe ... -EncodedCommand <bootstrap>` + stdin."""

    name = "winrm"

    def run_sync(self, target: Target, script: str, args_json: str, budget: Budget) -> ScriptOutput:
        return run_sync(target, script, args_json, budget)


def run_sync(target: Target, script: str, args_json: str, budget: Budget) -> ScriptOutput:
    """Open a cmd shell, run the bootstrap, feed stdin, collect; raise the FIRST failure."""
    winrm = settings_as(target, WinrmSettings)
    if winrm.auth == "basic" and winrm.scheme == "http":  # pywinrm would send the password in clear
        raise cleartext_auth(winrm.auth)
    settings = protocol_settings(target)
    winrm = settings_as(target, WinrmSettings)
    if winrm.auth == "kerberos":  # pykerberos reads a ticket cache only: this thread's, in memory
        use_ccache(TICKETS.resolve(options_for(winrm, winrm.secret())).ccache)
    try:
        return _run_sync(target, settings, script, args_json, budget)
    finally:
        if winrm.auth == "kerberos":
            use_ccache(None)


def _run_sync(target: Target, settings: dict[str, Any], script: str, args_json: str, budget: Budget) -> ScriptOutput:
    proto = _BoundedProtocol(password=target.settings.secret(), budget=budget, **settings)
    shell_id: str | None = None
    command_id: str | None = None
    first: BaseException | None = None
    original: BaseException | None = None
    result = ScriptOutput()
    try:
        shell_id = proto.open_shell(codepage=65001, noprofile=True)
        command_id = proto.run_command(shell_id, bootstrap_command_line())
        data = bootstrap_stdin(script, args_json)
        for start in range(0, max(len(data), 1), STDIN_CHUNK):
            chunk = data[start : start + STDIN_CHUNK]
            proto.send_command_input(shell_id, command_id, chunk, end=start + STDIN_CHUNK >= len(data))
        stdout, stderr, code = proto.get_command_output(shell_id, command_id)
        if len(stdout) + len(stderr) > MAX_OUTPUT_BYTES:
            raise OutputTooLarge(f"more than {MAX_OUTPUT_BYTES} bytes of output")
        result = ScriptOutput(
            stdout=stdout.decode("utf-8", errors="replace"),
            errors=decode_clixml_errors(stderr.decode("utf-8", errors="replace")),
            failed=code != 0,
            exit_code=code,
            auth_mechanism={"negotiate": "ntlm"}.get(target.auth, target.auth),
        )
    except BaseException as exc:
        original = exc
        first = first_failure(exc, budget, target)
    # Same connection only if it is known good: no error, or a cancel seen between requests.
    clean = not budget.aborted and (original is None or isinstance(original, RunCancelled))
    _close_quietly(proto, settings, target, budget, shell_id, command_id, clean=clean)
    if first is not None:
        raise first
    return result


def _close_quietly(
    proto: Protocol,
    settings: dict[str, Any],
    target: Target,
    budget: Budget,
    shell_id: str | None,
    command_id: str | None,
    *,
    clean: bool,
) -> None:
    """Signal the command to terminate, then delete the shell; errors here never replace the real one.

    Each step is tried on its own: a Signal that fails (a reset connection) must not cost the
    Delete, which is what frees the host's shell quota.
    """
    budget.start_closing()
    closer = proto
    try:
        if shell_id is None:
            return
        if not clean:
            closer = _BoundedProtocol(password=target.settings.secret(), budget=budget, **settings)
        if command_id is not None:
            try:
                closer.cleanup_command(shell_id, command_id)
            except Exception as exc:
                log.debug("signalling the command on %s failed: %s", target.address, type(exc).__name__)
                closer = _BoundedProtocol(password=target.settings.secret(), budget=budget, **settings)
        closer.close_shell(shell_id)
    except BaseException as exc:  # closing is best effort by design
        log.debug("closing the shell on %s failed: %s", target.address, type(exc).__name__)
    finally:
        for used in {id(proto): proto, id(closer): closer}.values():
            with contextlib.suppress(Exception):
                used.transport.close_session()
