"""Failure classification over real exception objects from the libraries (and real sockets)."""

from __future__ import annotations

import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pypsrp.exceptions as psrp_exc
import pytest
import requests
import trustme
import urllib3.exceptions
import winrm.exceptions as winrm_exc
from pydantic import SecretStr

from fleetcheck.errors import WSMAN_MAX_OPERATIONS, WSMAN_MAX_SHELLS, ProtocolError
from fleetcheck.inventory.model import Host
from fleetcheck.results import HostStatus
from fleetcheck.transports import psrp, winrm
from fleetcheck.transports.base import Budget
from fleetcheck.transports.errors import (
    DeadlineExceeded,
    FailureContext,
    RunCancelled,
    classify,
    exception_chain,
    redact,
)
from fleetcheck.transports.target import Target

CTX = FailureContext(transport="psrp", address="127.0.1.5", port=5985, auth="ntlm", timeout=30.0)


def _caught(fn: object) -> BaseException:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


# --- constructed instances of the libraries' own classes ------------------------------


def test_pypsrp_auth_error_is_auth_failed_with_username_hint() -> None:
    f = classify(psrp_exc.AuthenticationError("Failed to authenticate the user bob with ntlm"), CTX)
    assert f.status is HostStatus.AUTH_FAILED
    assert f.message == "credentials rejected (NTLM) - check username format DOMAIN\\user (or .\\user for a local account) and the password"
    assert not f.transient


def test_pywinrm_invalid_credentials_is_auth_failed() -> None:
    exc = winrm_exc.InvalidCredentialsError("the specified credentials were rejected by the server")
    f = classify(exc, FailureContext(transport="winrm", auth="basic"))
    assert f.status is HostStatus.AUTH_FAILED
    assert "(Basic)" in f.message


def test_quota_fault_is_transient_protocol_error() -> None:
    exc = psrp_exc.WSManFaultError(2150859173, "SRV", "This user is allowed a maximum number of 30 concurrent shells", "", "", "")
    f = classify(exc, CTX)
    assert (f.status, f.error_type, f.transient) == (HostStatus.PROTOCOL_ERROR, "quota", True)
    assert f.message.startswith("WinRM shell quota reached (MaxShellsPerUser)")
    assert isinstance(f, ProtocolError) and f.wsman_code == WSMAN_MAX_SHELLS


def test_operations_quota_fault_names_max_concurrent_operations() -> None:
    # 0x803381A6 is MaxConcurrentOperationsPerUser: telling the admin to raise MaxShellsPerUser is wrong.
    exc = winrm_exc.WSManFaultError(500, "Bad HTTP response", "", "quota", wsman_fault_code=2150859174)
    f = classify(exc, FailureContext(transport="winrm"))
    assert (f.status, f.error_type, f.transient) == (HostStatus.PROTOCOL_ERROR, "quota", True)
    assert "MaxConcurrentOperationsPerUser" in f.message and "MaxShellsPerUser" not in f.message
    assert isinstance(f, ProtocolError) and f.wsman_code == WSMAN_MAX_OPERATIONS


def test_pywinrm_fault_uses_wsman_code_not_http_code() -> None:
    exc = winrm_exc.WSManFaultError(500, "Bad HTTP response", "<xml/>", "denied", wsman_fault_code=2147942405)
    f = classify(exc, CTX)
    assert f.status is HostStatus.AUTH_FAILED
    assert f.error_type == "access_denied"


def test_operation_timeout_fault_is_timeout() -> None:
    op = classify(psrp_exc.WSManFaultError(2150858793, "", "timed out", "", "", ""), CTX)
    assert (op.status, op.transient) == (HostStatus.TIMEOUT, True)
    assert classify(winrm_exc.WinRMOperationTimeoutError(), CTX).status is HostStatus.TIMEOUT


def test_requests_ntlm_without_challenge_is_auth_failed() -> None:
    exc = PermissionError("Access denied: Server did not respond with NTLM challenge token")
    f = classify(exc, FailureContext(transport="winrm"))
    assert (f.status, f.transient) == (HostStatus.AUTH_FAILED, False)
    assert "no NTLM challenge" in f.message


