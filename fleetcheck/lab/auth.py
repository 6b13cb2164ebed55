"""Authentication as a Windows WinRM listener does it: Negotiate (Kerberos or NTLM) and
Kerberos per TCP connection, Basic only where allowed, channel binding on HTTPS, then a check
that the principal is a user of this host.

Kerberos: a domain-joined host has a keytab with its `HTTP/<fqdn>` and `WSMAN/<fqdn>` keys
(`LabHost.kerberos_keytab`). MIT's acceptor reads the keytab named by `KRB5_KTNAME` when a
context is created, so that variable is switched the same way as `NTLM_USER_FILE`; a ticket
for another host's SPN then fails to decrypt, as it would against another computer account.
Only domain accounts (a user whose `domain` is the ticket's realm) log on with Kerberos.

pyspnego's NTLM acceptor reads credentials only from the file named by `NTLM_USER_FILE`.
`CredentialFiles` writes smbpasswd-format files (hashes, so no per-handshake DES), one per
distinct user set, so a fleet whose hosts share accounts shares one file. Hosts with other
passwords for the same name get their own file; the variable is pointed at the right file
synchronously around each `step()` (no `await` in between, so hosts cannot interfere).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import functools
import hashlib
import hmac
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import spnego
from spnego.channel_bindings import GssChannelBindings
from spnego.exceptions import BadBindingsError

from fleetcheck.lab.certauth import is_certificate_auth, map_certificate
from fleetcheck.lab.machine import LabUser, MachineState

_T = TypeVar("_T")

#: What a Windows listener offers on a 401 (Basic only when it is enabled for that listener).
NEGOTIATE_OFFER = ("WWW-Authenticate", "Negotiate")
BASIC_OFFER = ("WWW-Authenticate", 'Basic realm="WSMAN"')
KERBEROS_OFFER = ("WWW-Authenticate", "Kerberos")
CREDSSP_OFFER = ("WWW-Authenticate", "CredSSP")
#: The Authorization scheme -> the pyspnego protocol of the acceptor, and the scheme's canonical name.
_SCHEMES = {"negotiate": ("negotiate", "Negotiate"), "ntlm": ("negotiate", "Negotiate"), "kerberos": ("kerberos", "Kerberos"), "credssp": ("credssp", "CredSSP")}


#: The LM hash Windows stores when it keeps none (NoLMHash, the default since Vista):
#: NTLMv2 never uses it, and no client here may fall back to LM.
NO_LM_HASH = "AAD3B435B51404EEAAD3B435B51404EE"


@functools.lru_cache(maxsize=256)
def _hashes(password: str) -> tuple[str, str]:
    from fleetcheck.transports.psrp_client.md4 import nt_hash

    return NO_LM_HASH, nt_hash(password).upper()


def _usable(user: LabUser) -> bool:
    return not any(c in user.name + user.domain for c in ":\r\n\\")


def credential_lines(users: list[LabUser]) -> list[str]:
    """smbpasswd lines: bare name, `.\\name`, and `DOMAIN\\name` and `name@DOMAIN` for domain accounts."""
    lines: list[str] = []
    for uid, user in enumerate(u for u in users if _usable(u)):
        lm, nt = _hashes(user.password)
        # A domain account also by its UPN (user@domain), which NTLM carries as the user name.
        names = [user.name, f".\\{user.name}"] + ([f"{user.domain}\\{user.name}", f"{user.name}@{user.domain}"] if user.domain else [])
        lines.extend(f"{name}:{1000 + uid}:{lm}:{nt}:[U          ]:LCT-00000000" for name in names)
    return lines


class CredentialFiles:
    """Process-wide store of NTLM user files, keyed by the user set they hold."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._paths: dict[tuple[tuple[str, str, str], ...], str] = {}

    def path_for(self, users: list[LabUser]) -> str:
        key = tuple(sorted((u.name.lower(), u.domain.lower(), u.password) for u in users))
        path = self._paths.get(key)
        if path is None:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="fleetcheck-lab-ntlm-")
                atexit.register(shutil.rmtree, self._dir, True)
            path = os.path.join(self._dir, f"users-{len(self._paths)}.smbpasswd")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write("\n".join(credential_lines(users)) + "\n")
            self._paths[key] = path
        return path


