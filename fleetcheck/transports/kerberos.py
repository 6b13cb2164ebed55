"""Kerberos for the WinRM transports: credentials, the SPN, a client context, and what went wrong.

One small provider that every transport calls, so the clients stay about HTTP and PSRP:

- `KerberosOptions` holds a host's settings: principal, password (in memory, from
  `password_env`), client keytab or ticket cache, the SPN host override and service.
- `credentials()` turns them into pyspnego credentials: a ticket is acquired in memory from a
  password or keytab (never written to a cache file); without either, the ticket cache (`kinit`).
- `TicketCache` gets one ticket-granting ticket per principal and password (or keytab) per run,
  in a MEMORY: cache, and remembers a rejected password so it is asked once, not once per host.
- `KerberosAuth` / `client_context()` is the initiator the native client steps through its 401s;
  pypsrp gets the same credentials as a pyspnego credential list (`pypsrp_auth_kwargs`), and
  pywinrm, which reads only a ticket cache, the MEMORY: cache selected for its thread.
- `explain()` names the cause of a failure: KDC unreachable, principal unknown, wrong password,
  ticket expired, SPN missing, clock skew, no credentials. Each is final: a rejected password is
  never tried again (accounts lock out).
- `preflight()` says, before any connection, what this machine lacks for Kerberos hosts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SERVICE = "WSMAN"
INSTALL_HINT = (
    "pip install 'fleetcheck[kerberos]' and the system packages for MIT Kerberos "
    "(Debian/Ubuntu: apt-get install krb5-user libkrb5-dev; RHEL: dnf install krb5-workstation krb5-devel)"
)


@dataclass(frozen=True)
class KerberosOptions:
    """One host's Kerberos settings. `password` is the secret itself, held only in memory."""

    principal: str | None = None
    password: str | None = None
    keytab: str | None = None
    ccache: str | None = None
    hostname_override: str | None = None
    service: str = DEFAULT_SERVICE
    delegate: bool = False

    def __repr__(self) -> str:  # never print the password
        hidden = "***" if self.password else None
        return (
            f"KerberosOptions(principal={self.principal!r}, password={hidden!r}, keytab={self.keytab!r}, "
            f"ccache={self.ccache!r}, hostname_override={self.hostname_override!r}, service={self.service!r})"
        )


def options_for(settings: Any, password: str | None) -> KerberosOptions:
    """A host's Kerberos options from its transport settings (fields read by name, all optional)."""
    keytab = getattr(settings, "kerberos_keytab", None)
    ccache = getattr(settings, "kerberos_ccache", None)
    return KerberosOptions(
        principal=getattr(settings, "username", None) or None,
        password=password,
        keytab=str(keytab) if keytab else None,
        ccache=str(ccache) if ccache else None,
        hostname_override=getattr(settings, "negotiate_hostname_override", None) or None,
        service=getattr(settings, "negotiate_service", None) or DEFAULT_SERVICE,
    )


def wants_kerberos(auth: str, username: str | None, password: str | None, settings: Any = None) -> bool:
    """Whether a host's Negotiate should try Kerberos: no password (a ticket cache or keytab), a UPN
    username (user@REALM), or Kerberos settings. `DOMAIN\\user` or `.\\user` with a password is NTLM,
    as pyspnego would fall back to anyway, without a KDC round trip."""
    if auth == "kerberos":
        return True
    if auth != "negotiate":
        return False
    has_settings = any(getattr(settings, k, None) for k in ("kerberos_keytab", "kerberos_ccache", "negotiate_hostname_override"))
    return password is None or has_settings or (bool(username) and "@" in (username or "") and "\\" not in (username or ""))


def spn_host(address: str, options: KerberosOptions) -> str:
    """The host part of the SPN: the override (connecting by IP or via a load balancer), else the address."""
    return options.hostname_override or address


def spn(address: str, options: KerberosOptions) -> str:
    return f"{options.service}/{spn_host(address, options)}"


def is_ip_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def credentials(options: KerberosOptions) -> list[Any]:
    """pyspnego credentials for the options, most explicit first.

    A keytab or a password gives a ticket acquired in memory (pyspnego's kinit into a MEMORY
    cache); with neither, the default or named ticket cache is used as `kinit` left it.
    """
    import spnego

    if options.keytab:
        return [spnego.KerberosKeytab(keytab=options.keytab, principal=options.principal)]
    if options.password:
        if not options.principal:
            raise ValueError("a Kerberos password needs the user's principal (username: user@REALM)")
        return [spnego.Password(username=options.principal, password=options.password)]
    if options.ccache:
        return [spnego.KerberosCCache(ccache=options.ccache, principal=options.principal)]
    return [spnego.CredentialCache(username=options.principal)]


