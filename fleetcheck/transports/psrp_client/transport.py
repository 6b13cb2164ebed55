"""`psrp_client: native`: fleetcheck's Transport contract on the native PSRP client.

One `WSManConnection` per host and attempt; per-run caches live on the transport object, in
memory only: the NT hash of each distinct password and one TLS context per verification setting.
Auth methods the native client does not speak (Kerberos, CredSSP, certificate) are handed to
the pypsrp transport.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Callable
from typing import Any, ClassVar

from psrpcore.types import ErrorRecord

from fleetcheck.errors import UserError
from fleetcheck.transports.base import ScriptOutput, Transport, quiet_token_loggers, secret_value
from fleetcheck.transports.psrp_client.connection import Credentials, NtHashCache, WSManConnection
from fleetcheck.transports.psrp_client.session import (
    MAX_ERROR_RECORDS,
    PayloadCache,
    PipelineResult,
    output_text,
    run_script,
)

quiet_token_loggers()

NATIVE_AUTHS = frozenset({"negotiate", "ntlm", "basic"})


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


class NativeClientTransport(Transport):
    """PSRP over WinRM with psrpcore's client state machines, h11 and pyspnego; no threads."""

    name: ClassVar[str] = "psrp"

    def __init__(self, fallback: Transport | Callable[[], Transport] | None = None) -> None:
        self._fallback = fallback
        self._hashes = NtHashCache()
        self._ssl: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self.payloads = PayloadCache()

    def _ssl_context(self, host: Any) -> ssl.SSLContext | None:
        if host.scheme != "https":
            return None
        key = (bool(host.cert_validation), str(host.ca_path) if host.ca_path else None)
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

    def credentials(self, host: Any) -> Credentials | None:
        """How `host` authenticates natively; None when pypsrp must do it."""
        if host.auth not in NATIVE_AUTHS:
            return None
        password = secret_value(host)
        if not host.username or password is None:
            raise UserError(f"{host.name}: no username or password given for the host")
        if host.auth == "basic":
            if host.scheme != "https":
                raise UserError(
                    f"{host.name}: auth basic sends the password readable on the wire over http; "
                    "use https (port 5986) or auth negotiate"
                )
            return Credentials("basic", host.username, password)
        return Credentials("ntlm", host.username, password, self._hashes.get(password))

    def _pypsrp(self) -> Transport:
        if self._fallback is None:
            from fleetcheck.transports.psrp import PsrpTransport

            self._fallback = PsrpTransport()
        elif not isinstance(self._fallback, Transport):
            self._fallback = self._fallback()
        return self._fallback

    async def run(self, host: Any, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        creds = self.credentials(host)
        if creds is None:
            return await self._pypsrp().run(host, script, args_json, timeout=timeout)
        conn = WSManConnection(host.address, host.effective_port, host.scheme, creds, self._ssl_context(host))
        try:
            result = await run_script(conn, script, {"ArgsJson": args_json}, timeout, self.payloads)
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        return script_output(result)