CREDENTIAL_FILES = CredentialFiles()


#: The acceptor keytab of a host that is not in a domain: none, so Negotiate settles on NTLM.
NO_KEYTAB = "FILE:/nonexistent/fleetcheck-lab-no-keytab"


def _with_user_file(path: str, action: Callable[[], _T], keytab: str | None = None) -> _T:
    settings = {"NTLM_USER_FILE": path, "KRB5_KTNAME": keytab or NO_KEYTAB}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        return action()
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def channel_bindings(cert_der: bytes) -> GssChannelBindings:
    """RFC 5929 tls-server-end-point binding for a SHA-256-signed certificate."""
    return GssChannelBindings(application_data=b"tls-server-end-point:" + hashlib.sha256(cert_der).digest())


def find_domain_user(machine: MachineState, principal: str) -> LabUser | None:
    """The domain account behind a Kerberos `user@REALM` (local accounts cannot use Kerberos)."""
    name, _, realm = principal.rpartition("@")
    for user in machine.users:
        if user.domain and user.name.lower() == name.lower() and user.domain.lower() in (realm.lower(), realm.split(".")[0].lower()):
            return user
    return None


def find_user(machine: MachineState, principal: str) -> LabUser | None:
    """The host's account behind `principal` (`user`, `.\\user`, `HOST\\user` or `DOMAIN\\user`)."""
    domain, _, name = principal.rpartition("\\")
    if "@" in name and not domain:
        name, _, domain = name.partition("@")
    for user in machine.users:
        if user.name.lower() != name.lower():
            continue
        accepted = {"", ".", machine.hostname.lower(), user.domain.lower()}
        if user.domain:
            accepted.add(user.domain.split(".")[0].lower())
        if domain.lower() in accepted or domain.split(".")[0].lower() in accepted:
            return user
    return None


@dataclass
class AuthStep:
    """What the HTTP layer does next: `ok` (serve), `challenge` (401 + token) or `reject` (401)."""

    outcome: str
    token: str | None = None  # base64 for the WWW-Authenticate header
    scheme: str = "Negotiate"
    principal: str | None = None
    mechanism: str | None = None  # kerberos, ntlm or basic once authenticated