def client_context(
    address: str,
    options: KerberosOptions,
    *,
    protocol: str = "kerberos",
    channel_bindings: Any = None,
    ntlm_fallback: tuple[str, str] | None = None,
) -> Any:
    """An initiator context for `service/host`; Negotiate may fall back to NTLM with `ntlm_fallback`
    (user, password). Message encryption (wrap_winrm) is required, as WinRM over HTTP needs it."""
    import spnego

    creds = credentials(options)
    if protocol == "negotiate" and ntlm_fallback is not None:
        creds.append(spnego.Password(username=ntlm_fallback[0], password=ntlm_fallback[1]))
    context_req = spnego.ContextReq.default
    if options.delegate:
        context_req |= spnego.ContextReq.delegate
    return spnego.client(
        creds,
        hostname=spn_host(address, options),
        service=options.service,
        protocol=protocol,
        channel_bindings=channel_bindings,
        context_req=context_req,
        options=spnego.NegotiateOptions.wrapping_winrm,
    )


class KerberosAuth:
    """The native client's Kerberos/Negotiate provider: one initiator per connection, the header
    scheme to answer with, and the admin's sentence when it fails.

        auth = KerberosAuth(options, protocol="kerberos")
        ctx = auth.context(address, channel_bindings=cbt)   # step it through the 401s
        scheme = auth.scheme(www_authenticate_of_first_401)  # "Negotiate" or "Kerberos"
        ...
        except Exception as exc: raise auth.error(exc, address) from exc
    """

    def __init__(self, options: KerberosOptions, protocol: str = "kerberos", ntlm_fallback: tuple[str, str] | None = None) -> None:
        self.options = options
        self.protocol = protocol
        self.ntlm_fallback = ntlm_fallback

    def context(self, address: str, channel_bindings: Any = None) -> Any:
        return client_context(
            address, self.options, protocol=self.protocol, channel_bindings=channel_bindings, ntlm_fallback=self.ntlm_fallback
        )

    @staticmethod
    def scheme(offered: str) -> str | None:
        """The scheme to authenticate with from a 401's WWW-Authenticate: Negotiate when offered
        (Windows' default), else Kerberos (a listener with Negotiate switched off)."""
        low = offered.lower()
        return next((name for name in ("Negotiate", "Kerberos") if name.lower() in low), None)

    @staticmethod
    def mechanism(ctx: Any) -> str:
        """What authenticated: kerberos or ntlm (Negotiate may have fallen back)."""
        return str(getattr(ctx, "negotiated_protocol", None) or "ntlm")


def memory_ccache(options: KerberosOptions) -> str | None:
    """For clients that only read a ticket cache (pywinrm's pykerberos): a ticket acquired in a
    MEMORY: cache from the password or keytab, or None when the default cache is to be used.
    Select it in the calling thread with `use_ccache` (MIT keeps the choice per thread).

    Written with the krb5 package's get_init_creds + cc_initialize/cc_store_cred: GSSAPI's
    store_cred_into into a MEMORY: cache loses the cache now and then when threads do it at
    once (about 1 in 60 here), and the next reader gets "No credentials cache found"."""
    if not (options.password or options.keytab):
        return options.ccache
    import uuid

    import krb5

    name = f"MEMORY:fleetcheck-{uuid.uuid4().hex}"
    ctx = krb5.init_context()
    if options.keytab and not options.principal:
        raise ValueError("a Kerberos client keytab needs the user's principal (username: user@REALM)")
    if not options.principal:
        raise ValueError("a Kerberos password needs the user's principal (username: user@REALM)")
    principal = krb5.parse_name_flags(ctx, options.principal.encode())
    init_opt = krb5.get_init_creds_opt_alloc(ctx)
    krb5.get_init_creds_opt_set_forwardable(init_opt, bool(options.delegate))
    if options.keytab:
        keytab = krb5.kt_resolve(ctx, options.keytab.encode())
        creds = krb5.get_init_creds_keytab(ctx, principal, init_opt, keytab=keytab)
    else:
        creds = krb5.get_init_creds_password(ctx, principal, init_opt, password=(options.password or "").encode())
    ccache = krb5.cc_resolve(ctx, name.encode())
    krb5.cc_initialize(ctx, ccache, principal)
    krb5.cc_store_cred(ctx, ccache, creds)
    return name