@pytest.mark.parametrize(("auth", "words"), [("kerberos", "Kerberos is not"), ("credssp", "CredSSP is not")])
def test_auth_methods_missing_here(auth: str, words: str) -> None:
    import importlib.util

    # pywinrm checks before connecting; pypsrp raises ImportError from pyspnego at the first 401
    libraries = ("gssapi", "kerberos") if auth == "kerberos" else ("requests_credssp",)
    if all(importlib.util.find_spec(name) is None for name in libraries):  # the real refusal
        real = _caught(lambda: winrm.run_sync(_target(winrm, _host(_free_port(), auth=auth)), "x", "{}", Budget(2)))
    else:  # installed here: pywinrm's own exception, as it raises it where the library is missing
        pykerberos = "kerberos, but pykerberos" if auth == "kerberos" else "credssp, but requests-credssp"
        real = winrm_exc.WinRMError(f"requested auth method is {pykerberos} is not installed")
    made = ImportError("GSSAPIProxy requires the Python gssapi library: No module named 'gssapi'")
    for exc in (real, made) if auth == "kerberos" else (real,):
        f = classify(exc, FailureContext(auth=auth))
        assert (f.status, f.error_type) == (HostStatus.AUTH_FAILED, "auth_unavailable")
        assert f.message.startswith(words)


def test_basic_over_http_is_refused_before_sending_the_password() -> None:
    exc = _caught(lambda: psrp.run_sync(_target(psrp, _host(_free_port(), auth="basic")), "x", "{}", Budget(2)))
    f = classify(exc, FailureContext(auth="basic"))
    assert (f.status, f.error_type) == (HostStatus.AUTH_FAILED, "auth_config")
    assert f.message.startswith("Basic over HTTP would send credentials unencrypted")


def test_unknown_fault_shows_hex_code_and_reason() -> None:
    f = classify(psrp_exc.WSManFaultError(2150858999, "", "Something  odd\nhappened", "", "", ""), CTX)
    assert f.message == "WinRM fault 0x803380F7: Something odd happened"


@pytest.mark.parametrize(
    ("code", "status", "transient"),
    [
        (503, HostStatus.UNREACHABLE, True),
        (500, HostStatus.PROTOCOL_ERROR, False),
        (400, HostStatus.PROTOCOL_ERROR, False),
        (403, HostStatus.AUTH_FAILED, False),
    ],
)
def test_http_status_codes(code: int, status: HostStatus, transient: bool) -> None:
    for exc in (psrp_exc.WinRMTransportError("http", code, ""), winrm_exc.WinRMTransportError("http", code, "")):
        f = classify(exc, CTX)
        assert (f.status, f.transient) == (status, transient)
        assert str(code) in f.message


def test_reset_wrapped_by_requests_is_transient_unreachable() -> None:
    inner = ConnectionResetError(104, "Connection reset by peer")
    exc = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", inner))
    f = classify(exc, CTX)
    assert (f.status, f.error_type, f.transient) == (HostStatus.UNREACHABLE, "reset", True)
    assert f.message == "connection reset by 127.0.1.5:5985"


def test_malformed_xml() -> None:
    f = classify(_caught(lambda: ET.fromstring("<s:Envelope><broken")), CTX)
    assert (f.status, f.error_type) == (HostStatus.PROTOCOL_ERROR, "malformed")


def test_ssh_errors() -> None:
    ssh = FailureContext(transport="ssh", address="127.0.1.9", port=22, auth="password")
    assert classify(asyncssh.PermissionDenied("Permission denied"), ssh).status is HostStatus.AUTH_FAILED
    hk = classify(asyncssh.HostKeyNotVerifiable("Host key is not trusted"), ssh)
    assert (hk.status, hk.error_type) == (HostStatus.PROTOCOL_ERROR, "ssh_hostkey")
    lost = classify(asyncssh.ConnectionLost("Connection lost"), ssh)
    assert (lost.status, lost.transient) == (HostStatus.UNREACHABLE, True)
    refused = classify(ConnectionRefusedError(111, "Connect call failed"), ssh)
    assert refused.message == "connection refused on 127.0.1.9:22 - is sshd listening?"


def test_our_own_deadline_and_cancel() -> None:
    assert classify(DeadlineExceeded("x"), CTX).message == "no answer within 30 s"
    assert classify(RunCancelled("x"), CTX).error_type == "interrupted"


