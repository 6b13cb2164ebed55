"""`psrp_client: native` (the default): fleetcheck's Transport contract on the native PSRP client.

One `WSManConnection` per host and attempt; per-run caches live on the transport object, in
memory only: the NT hash of each distinct password, psrpcore's serialized pool-open and
CreatePipeline payloads, one TLS context per verification setting. Auth methods the native
client does not speak (CredSSP, certificate) are handed to the pypsrp transport. Kerberos,
and `negotiate` for a host that can use it (no password: a ticket cache; a `user@REALM` name;
Kerberos settings), go through `transports.kerberos`; other `negotiate` hosts get NTLM at once.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import ssl
from collections.abc import Callable

from psrpcore.types import ErrorRecord

from fleetcheck.transports.base import ScriptOutput, Transport, failure_context, quiet_token_loggers
from fleetcheck.transports.errors import WSMAN_RULES, cleartext_auth, map_exceptions, missing_credentials
from fleetcheck.transports.kerberos import KerberosAuth, options_for, wants_kerberos
from fleetcheck.transports.psrp_client.connection import Credentials, NtHashCache, WSManConnection
from fleetcheck.transports.psrp_client.payloads import PayloadCache
from fleetcheck.transports.psrp_client.session import (
    MAX_ERROR_RECORDS,
    PipelineResult,
    output_text,
    run_script,
)
from fleetcheck.transports.target import PsrpSettings, Target, settings_as

quiet_token_loggers()

NATIVE_AUTHS = frozenset({"negotiate", "ntlm", "basic", "kerberos"})


@functools.lru_cache(maxsize=1)
def _gssapi_installed() -> bool:
    """Whether pyspnego can do Kerberos here (python-gssapi); without it Negotiate is NTLM."""
    return importlib.util.find_spec("gssapi") is not None


def record_text(record: ErrorRecord) -> str:
    """An error record as PowerShell shows it first (details, else the exception), with its id."""
    text = str(record) or "error record"
    fqid = getattr(record, "FullyQualifiedErrorId", None)
    return f"{text} ({fqid})" if fqid else text


def script_output(result: PipelineResult) -> ScriptOutput:
    errors = [record_text(r) for r in result.errors]
    if result.reason is not None and len(errors) < MAX_ERROR_RECORDS:
        errors.append(record_text(result.reason))
    return ScriptOutput(
        stdout="\n".join(output_text(o) for o in result.output),
        errors=errors,
        failed=result.failed,
        exit_code=result.exit_code,
    )


class NativePsrpTransport(Transport):
    """PSRP over WinRM with psrpcore's client state machines, httptools and pyspnego; no threads."""

    name = "psrp"

    def __init__(self, fallback: Transport | Callable[[], Transport] | None = None) -> None:
        self._fallback = fallback
        self._hashes = NtHashCache()
        self._ssl: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self.payloads = PayloadCache()

    def _ssl_context(self, psrp: PsrpSettings) -> ssl.SSLContext | None:
        if psrp.scheme != "https":
            return None
        key = (psrp.cert_validation, str(psrp.ca_path) if psrp.ca_path else None)
        ctx = self._ssl.get(key)
        if ctx is None:
            if not key[0]:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                bundle = key[1] or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                ctx = ssl.create_default_context(cafile=bundle) if bundle else ssl.create_default_context()
            self._ssl[key] = ctx
        return ctx

    def credentials(self, target: Target, psrp: PsrpSettings) -> Credentials | None:
        """How the host authenticates natively; None when pypsrp must do it."""
        if psrp.auth not in NATIVE_AUTHS:
            return None
        password = psrp.secret()
        if wants_kerberos(psrp.auth, psrp.username, password, psrp) and (psrp.auth == "kerberos" or _gssapi_installed()):
            fallback = (psrp.username, password) if psrp.auth == "negotiate" and psrp.username and password else None
            provider = KerberosAuth(options_for(psrp, password), protocol=psrp.auth, ntlm_fallback=fallback)
            return Credentials("kerberos", psrp.username or "", "", kerberos=provider)
        if not psrp.username or password is None:
            raise missing_credentials()
        if psrp.auth == "basic":
            if psrp.scheme != "https":
                raise cleartext_auth(psrp.auth)
            return Credentials("basic", psrp.username, password)
        return Credentials("ntlm", psrp.username, password, self._hashes.get(password))

    def _pypsrp(self) -> Transport:
        if self._fallback is None:
            from fleetcheck.transports.psrp import PsrpTransport

            self._fallback = PsrpTransport()
        elif not isinstance(self._fallback, Transport):
            self._fallback = self._fallback()
        return self._fallback

    async def run(self, target: Target, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        psrp = settings_as(target, PsrpSettings)
        creds = self.credentials(target, psrp)
        if creds is None:  # Kerberos, CredSSP, certificate: pypsrp speaks them
            return await self._pypsrp().run(target, script, args_json, timeout=timeout)
        ctx = failure_context(target, timeout)
        with map_exceptions(ctx, WSMAN_RULES):
            conn = WSManConnection(
                target.address, psrp.effective_port, psrp.scheme, creds, self._ssl_context(psrp), ctx
            )
            result = await run_script(conn, script, {"ArgsJson": args_json}, timeout, self.payloads)
        return dataclasses.replace(script_output(result), auth_mechanism=conn.mechanism)