#: Causes that mean the KDC judged the credentials themselves: never asked again in the same run.
_CREDENTIAL_REJECTED = frozenset({"wrong_password", "principal_unknown", "account_revoked", "password_expired"})


class TicketUnavailable(RuntimeError):
    """Getting the ticket failed earlier in this run; the cause is the first failure."""


#: A cached ticket with less time than this left is replaced before it is handed to a host.
TICKET_MIN_LIFETIME_S = 300


def _lifetime(ccache: str) -> int:
    """Seconds the ticket-granting ticket in `ccache` is still valid (0 when gone or expired)."""
    import gssapi

    try:
        return int(gssapi.Credentials(usage="initiate", store={"ccache": ccache}).lifetime or 0)
    except gssapi.exceptions.GSSError:
        return 0


#: The process's tickets from passwords and keytabs (memory only; see `TicketCache`).
TICKETS: TicketCache


class TicketCache:
    """One ticket-granting ticket per principal and password (or keytab) for the whole run, in a
    MEMORY: cache, so 1,000 hosts cost one AS exchange (and one password hash), not 1,000.
    A failure is remembered too: 1,000 hosts with a wrong password make one failed logon, not
    1,000 (which would lock the account). Holds no password: entries are keyed by a digest."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._caches: dict[tuple[str, str, str], str] = {}
        self._failures: dict[tuple[str, str, str], BaseException] = {}

    def resolve(self, options: KerberosOptions) -> KerberosOptions:
        """The same options with the password or keytab replaced by a shared MEMORY: ticket cache."""
        if not (options.password or options.keytab):
            return options
        import dataclasses
        import hashlib

        digest = hashlib.sha256((options.password or "").encode()).hexdigest()
        key = (options.principal or "", digest, options.keytab or "")
        with self._lock:
            failed = self._failures.get(key)
            if failed is not None:  # a rejected password is not tried again (account lockout)
                raise TicketUnavailable(str(failed)) from failed
            name = self._caches.get(key)
            if name is None or _lifetime(name) < TICKET_MIN_LIFETIME_S:
                try:
                    name = memory_ccache(options)
                except Exception as exc:
                    problem = explain(exc)
                    if problem is not None and problem.cause in _CREDENTIAL_REJECTED:
                        self._failures[key] = exc  # a KDC that was down may be up for the next host
                    raise
                assert name is not None
                self._caches[key] = name
        return dataclasses.replace(options, password=None, keytab=None, ccache=name)

    def forget(self, options: KerberosOptions) -> None:
        """Drop a cached ticket or failure; the next host acquires a new one."""
        import hashlib

        digest = hashlib.sha256((options.password or "").encode()).hexdigest()
        key = (options.principal or "", digest, options.keytab or "")
        with self._lock:
            self._caches.pop(key, None)
            self._failures.pop(key, None)


TICKETS = TicketCache()


def use_ccache(name: str | None) -> None:
    """Point this thread's GSSAPI calls at ticket cache `name` (None: back to KRB5CCNAME)."""
    import gssapi.raw

    gssapi.raw.krb5_ccache_name(name.encode() if name else None)


# -- the library transports -----------------------------------------------------------------------
def pypsrp_auth_kwargs(auth: str, settings: Any, password: str | None, tickets: TicketCache | None = None) -> dict[str, Any]:
    """pypsrp WSMan keyword arguments for Kerberos/Negotiate-with-Kerberos and certificate hosts
    (empty for the rest). The credential list replaces username and password: a shared in-memory
    ticket, a keytab, or the ticket cache, then the password again for Negotiate's NTLM fall-back."""
    out: dict[str, Any] = {}
    if auth == "certificate":
        cert, key = getattr(settings, "cert_path", None), getattr(settings, "key_path", None)
        return {"certificate_pem": str(cert) if cert else None, "certificate_key_pem": str(key) if key else None}
    username = getattr(settings, "username", None)
    if auth not in ("kerberos", "negotiate"):
        return out
    if not wants_kerberos(auth, username, password, settings):
        # DOMAIN\\user or .\\user with a password: NTLM straight away. pyspnego's Negotiate would
        # first try a ticket for that name from the default realm's KDC (a DNS lookup, a timeout).
        return {"auth": "ntlm"}
    import spnego

    options = options_for(settings, password)
    if tickets is not None:
        try:
            options = tickets.resolve(options)
        except Exception:
            if auth == "kerberos" or not (username and password):
                raise
            return {"auth": "ntlm"}  # Negotiate without a ticket: NTLM, as Windows falls back
    creds = credentials(options)
    if auth == "negotiate" and username and password:
        creds.append(spnego.Password(username=username, password=password))
    out.update(username=creds, password=None, negotiate_service=options.service)
    if options.hostname_override:
        out["negotiate_hostname_override"] = options.hostname_override
    return out