def test_first_exception_wins_over_context_chain() -> None:
    # A close error raised while handling the real one: we classify what we are given.
    try:
        try:
            raise psrp_exc.AuthenticationError("bad password")
        except psrp_exc.AuthenticationError:
            raise psrp_exc.WinRMTransportError("http", 400, "") from None
    except psrp_exc.WinRMTransportError as close_err:
        assert classify(close_err, CTX).error_type == "http_400"


def test_secrets_never_in_messages() -> None:
    secret = "S3cret-Passw0rd"
    exc = RuntimeError(f"weird failure while sending {secret} to host")
    f = classify(exc, FailureContext(secrets=(secret,)))
    assert secret not in f.message
    assert "********" in f.message
    assert redact("a S3cret-Passw0rd b", [secret, ""]) == "a ******** b"


def test_exception_chain_follows_urllib3_reason() -> None:
    root = ConnectionRefusedError(111, "refused")
    mre = urllib3.exceptions.MaxRetryError(None, "/wsman", reason=root)  # type: ignore[arg-type]
    assert root in list(exception_chain(requests.exceptions.ConnectionError(mre)))


# --- real exceptions from real clients on loopback ------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _host(port: int, **kw: object) -> Host:
    base: dict[str, object] = {
        "name": "T1",
        "address": "127.0.0.1",
        "scheme": "http",
        "port": port,
        "auth": "ntlm",
        "username": "fleetcheck",
        "password": SecretStr("Lab-Passw0rd!"),
    }
    base.update(kw)
    return Host.model_validate(base)


def _target(mod: object, host: Host) -> Target:
    """The host as a target of the transport module `mod` (psrp or winrm)."""
    return host.model_copy(update={"transport": mod.__name__.rsplit(".", 1)[1]}).to_target()  # type: ignore[attr-defined]


@pytest.fixture
def rst_server() -> Iterator[int]:
    """Accepts, reads a little, then resets the connection (SO_LINGER 0)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(5)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(1024)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    stop.set()
    srv.close()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts and never answers (a hung WinRM service)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=loop, daemon=True).start()
    yield int(srv.getsockname()[1])
    stop.set()
    srv.close()
    for c in conns:
        c.close()


@pytest.mark.parametrize("mod", [psrp, winrm])
def test_real_refused(mod: object) -> None:
    port = _free_port()
    host = _host(port)
    exc = _caught(lambda: mod.run_sync(_target(mod, host), "x", "{}", Budget(5)))  # type: ignore[attr-defined]
    f = classify(exc, FailureContext(address="127.0.0.1", port=port))
    assert f.status is HostStatus.UNREACHABLE
    assert f.message == f"connection refused on 127.0.0.1:{port} - is WinRM listening?"


@pytest.mark.parametrize("mod", [psrp, winrm])
def test_real_reset(mod: object, rst_server: int) -> None:
    exc = _caught(lambda: mod.run_sync(_target(mod, _host(rst_server)), "x", "{}", Budget(5)))  # type: ignore[attr-defined]
    f = classify(exc, FailureContext(address="127.0.0.1", port=rst_server))
    assert (f.status, f.error_type, f.transient) == (HostStatus.UNREACHABLE, "reset", True)


@pytest.mark.parametrize("mod", [psrp, winrm])
def test_real_hang_costs_at_most_the_deadline(mod: object, silent_server: int) -> None:
    import time

    t0 = time.monotonic()
    exc = _caught(lambda: mod.run_sync(_target(mod, _host(silent_server)), "x", "{}", Budget(1.5)))  # type: ignore[attr-defined]
    elapsed = time.monotonic() - t0
    f = classify(exc, FailureContext(address="127.0.0.1", port=silent_server, timeout=1.5))
    assert f.status is HostStatus.TIMEOUT
    assert f.message == "no answer within 1.5 s"
    assert elapsed < 1.5 + 0.5


def test_real_untrusted_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = int(srv.getsockname()[1])

    def serve() -> None:
        try:
            conn, _ = srv.accept()
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(10)
        except (OSError, ssl.SSLError):
            pass

    threading.Thread(target=serve, daemon=True).start()
    host = _host(port, scheme="https")
    exc = _caught(lambda: psrp.run_sync(_target(psrp, host), "x", "{}", Budget(5)))
    srv.close()
    f = classify(exc, FailureContext(address="127.0.0.1", port=port))
    assert (f.status, f.error_type) == (HostStatus.PROTOCOL_ERROR, "tls_untrusted")
    assert f.message.endswith("- set ca_path or cert_validation: false")


def test_spnego_errors_split_between_decryption_and_credentials() -> None:
    import spnego.exceptions as sp

    assert classify(sp.BadMICError(context_msg="unwrap"), CTX).error_type == "decrypt"
    nocred = classify(sp.NoCredentialError(context_msg="no username"), CTX)
    assert (nocred.status, nocred.error_type) == (HostStatus.AUTH_FAILED, "auth")
    assert nocred.message.startswith("no usable credentials")
    other = classify(sp.BadMechanismError(context_msg="no mech"), CTX)
    assert other.status is HostStatus.AUTH_FAILED and other.message.startswith("NTLM authentication failed")


def test_missing_username_is_named() -> None:
    import spnego.exceptions as sp

    host = _host(_free_port()).model_copy(update={"username": None, "password": None})
    real = _caught(lambda: winrm.run_sync(_target(winrm, host), "x", "{}", Budget(2)))  # pywinrm checks before connecting
    msg = "No username or password was specified and the credential cache did not exist or contained no credentials"
    made = sp.OperationNotAvailableError(context_msg=msg)  # what pypsrp gets from pyspnego at the first 401
    for exc in (real, made):
        f = classify(exc, FailureContext(auth="ntlm"))
        assert (f.status, f.error_type) == (HostStatus.AUTH_FAILED, "auth_config")


@pytest.fixture
def http_503() -> Iterator[int]:
    """Answers every request with 503 (WinRM busy / restarting behind a load balancer)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def loop() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    threading.Thread(target=loop, daemon=True).start()
    yield int(srv.getsockname()[1])
    srv.close()


