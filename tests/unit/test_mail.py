"""Mail against a real SMTP server (aiosmtpd) on loopback, with and without STARTTLS."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from fleetcheck.changes import compute_changes
from fleetcheck.mail import (
    MailConfigError,
    MailError,
    MailSettings,
    build_message,
    parse_mail_to,
    parse_smtp,
    send_report,
    should_send,
)
from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult

SECRET = "s3cr3t-Pa55!"


@dataclass
class Sink:
    """aiosmtpd handler that keeps every message it receives."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    tls_used: list[bool] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))  # type: ignore[arg-type]
        self.envelopes.append(envelope)
        self.tls_used.append(session.ssl is not None)
        return "250 OK"


class PortZeroController(Controller):
    """aiosmtpd Controller that binds an ephemeral port (parallel-safe)."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def _authenticator(sink: Sink) -> Any:
    def check(server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == SECRET.encode()
        if ok:
            sink.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    return check


@pytest.fixture
def plain_smtp() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    ctl = PortZeroController(sink, hostname="127.0.0.1", port=0)
    ctl.start()
    try:
        yield sink, ctl.port
    finally:
        ctl.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_smtp(ca: trustme.CA) -> Iterator[tuple[Sink, int, ssl.SSLContext]]:
    sink = Sink()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    ctl = PortZeroController(
        sink,
        hostname="127.0.0.1",
        port=0,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=_authenticator(sink),
        auth_require_tls=True,
    )
    ctl.start()
    try:
        yield sink, ctl.port, client_ctx
    finally:
        ctl.stop()


def _run(run_id: str, day: int, statuses: dict[str, dict[str, CheckStatus]]) -> RunResult:
    start = datetime(2026, 11, day, 2, 0, tzinfo=UTC)
    hosts = []
    for name, checks in statuses.items():
        results = [CheckResult(check_id=c, status=s, message=f"{c} is {s}") for c, s in checks.items()]
        bad = any(r.status == CheckStatus.FAIL for r in results)
        hosts.append(
            HostResult(host=name, status=HostStatus.NONCOMPLIANT if bad else HostStatus.COMPLIANT, checks=results)
        )
    return RunResult(run_id=run_id, started_at=start, finished_at=start, inventory="prod.yml", hosts=hosts)


P, F = CheckStatus.PASS, CheckStatus.FAIL
NIGHT1 = _run("n1", 20, {"web1": {"wsb-feature": F, "service-vss": P}, "web2": {"wsb-feature": P, "service-vss": F}})
NIGHT2 = _run("n2", 21, {"web1": {"wsb-feature": F, "service-vss": F}, "web2": {"wsb-feature": P, "service-vss": P}})


def _settings(port: int, **kw: Any) -> MailSettings:
    return MailSettings(
        to=["ops@example.test", "lead@example.test"],
        smtp_host="127.0.0.1",
        smtp_port=port,
        sender="fleetcheck@example.test",
        attempts=1,
        timeout=10,
        **kw,
    )


def test_plain_smtp_delivers_summary_and_attachment(plain_smtp: tuple[Sink, int]) -> None:
    sink, port = plain_smtp
    changes = compute_changes(NIGHT1, NIGHT2)
    sent = send_report(NIGHT2, changes, _settings(port), html="<html><b>report</b></html>", env={})
    assert sent is True
    assert len(sink.messages) == 1
    msg = sink.messages[0]
    assert sink.envelopes[0].rcpt_tos == ["ops@example.test", "lead@example.test"]
    assert msg["Subject"] == "fleetcheck: 1/2 compliant, 1 new failure, 1 fixed, 1 still failing"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "1 new failure, 1 fixed, 1 still failing" in text
    assert "web1  service-vss  fail" in text
    assert "web2  service-vss  now pass" in text
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["fleetcheck-report.html"]
    assert attachments[0].get_content_type() == "text/html"
    assert "<b>report</b>" in attachments[0].get_content()
    assert sink.tls_used == [False]


def test_starttls_and_login_from_environment(tls_smtp: tuple[Sink, int, ssl.SSLContext]) -> None:
    sink, port, client_ctx = tls_smtp
    changes = compute_changes(NIGHT1, NIGHT2)
    env = {"FLEETCHECK_SMTP_USER": "fleet", "FLEETCHECK_SMTP_PASSWORD": SECRET}
    assert send_report(NIGHT2, changes, _settings(port, ssl_context=client_ctx, starttls="require"), "<p/>", env=env)
    assert sink.tls_used == [True]
    assert sink.logins == ["fleet"]
    assert sink.messages[0]["Subject"].startswith("fleetcheck: 1/2 compliant")


def test_wrong_password_error_has_no_secret(tls_smtp: tuple[Sink, int, ssl.SSLContext]) -> None:
    sink, port, client_ctx = tls_smtp
    env = {"FLEETCHECK_SMTP_USER": "fleet", "FLEETCHECK_SMTP_PASSWORD": "wrong-" + SECRET}
    with pytest.raises(MailError) as info:
        send_report(NIGHT2, compute_changes(NIGHT1, NIGHT2), _settings(port, ssl_context=client_ctx), None, env=env)
    assert "rejected the login" in str(info.value)
    assert SECRET not in str(info.value) and "wrong-" not in str(info.value)
    assert sink.messages == []


def test_untrusted_certificate_is_refused(tls_smtp: tuple[Sink, int, ssl.SSLContext]) -> None:
    sink, port, _ = tls_smtp
    other = ssl.create_default_context()
    trustme.CA().configure_trust(other)
    with pytest.raises(MailError, match="TLS"):
        send_report(NIGHT2, None, _settings(port, ssl_context=other, always=True), None, env={})
    assert sink.messages == []


def test_require_tls_refuses_plain_server(plain_smtp: tuple[Sink, int]) -> None:
    sink, port = plain_smtp
    with pytest.raises(MailError, match="STARTTLS"):
        send_report(NIGHT2, None, _settings(port, starttls="require", always=True), None, env={})
    assert sink.messages == []


def test_unreachable_server_retries_then_fails_cleanly() -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = _settings(port, always=True)
    settings.attempts, settings.backoff_s = 2, 0.01
    with pytest.raises(MailError, match="after 2 attempts"):
        send_report(NIGHT2, None, settings, None, env={})


def test_no_mail_when_nothing_changed(plain_smtp: tuple[Sink, int]) -> None:
    sink, port = plain_smtp
    same = compute_changes(NIGHT2, NIGHT2.model_copy(update={"run_id": "n3"}))
    assert not same.changed
    assert send_report(NIGHT2, same, _settings(port), None, env={}) is False
    assert send_report(NIGHT2, same, _settings(port, always=True), None, env={}) is True
    assert len(sink.messages) == 1


def test_should_send_rules() -> None:
    first = compute_changes(None, NIGHT1)
    assert should_send(first, always=False)  # the first night is news too
    assert not should_send(None, always=False)
    assert should_send(None, always=True)


def test_message_without_history_says_so() -> None:
    msg = build_message(NIGHT2, None, _settings(25))
    assert msg["Subject"] == "fleetcheck: 1/2 compliant"
    assert "No history" in msg.get_content()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("mail.example.com", ("mail.example.com", 25)), ("127.0.0.1:2525", ("127.0.0.1", 2525)), ("[::1]:587", ("::1", 587))],
)
def test_parse_smtp(value: str, expected: tuple[str, int]) -> None:
    assert parse_smtp(value) == expected


@pytest.mark.parametrize("value", ["", "host:0", "host:abc", "host:70000"])
def test_parse_smtp_rejects(value: str) -> None:
    with pytest.raises(MailConfigError, match="HOST"):
        parse_smtp(value)


def test_parse_mail_to() -> None:
    assert parse_mail_to("a@x.test, b@y.test,") == ["a@x.test", "b@y.test"]
    with pytest.raises(MailConfigError, match="not an e-mail address"):
        parse_mail_to("a@x.test, nobody")
    with pytest.raises(MailConfigError, match="empty"):
        parse_mail_to(" , ")


def test_sender_from_environment() -> None:
    from fleetcheck.mail import default_sender

    assert default_sender({"FLEETCHECK_MAIL_FROM": "nightly@example.test"}) == "nightly@example.test"
    assert default_sender({}).startswith("fleetcheck@")


@pytest.fixture
def plain_auth_smtp() -> Iterator[tuple[Sink, int]]:
    """A relay without STARTTLS that still offers AUTH in clear (what leaked the password)."""
    sink = Sink()
    ctl = PortZeroController(
        sink, hostname="127.0.0.1", port=0, authenticator=_authenticator(sink), auth_require_tls=False
    )
    ctl.start()
    try:
        yield sink, ctl.port
    finally:
        ctl.stop()


@pytest.mark.parametrize("mode", [None, "require", "starttls", "none"])
def test_password_never_crosses_a_plain_connection(plain_auth_smtp: tuple[Sink, int], mode: str | None) -> None:
    sink, port = plain_auth_smtp
    env = {"FLEETCHECK_SMTP_USER": "mailer", "FLEETCHECK_SMTP_PASSWORD": SECRET}
    with pytest.raises(MailError) as caught:
        send_report(NIGHT2, None, _settings(port, starttls=mode, always=True), None, env=env)
    assert sink.logins == [] and sink.messages == []
    assert SECRET not in str(caught.value)
    assert ("TLS is required" in str(caught.value)) == (mode in (None, "require"))


def test_none_mode_delivers_without_credentials(plain_smtp: tuple[Sink, int]) -> None:
    sink, port = plain_smtp
    assert send_report(NIGHT2, None, _settings(port, starttls="none", always=True), None, env={})
    assert sink.tls_used == [False]


def test_default_with_password_uses_starttls(tls_smtp: tuple[Sink, int, ssl.SSLContext]) -> None:
    sink, port, client_ctx = tls_smtp
    env = {"FLEETCHECK_SMTP_USER": "mailer", "FLEETCHECK_SMTP_PASSWORD": SECRET}
    assert send_report(NIGHT2, None, _settings(port, ssl_context=client_ctx, always=True), None, env=env)
    assert sink.tls_used == [True] and sink.logins == ["mailer"]


def test_smtp_tls_option_is_validated() -> None:
    from fleetcheck.nightly import NightlyConfigError, mail_settings

    settings = mail_settings("ops@example.test", "127.0.0.1:25", smtp_tls="starttls")
    assert settings is not None and settings.starttls == "starttls"
    with pytest.raises(NightlyConfigError):
        mail_settings("ops@example.test", "127.0.0.1:25", smtp_tls="maybe")