class ConnectionAuth:
    """Auth state of one TCP connection (NTLM contexts belong to the connection, not the host)."""

    def __init__(
        self,
        machine: MachineState,
        bindings: GssChannelBindings | None,
        basic_allowed: bool,
        keytab: str | None = None,
        schemes: tuple[str, ...] = ("negotiate", "ntlm", "kerberos"),
        on_delegation: Callable[[], None] | None = None,
        client_cert_der: bytes | None = None,
        *,
        cbt_hardening: str = "Relaxed",
    ) -> None:
        self.machine = machine
        self.bindings = None if cbt_hardening == "None" else bindings
        self.cbt_strict = cbt_hardening == "Strict"
        self.basic_allowed = basic_allowed
        self.keytab = keytab
        self.schemes = schemes
        self.on_delegation = on_delegation
        self.client_cert_der = client_cert_der
        self.context: Any = None
        self.principal: str | None = None
        self.scheme: str | None = None
        self.mechanism: str | None = None

    @property
    def encrypted_session(self) -> bool:
        """True once a Negotiate or Kerberos context exists that can seal messages."""
        return self.context is not None and self.principal is not None and self.scheme in ("Negotiate", "Kerberos", "CredSSP")

    def reset(self) -> None:
        self.context = None
        self.principal = None
        self.scheme = None
        self.mechanism = None

    def step(self, authorization: str | None) -> AuthStep:
        """Process one request's Authorization header (None = rely on the connection's state)."""
        if not authorization:
            if self.principal is not None and self.scheme in ("Negotiate", "Kerberos", "CredSSP"):
                return AuthStep("ok", principal=self.principal, scheme=self.scheme, mechanism=self.mechanism)
            return AuthStep("reject")
        if is_certificate_auth(authorization):
            return self._certificate()
        scheme, _, payload = authorization.strip().partition(" ")
        scheme_l = scheme.lower()
        if scheme_l == "basic":
            return self._basic(payload.strip())
        if scheme_l in _SCHEMES and scheme_l in self.schemes:
            return self._negotiate(scheme, payload.strip())
        return AuthStep("reject")

    def _basic(self, payload: str) -> AuthStep:
        self.reset()
        if not self.basic_allowed:
            return AuthStep("reject")
        try:
            username, _, password = base64.b64decode(payload, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return AuthStep("reject")
        user = find_user(self.machine, username)
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            return AuthStep("reject")
        self.scheme = "Basic"
        self.principal = username
        self.mechanism = "basic"
        return AuthStep("ok", principal=username, scheme="Basic", mechanism="basic")

    def _certificate(self) -> AuthStep:
        """A TLS client certificate mapped to a local account (certmapping); checked on every request."""
        self.reset()
        user = map_certificate(self.machine, self.client_cert_der)
        if user is None:
            return AuthStep("reject")
        self.scheme = "Certificate"
        self.principal = user.name
        self.mechanism = "certificate"
        return AuthStep("ok", principal=user.name, scheme="Certificate", mechanism="certificate")

    def _negotiate(self, scheme: str, payload: str) -> AuthStep:
        try:
            token = base64.b64decode(payload, validate=True)
        except binascii.Error:
            self.reset()
            return AuthStep("reject")
        path = CREDENTIAL_FILES.path_for(self.machine.users)
        # "Kerberos" carries a raw Kerberos token; "Negotiate" SPNEGO, raw NTLM or raw Kerberos;
        # "CredSSP" TLS records around NTLM or Kerberos, then the delegated credential.
        protocol, canonical = _SCHEMES[scheme.lower()]
        if self.context is None or self.principal is not None or token.startswith(b"NTLMSSP\x00\x01"):
            self.principal = None
            try:
                # bindings are checked per step (below), so Relaxed can accept a client that sends none
                self.context = _with_user_file(path, lambda: spnego.server(protocol=protocol), self.keytab)
            except Exception:
                self.reset()
                return AuthStep("reject")
        ctx = self.context
        try:
            bindings = None if protocol == "credssp" else self.bindings
            out = _with_user_file(path, lambda: ctx.step(token, channel_bindings=bindings), self.keytab)
        except BadBindingsError as exc:
            # Relaxed (Windows' default): a client without channel binding is accepted, a wrong one is not
            if self.cbt_strict or "not present" not in str(exc):
                self.reset()
                return AuthStep("reject")
            try:
                out = _with_user_file(path, lambda: ctx.step(token), self.keytab)
            except Exception:
                self.reset()
                return AuthStep("reject")
        except Exception:
            self.reset()
            return AuthStep("reject")
        out_b64 = base64.b64encode(out).decode("ascii") if out else None
        if not ctx.complete:
            return AuthStep("challenge", token=out_b64, scheme=scheme)
        principal = str(ctx.client_principal or "")
        inner = str(ctx.negotiated_protocol or "ntlm")
        mechanism = "credssp" if protocol == "credssp" else inner
        kerberos = inner == "kerberos" or ("@" in principal and "\\" not in principal and protocol == "credssp")
        found = find_domain_user(self.machine, principal) if kerberos else find_user(self.machine, principal)
        if found is None:
            self.reset()
            return AuthStep("reject")
        if kerberos:  # the logon name Windows gives a domain account: NETBIOS\user
            principal = f"{principal.rpartition('@')[2].split('.')[0].upper()}\\{found.name}"
        if protocol == "credssp" and ctx.get_extra_info("client_credential") is not None and self.on_delegation:
            self.on_delegation()  # counted only: the delegated password is never kept
        self.principal = principal
        self.scheme = canonical
        self.mechanism = mechanism
        return AuthStep("ok", token=out_b64, scheme=scheme, principal=principal, mechanism=mechanism)