@pytest.mark.parametrize("mod", [psrp, winrm])
def test_real_503_is_transient(mod: object, http_503: int) -> None:
    exc = _caught(lambda: mod.run_sync(_target(mod, _host(http_503)), "x", "{}", Budget(5)))  # type: ignore[attr-defined]
    f = classify(exc, FailureContext(address="127.0.0.1", port=http_503))
    assert (f.status, f.error_type, f.transient) == (HostStatus.UNREACHABLE, "http_503", True)


def test_each_transport_maps_its_own_libraries() -> None:
    from fleetcheck.errors import HostError, Unreachable
    from fleetcheck.transports.errors import SSH_RULES, WSMAN_RULES, map_exceptions

    fault = psrp_exc.WSManFaultError(2150859173, "", "quota", "", "", "")
    assert classify(fault, CTX, WSMAN_RULES).error_type == "quota"
    assert classify(fault, CTX, SSH_RULES).error_type == "internal"  # the SSH mapper knows no WSMan faults
    lost = asyncssh.ConnectionLost("Connection lost")
    assert classify(lost, CTX, SSH_RULES).error_type == "reset"
    with pytest.raises(Unreachable) as info, map_exceptions(CTX, WSMAN_RULES):
        raise ConnectionRefusedError(111, "Connection refused")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    mine = Unreachable("already ours")
    with pytest.raises(HostError) as passed, map_exceptions(CTX):
        raise mine
    assert passed.value is mine


def test_an_unexpected_exception_says_where_it_was_raised_and_nothing_more() -> None:
    """A race or library bug that ends as `internal` must be traceable from the report alone
    (one such RuntimeError in 1,200 pypsrp hosts was not); the location is code, never a value."""
    import json

    from fleetcheck.transports.errors import FailureContext, classify

    try:
        json.loads('{"password": "pw-secret-1"')
    except ValueError as exc:
        failure = classify(exc, FailureContext(secrets=("pw-secret-1",)))
    assert failure.error_type == "internal"
    assert failure.message.startswith("unexpected JSONDecodeError: ")
    assert failure.message.endswith(" in raw_decode)") and "(at json/decoder.py:" in failure.message
    assert "pw-secret-1" not in failure.message