def pywinrm_auth_kwargs(auth: str, settings: Any) -> dict[str, Any]:
    """pywinrm Protocol keyword arguments for Kerberos (SPN host and service) and certificate hosts."""
    if auth == "certificate":
        cert, key = getattr(settings, "cert_path", None), getattr(settings, "key_path", None)
        return {"cert_pem": str(cert) if cert else None, "cert_key_pem": str(key) if key else None}
    if auth != "kerberos":
        return {}
    options = options_for(settings, None)
    return {"kerberos_hostname_override": options.hostname_override, "service": options.service}


def pypsrp_mechanism(wsman: Any, auth: str) -> str:
    """What authenticated a pypsrp session: kerberos or ntlm under Negotiate, else the method."""
    contexts = getattr(getattr(getattr(wsman, "transport", None), "session", None), "auth", None)
    for ctx in (getattr(contexts, "contexts", None) or {}).values():
        protocol = getattr(ctx, "negotiated_protocol", None)
        if protocol:
            return "credssp" if auth == "credssp" else str(protocol)
    return {"negotiate": "ntlm"}.get(auth, auth)


# -- failures -------------------------------------------------------------------------------------
#: MIT krb5 error codes (com_err table krb5, base -1765328384), as GSSAPI minor statuses.
_KRB5_BASE = -1765328384
_CODES = {
    _KRB5_BASE + 6: "principal_unknown",  # KDC_ERR_C_PRINCIPAL_UNKNOWN
    _KRB5_BASE + 7: "spn_unknown",  # KDC_ERR_S_PRINCIPAL_UNKNOWN
    _KRB5_BASE + 18: "account_revoked",  # KDC_ERR_CLIENT_REVOKED (disabled or locked out)
    _KRB5_BASE + 23: "password_expired",  # KDC_ERR_KEY_EXP
    _KRB5_BASE + 24: "wrong_password",  # KDC_ERR_PREAUTH_FAILED
    _KRB5_BASE + 31: "wrong_password",  # KRB_AP_ERR_BAD_INTEGRITY (no pre-authentication)
    _KRB5_BASE + 32: "ticket_expired",  # KRB_AP_ERR_TKT_EXPIRED
    _KRB5_BASE + 37: "clock_skew",  # KRB_AP_ERR_SKEW
    -1765328228: "kdc_unreachable",  # KRB5_KDC_UNREACH
    -1765328230: "kdc_unreachable",  # KRB5_REALM_UNKNOWN (no KDC configured for the realm)
    -1765328189: "no_credentials",  # KRB5_FCC_NOFILE
    -1765328243: "no_credentials",  # KRB5_CC_NOTFOUND
}
#: The same causes by the words MIT and Heimdal print (pykerberos passes only text).
_PATTERNS = (
    ("kdc_unreachable", r"cannot contact any kdc|cannot find kdc|unable to reach any kdc"),
    ("principal_unknown", r"client .* not found in kerberos database|client not found"),
    ("spn_unknown", r"server .* not found in kerberos database|server not found in kerberos database"),
    ("wrong_password", r"preauthentication failed|password incorrect|decrypt integrity check failed"),
    ("password_expired", r"password has expired"),
    ("account_revoked", r"clients credentials have been revoked|client's credentials have been revoked"),
    ("ticket_expired", r"ticket expired|credentials? (have|has) expired|credential has expired"),
    ("clock_skew", r"clock skew too great"),
    (
        "no_credentials",
        r"no kerberos credentials available|no credentials cache found|no credentials were supplied"
        r"|matching credential not found|can't find client principal .* in cache collection",
    ),
)


@dataclass(frozen=True)
class KerberosProblem:
    """A named Kerberos failure: `cause` is a stable code, `message` the admin's sentence."""

    cause: str
    message: str

    @property
    def error_type(self) -> str:
        return f"kerberos_{self.cause}"


