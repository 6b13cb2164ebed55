"""Mail the nightly summary (`--mail-to ADDR[,ADDR] --smtp HOST[:PORT]`).

Short text body (the change summary) with the HTML report attached. Sent only when
something changed, unless `always`. Credentials come from the environment
(FLEETCHECK_SMTP_USER / FLEETCHECK_SMTP_PASSWORD) and never appear in errors or logs.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

from fleetcheck.changes import ChangeSet, format_change_summary
from fleetcheck.results import RunResult

FROM_ENV = "FLEETCHECK_MAIL_FROM"
USER_ENV = "FLEETCHECK_SMTP_USER"
PASSWORD_ENV = "FLEETCHECK_SMTP_PASSWORD"
#: --smtp-tls: require = STARTTLS or no mail; starttls = when the relay offers it; none = never.
#: Unset: require whenever a password is configured. "auto"/"off" are the older names.
StartTLS = Literal["require", "starttls", "none", "auto", "off"]
SMTP_TLS_MODES = ("require", "starttls", "none")


class MailError(Exception):
    """Mail could not be sent; the message is safe to print (no secrets)."""


class MailConfigError(MailError, ValueError):
    """Bad --mail-to / --smtp values."""


@dataclass
class MailSettings:
    """Where and how to send. `starttls`: see `StartTLS`; None = require TLS when a password is set."""

    to: list[str]
    smtp_host: str
    smtp_port: int = 25
    sender: str = field(default_factory=lambda: default_sender(os.environ))
    starttls: StartTLS | None = None
    always: bool = False
    timeout: float = 30.0
    attempts: int = 3
    backoff_s: float = 2.0
    ssl_context: ssl.SSLContext | None = None  # None: system trust store


def default_sender(env: Mapping[str, str]) -> str:
    """FLEETCHECK_MAIL_FROM, else fleetcheck@<this host> (relays often insist on a real domain)."""
    return env.get(FROM_ENV) or f"fleetcheck@{socket.gethostname() or 'localhost'}"


def parse_mail_to(value: str) -> list[str]:
    """`a@x, b@y` -> list; raises MailConfigError for an empty or malformed list."""
    addrs = [a.strip() for a in value.split(",") if a.strip()]
    if not addrs:
        raise MailConfigError("--mail-to is empty: give one or more addresses separated by commas.")
    for addr in addrs:
        local, at, domain = addr.rpartition("@")
        if not at or not local or not domain or any(ch.isspace() or ch in "<>\r\n" for ch in addr):
            raise MailConfigError(f"--mail-to: {addr!r} is not an e-mail address (expected name@domain).")
    return addrs


def parse_smtp(value: str) -> tuple[str, int]:
    """`HOST[:PORT]` (IPv6 as `[::1]:25`) -> (host, port); default port 25."""
    value = value.strip()
    host, port = value, "25"
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise MailConfigError(f"--smtp {value!r}: expected HOST or HOST:PORT, e.g. smtp.example.com:587.")
    return host, int(port)


def should_send(changes: ChangeSet | None, always: bool) -> bool:
    """Mail only when there is news (or when asked to always mail)."""
    if always:
        return True
    return changes is not None and (changes.changed or changes.first_run)


def subject_for(run: RunResult, changes: ChangeSet | None) -> str:
    counts = run.counts()
    head = f"fleetcheck: {counts['compliant']}/{counts['hosts']} compliant"
    if changes is None:
        return head
    return f"{head}, {changes.headline()}"


def build_message(
    run: RunResult,
    changes: ChangeSet | None,
    settings: MailSettings,
    html: str | None = None,
    notes: list[str] | None = None,
) -> EmailMessage:
    """The message (pure): text summary body, HTML report attached when given."""
    counts = run.counts()
    msg = EmailMessage()
    msg["Subject"] = subject_for(run, changes)
    msg["From"] = settings.sender
    msg["To"] = ", ".join(settings.to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    lines = [
        f"Run {run.run_id} ({run.inventory or 'inventory'}), started {run.started_at:%Y-%m-%d %H:%M UTC}.",
        f"{counts['compliant']} of {counts['hosts']} hosts compliant, {counts['noncompliant']} noncompliant, "
        f"{counts['unchecked']} not checked; {counts['failing_checks']} failing checks, "
        f"{counts['waived_checks']} waived.",
        "",
    ]
    lines.append(format_change_summary(changes) if changes is not None else "No history: changes unknown.")
    if notes:
        lines += ["", *(f"Note: {n}" for n in notes if not changes or n not in changes.notes)]
    if html is not None:
        lines += ["", "The full report is attached (fleetcheck-report.html)."]
    msg.set_content("\n".join(lines).rstrip() + "\n")
    if html is not None:
        msg.add_attachment(html, subtype="html", charset="utf-8", cte="base64", filename="fleetcheck-report.html")
    return msg


def send_message(msg: EmailMessage, settings: MailSettings, env: Mapping[str, str] | None = None) -> None:
    """Deliver with bounded retries; raises MailError with a message safe to show."""
    env = os.environ if env is None else env
    last: Exception | None = None
    for attempt in range(1, max(1, settings.attempts) + 1):
        try:
            _deliver(msg, settings, env)
            return
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPRecipientsRefused, ssl.SSLError, MailError) as exc:
            raise _safe(exc, settings) from None  # retrying will not help
        except (OSError, smtplib.SMTPException) as exc:
            last = exc
            if attempt < settings.attempts:
                time.sleep(settings.backoff_s * 2 ** (attempt - 1))
    raise _safe(last, settings) from None


def tls_mode(settings: MailSettings, has_password: bool) -> str:
    """The effective --smtp-tls mode: require, starttls or none."""
    mode = settings.starttls
    if mode is None:
        return "require" if has_password else "starttls"
    return {"auto": "starttls", "off": "none"}.get(mode, mode)


def _deliver(msg: EmailMessage, settings: MailSettings, env: Mapping[str, str]) -> None:
    user, password = env.get(USER_ENV), env.get(PASSWORD_ENV)
    mode = tls_mode(settings, bool(password))
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout) as smtp:
        smtp.ehlo()
        encrypted = False
        if mode != "none" and smtp.has_extn("starttls"):
            smtp.starttls(context=settings.ssl_context or ssl.create_default_context())
            smtp.ehlo()
            encrypted = True
        elif mode == "require":
            raise MailError(
                f"{settings.smtp_host}:{settings.smtp_port} does not offer STARTTLS and TLS is required "
                "(--smtp-tls require, the default when a password is set)."
            )
        if user:
            if password is None:
                raise MailError(f"{USER_ENV} is set but {PASSWORD_ENV} is not.")
            if not encrypted:  # AUTH PLAIN/LOGIN would put the password on the wire in clear
                raise MailError(
                    f"{settings.smtp_host}:{settings.smtp_port}: the SMTP password would cross the network in clear "
                    "(no TLS) - use a relay that offers STARTTLS, or one that needs no login."
                )
            if not smtp.has_extn("auth"):
                raise MailError(f"{settings.smtp_host} does not offer SMTP AUTH but {USER_ENV} is set.")
            smtp.login(user, password)
        smtp.send_message(msg)


def _safe(exc: Exception | None, settings: MailSettings) -> MailError:
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    if isinstance(exc, MailError):
        return MailError(f"mail not sent: {exc}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return MailError(f"mail not sent: {where} rejected the login (code {exc.smtp_code}); check {USER_ENV}/{PASSWORD_ENV}.")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return MailError(f"mail not sent: {where} refused the recipients {sorted(exc.recipients)}.")
    if isinstance(exc, smtplib.SMTPResponseException):
        return MailError(f"mail not sent: {where} answered {exc.smtp_code}.")
    if isinstance(exc, ssl.SSLError):
        return MailError(f"mail not sent: TLS with {where} failed ({exc.reason}).")
    kind = type(exc).__name__ if exc else "unknown error"
    return MailError(f"mail not sent: cannot talk to {where} ({kind}) after {settings.attempts} attempts.")


def send_report(
    run: RunResult,
    changes: ChangeSet | None,
    settings: MailSettings,
    html: str | None = None,
    notes: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Send the nightly mail if `should_send`; returns whether a message went out."""
    if not should_send(changes, settings.always):
        return False
    send_message(build_message(run, changes, settings, html, notes), settings, env)
    return True