def _messages(address: str, options: KerberosOptions, realm: str | None) -> dict[str, str]:
    who = options.principal or "the ticket cache's principal"
    target = spn(address, options)
    by_ip = is_ip_address(spn_host(address, options))
    spn_hint = (
        "connecting by IP address: Kerberos needs the host's name - set negotiate_hostname_override to its FQDN"
        if by_ip
        else f"register it (setspn -S {target} <computer>) or set negotiate_hostname_override / negotiate_service"
    )
    where = f" for realm {realm}" if realm else ""
    return {
        "kdc_unreachable": f"Kerberos: cannot reach a KDC{where} - check krb5.conf [realms] / DNS SRV records and that port 88 is open",
        "principal_unknown": f"Kerberos: the user {who} does not exist in the domain - check the username (user@REALM)",
        "wrong_password": f"Kerberos: wrong password for {who} - not retried, so the account is not locked out",
        "password_expired": f"Kerberos: the password of {who} has expired - change it, then run again",
        "account_revoked": f"Kerberos: the account {who} is disabled or locked out",
        "ticket_expired": "Kerberos: the ticket has expired - run kinit again (or set password_env or a keytab)",
        "spn_unknown": f"Kerberos: server not found in Kerberos database: no SPN {target} - {spn_hint}",
        "clock_skew": "Kerberos: clock skew too great between this machine, the KDC and the host - fix time sync (NTP)",
        "no_credentials": "Kerberos: no credentials - run kinit, or set password_env (or a client keytab) for this host",
        "other": "Kerberos failed: {detail}",
    }


def _minor_code(exc: BaseException) -> int | None:
    base = getattr(exc, "base_error", None)  # pyspnego's SpnegoError carries the GSSError here
    for candidate in (exc, base):
        code = getattr(candidate, "min_code", None)
        if isinstance(code, int) and code:
            return code - 2**32 if code >= 2**31 else code
    return None


_MINOR = re.compile(r"minor \(\d+\): (.*?)(?:, context:|$)")


def _detail(exc: BaseException) -> str:
    """The mechanism's own words (GSSAPI's minor status) when there are some, else the whole text.
    The major status of a failed credential acquisition always reads "No credentials were
    supplied", whatever went wrong, so it must not decide the cause."""
    text = " ".join(str(exc).split()).lower()
    base = getattr(exc, "base_error", None)
    if base is not None:
        text += " " + " ".join(str(base).split()).lower()
    minor = _MINOR.search(text)
    return minor.group(1) if minor else text


def _cause(exc: BaseException) -> str | None:
    code = _minor_code(exc)
    if code in _CODES:
        return _CODES[code]
    detail = _detail(exc)
    for cause, pattern in _PATTERNS:
        if re.search(pattern, detail):
            return cause
    return "other" if code is not None else None


def _chain(exc: BaseException, limit: int = 12) -> list[BaseException]:
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < limit:
        cur = todo.pop(0)
        if any(cur is s for s in seen):
            continue
        seen.append(cur)
        nested = [cur.__cause__, cur.__context__, getattr(cur, "base_error", None), *cur.args]
        todo.extend(n for n in nested if isinstance(n, BaseException))
    return seen


def explain(exc: BaseException, address: str = "", options: KerberosOptions | None = None, realm: str | None = None) -> KerberosProblem | None:
    """The Kerberos cause of `exc` (anywhere in its chain), or None when it is not a Kerberos failure."""
    options = options or KerberosOptions()
    for item in _chain(exc):
        cause = _cause(item)
        if cause is not None:
            message = _messages(address, options, realm)[cause].replace("{detail}", _detail(item)[:200])
            return KerberosProblem(cause, message)
    return None


# -- preflight ------------------------------------------------------------------------------------
def krb5_conf_path() -> Path:
    return Path(os.environ.get("KRB5_CONFIG", "/etc/krb5.conf").split(":")[0])


def preflight(transports: set[str]) -> list[str]:
    """What this machine lacks for Kerberos hosts on `transports` (psrp, winrm); empty when ready."""
    missing: list[str] = []
    modules = {"gssapi": "gssapi", "krb5": "krb5"}
    if "winrm" in transports:
        modules["kerberos"] = "pykerberos"
    for module, package in modules.items():
        try:
            __import__(module)
        except ImportError:
            missing.append(f"the Python package {package}")
    conf = krb5_conf_path()
    if not conf.is_file():
        missing.append(f"a krb5.conf ({conf} does not exist; set KRB5_CONFIG or create it with your realm's KDCs)")
    return missing


def preflight_message(transports: set[str]) -> str | None:
    """One sentence naming what to install, or None when Kerberos is usable here."""
    missing = preflight(transports)
    if not missing:
        return None
    return "Kerberos hosts in the inventory, but this machine lacks " + "; ".join(missing) + f". Install: {INSTALL_HINT}"
