"""One HTTP/1.1 connection per host (an asyncio protocol, httptools framing), bound to its authentication.

NTLM authenticates the TCP connection, not the request, and message encryption uses the keys of
that handshake, so a `WSManConnection` owns one socket and one pyspnego
context; when the socket is lost, a new one is opened and authenticated afresh. Every wait is
bounded by the attempt's `Deadline`, and no response body larger than `MAX_RESPONSE_BYTES` is
held.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import ssl
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import cast

import spnego
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from spnego.channel_bindings import GssChannelBindings

from fleetcheck.errors import AuthRejected, ProtocolError, TimedOut, Unreachable
from fleetcheck.transports.errors import FailureContext, auth_rejected, http_status_error, redact
from fleetcheck.transports.kerberos import TICKETS, KerberosAuth, explain
from fleetcheck.transports.psrp_client import envelope as wsman
from fleetcheck.transports.psrp_client import http
from fleetcheck.transports.psrp_client.http import Response
from fleetcheck.transports.psrp_client.md4 import nt_hash

#: Largest HTTP response accepted: a 512000-byte envelope, encrypted, with room to spare.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
CONNECT_TIMEOUT = 30.0


class Deadline:
    """One point in time that bounds a whole attempt: connect, TLS, auth and every request."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds left; raises `TimedOut` once none are."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimedOut(f"no answer within {self.seconds:g} s")
        return left

    def extend(self, seconds: float) -> None:
        """Grant a short grace (closing the shell after a cancel)."""
        self.end = max(self.end, time.monotonic() + seconds)


@dataclass
class Credentials:
    """How one host authenticates; `nt_hash` replaces the password for NTLM."""

    method: str  # "ntlm" (Negotiate offering NTLM), "basic", or "kerberos" (Kerberos, or Negotiate that may use it)
    username: str
    password: str = field(repr=False)
    nt_hash: str | None = field(default=None, repr=False)
    kerberos: KerberosAuth | None = None


class NtHashCache:
    """NT hash (MD4 of the UTF-16LE password) once per distinct password and run.

    pyspnego derives both the NT and the LM hash from a password on every handshake, the LM one
    with pure-Python DES (about 1.5 ms); NTLMv2 needs only the NT hash, which pyspnego accepts
    through its public `NTLMHash` credential.
    """

    def __init__(self) -> None:
        self._hashes: dict[str, str] = {}

    def get(self, password: str) -> str:
        got = self._hashes.get(password)
        if got is None:
            got = nt_hash(password)
            self._hashes[password] = got
        return got


def channel_bindings(cert_der: bytes) -> GssChannelBindings:
    """RFC 5929 tls-server-end-point: the certificate's own hash, SHA-256 for MD5/SHA-1 ones."""
    algorithm: hashes.HashAlgorithm = hashes.SHA256()
    with contextlib.suppress(Exception):
        own = x509.load_der_x509_certificate(cert_der).signature_hash_algorithm
        if own is not None and not isinstance(own, hashes.MD5 | hashes.SHA1):
            algorithm = own
    digest = hashes.Hash(algorithm)
    digest.update(cert_der)
    return GssChannelBindings(application_data=b"tls-server-end-point:" + digest.finalize())


class _ResponseProtocol(asyncio.Protocol):
    """The socket's side of an `HttpConnection`: bytes go straight from the loop to the parser.

    asyncio's streams would copy every chunk into a StreamReader's buffer, wake the waiting task
    for each, and copy it out again; here `data_received` feeds httptools at once and wakes the
    request only when its answer is whole (or broken), which is one task wake-up per request.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader: http.ResponseReader | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.extra = False  # bytes arrived with no request waiting: never reuse the connection
        self._paused = False
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without deriving from it
        self.transport = cast(asyncio.Transport, transport)

    def expect(self, reader: http.ResponseReader, waiter: asyncio.Future[Response]) -> None:
        """The next bytes answer the request just written: feed them to `reader`, wake `waiter`."""
        self.reader, self.waiter = reader, waiter
        if self.closed:
            self._fail(ConnectionResetError("connection closed by the host before it answered"))

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None:
            self.extra = True
            return
        try:
            response = reader.feed(data)
        except Exception as exc:  # FramingError, TooLarge: the request's own error
            self._fail(exc)
            return
        if response is not None:
            self._done(response)

    def eof_received(self) -> bool:
        self.closed = True
        if self.reader is not None:
            try:
                self._done(self.reader.eof())
            except Exception as exc:
                self._fail(exc)
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.reader is not None:
            self._fail(ConnectionResetError(f"connection lost: {exc}" if exc else "connection closed by the host"))
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drain(self) -> None:
        """Wait while the kernel's send buffer is full (a large Command body on a slow link)."""
        while self._paused and not self.closed:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def _done(self, response: Response) -> None:
        waiter, self.reader, self.waiter = self.waiter, None, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _fail(self, exc: BaseException) -> None:
        waiter, self.reader, self.waiter = self.waiter, None, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; `http` does the framing, `_ResponseProtocol` the I/O."""

    def __init__(self, address: str, port: int, ssl_ctx: ssl.SSLContext | None) -> None:
        self.address = address
        self.port = port
        self.ssl_ctx = ssl_ctx
        self.host_header = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        self.protocol: _ResponseProtocol | None = None
        self._reusable = False  # the last answer left the connection fit for the next request

    async def connect(self, deadline: Deadline) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(min(CONNECT_TIMEOUT, deadline.left())):
                _, self.protocol = await loop.create_connection(
                    _ResponseProtocol,
                    self.address,
                    self.port,
                    ssl=self.ssl_ctx,
                    server_hostname=self.address if self.ssl_ctx is not None else None,
                )
        except TimeoutError:
            deadline.left()
            raise Unreachable(
                f"no answer to the connection attempt on {self.host_header} - host down or port filtered",
                error_type="connect_timeout",
            ) from None
        except ConnectionRefusedError:
            raise Unreachable(
                f"connection refused on {self.host_header} - is WinRM listening?", error_type="refused"
            ) from None
        # TLS and other socket errors reach the transport's classifier (one wording for all clients)
        self._reusable = True

    @property
    def usable(self) -> bool:
        proto = self.protocol
        return (
            proto is not None
            and proto.transport is not None
            and not proto.transport.is_closing()
            and not proto.closed
            and not proto.extra
            and self._reusable
        )

    def peer_cert(self) -> bytes | None:
        transport = self.protocol.transport if self.protocol is not None else None
        sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
        return sslobj.getpeercert(True) if sslobj is not None else None

    async def request(self, body: bytes, headers: list[tuple[str, str]], deadline: Deadline) -> Response:
        """POST /wsman and read the whole answer (at most `MAX_RESPONSE_BYTES`)."""
        proto = self.protocol
        assert proto is not None and proto.transport is not None
        self._reusable = False  # until this answer has been read whole
        reader = http.ResponseReader(MAX_HEADER_BYTES, MAX_RESPONSE_BYTES)
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        try:
            # One write, so one send(2) per request: on loopback and on a busy scanner each
            # syscall costs more than copying an envelope behind its headers.
            proto.expect(reader, waiter)
            proto.transport.write(http.request_bytes(self.host_header, body, [*_FIXED_HEADERS, *headers]))
            del body  # not held while the answer is awaited
            async with asyncio.timeout(deadline.left()):
                await proto.drain()
                response = await waiter
        except TimeoutError:
            self.close()
            deadline.left()
            raise TimedOut(f"no answer within {deadline.seconds:g} s") from None
        except http.TooLarge as exc:
            self.close()
            raise ProtocolError(f"output too large: {exc}", error_type="output_too_large") from None
        except http.FramingError as exc:
            self.close()
            raise ProtocolError(f"broken HTTP response: {exc}", error_type="http") from None
        except (ConnectionError, OSError) as exc:
            self.close()
            raise Unreachable(
                f"connection reset by {self.host_header}", error_type="reset", transient=True
            ) from exc
        except BaseException:
            self.close()
            raise
        self._reusable = reader.keep_alive and not reader.extra and not proto.closed
        return response

    def close(self) -> None:
        if self.protocol is not None:
            proto, self.protocol = self.protocol, None
            proto.reader = proto.waiter = None
            if proto.transport is not None:
                with contextlib.suppress(Exception):
                    proto.transport.abort()
        self._reusable = False


#: Sent with every request. Nothing here decompresses: a compressed body (which WinRM never
#: sends) does not parse as SOAP and ends the host as a protocol error, never as a bomb.
_FIXED_HEADERS = [("User-Agent", "fleetcheck"), ("Accept-Encoding", "identity")]


_TOKEN_RE = re.compile(r"(Negotiate|Kerberos|NTLM)\s+([A-Za-z0-9+/=]+)", re.I)


def _offered(header: str) -> str | None:
    low = header.lower()
    for name in ("Negotiate", "NTLM"):
        if name.lower() in low:
            return name
    return None


class WSManConnection:
    """WSMan requests to one host over one authenticated (and, over HTTP, encrypted) connection."""

    def __init__(
        self,
        address: str,
        port: int,
        scheme: str,
        credentials: Credentials,
        ssl_ctx: ssl.SSLContext | None,
        context: FailureContext | None = None,
    ) -> None:
        self.address = address
        self.context = context or FailureContext(address=address, port=port, auth=credentials.method)
        self.port = port
        self.credentials = credentials
        self.ssl_ctx = ssl_ctx if scheme == "https" else None
        self.encrypt = scheme != "https" and credentials.method != "basic"
        host = f"[{address}]" if ":" in address else address
        self.endpoint = f"{scheme}://{host}:{port}/wsman"
        self.http: HttpConnection | None = None
        self.ctx: spnego.ContextProxy | None = None
        self.protocol = wsman.ENC_PROTOCOL  # the encryption protocol of the scheme that authenticated
        self.mechanism: str | None = "basic" if credentials.method == "basic" else None

    def _auth_error(self, what: str = "credentials rejected") -> AuthRejected:
        return auth_rejected(self.context.auth, what)

    async def _connection(self, deadline: Deadline) -> HttpConnection:
        if self.http is not None and self.http.usable:
            return self.http
        self.close()
        http = HttpConnection(self.address, self.port, self.ssl_ctx)
        try:
            await http.connect(deadline)
            if self.credentials.method != "basic":
                self.ctx = await self._negotiate(http, deadline)
        except BaseException:
            http.close()
            raise
        self.http = http
        return http

    async def _kerberos_context(self, kerberos: KerberosAuth, cbt: GssChannelBindings | None) -> spnego.ContextProxy | None:
        """Kerberos (or Negotiate that may use it) through the shared provider; None when Negotiate has
        no ticket to offer and falls back to NTLM, as Windows does. The ticket (an AS exchange, once
        per run) comes from a thread, so a slow KDC never stalls the other hosts."""
        try:
            options = await asyncio.to_thread(TICKETS.resolve, kerberos.options)
        except Exception as exc:
            if kerberos.ntlm_fallback is None:
                raise self._kerberos_error(exc) from exc
            return None
        try:
            ctx: spnego.ContextProxy = KerberosAuth(options, kerberos.protocol, kerberos.ntlm_fallback).context(
                self.address, channel_bindings=cbt
            )
        except Exception as exc:
            raise self._kerberos_error(exc) from exc
        return ctx

    def _kerberos_error(self, exc: BaseException) -> AuthRejected:
        kerberos = self.credentials.kerberos
        problem = explain(exc, self.address, kerberos.options if kerberos else None)
        if problem is None:
            return self._auth_error(f"Kerberos authentication failed ({type(exc).__name__})")
        return AuthRejected(redact(problem.message, self.context.secrets), error_type=problem.error_type)

    async def _negotiate(self, http: HttpConnection, deadline: Deadline) -> spnego.ContextProxy:
        """The 401 dance with empty bodies: NTLM under the Negotiate header as Windows accepts it, or
        Kerberos (under Negotiate, or under Kerberos where the listener offers only that)."""
        creds = self.credentials
        cbt = None
        der = http.peer_cert()
        if der is not None:
            cbt = channel_bindings(der)
        if creds.kerberos is not None:
            kerberos_ctx = await self._kerberos_context(creds.kerberos, cbt)
            if kerberos_ctx is not None:
                return await self._handshake(http, deadline, kerberos_ctx, kerberos=True)
            assert creds.kerberos.ntlm_fallback is not None
            user, password = creds.kerberos.ntlm_fallback
            creds = Credentials("ntlm", user, password)
        credential: spnego.NTLMHash | spnego.Password
        if creds.nt_hash is not None:
            credential = spnego.NTLMHash(creds.username, nt_hash=creds.nt_hash)
        else:
            credential = spnego.Password(creds.username, creds.password)
        options = spnego.NegotiateOptions.wrapping_winrm if self.encrypt else spnego.NegotiateOptions.none
        ctx = spnego.client(
            credential,
            hostname=self.address,
            service="HTTP",
            channel_bindings=cbt,
            protocol="ntlm",
            options=options,
        )
        return await self._handshake(http, deadline, ctx, kerberos=False)

    async def _handshake(
        self, http: HttpConnection, deadline: Deadline, ctx: spnego.ContextProxy, *, kerberos: bool
    ) -> spnego.ContextProxy:
        """The 401 dance. NTLM starts with its first token under `Negotiate` (every WinRM
        listener that does NTLM offers it there; `NTLM` alone is tried when that is all the
        host offers), so it costs two round trips; Kerberos first asks which of `Negotiate` and
        `Kerberos` the listener offers."""
        provider: str | None = "Negotiate"
        if kerberos:
            first = await http.request(b"", [], deadline)
            offered = first.headers.get("www-authenticate", "") if first.status == 401 else ""
            provider = KerberosAuth.scheme(offered)
            if provider is None:
                raise (
                    self._status_error(first)
                    if first.status != 401
                    else self._auth_error("no Negotiate or Kerberos offered")
                )
        try:
            # the first Kerberos token asks the KDC for a service ticket: in a thread
            token = await asyncio.to_thread(ctx.step) if kerberos else ctx.step()
            first_leg = True
            while token is not None:
                header = f"{provider} {base64.b64encode(token).decode()}"
                resp = await http.request(b"", [("Authorization", header)], deadline)
                offered = resp.headers.get("www-authenticate", "")
                found = _TOKEN_RE.search(offered)
                if resp.status not in (200, 401):
                    raise self._status_error(resp)
                if resp.status == 401 and found is None:
                    if first_leg and not kerberos and _offered(offered) == "NTLM" and provider != "NTLM":
                        provider = "NTLM"  # the same first token, under the only scheme offered
                        first_leg = False
                        continue
                    missing = first_leg and not kerberos and not _offered(offered)
                    raise self._auth_error("no NTLM offered by the host" if missing else "credentials rejected")
                first_leg = False
                token = ctx.step(base64.b64decode(found.group(2))) if found and not ctx.complete else None
        except spnego.exceptions.SpnegoError as exc:
            if kerberos:
                raise self._kerberos_error(exc) from exc
            raise self._auth_error(f"NTLM authentication failed ({type(exc).__name__})") from exc
        if not ctx.complete:
            raise self._auth_error()
        self.protocol = wsman.KERBEROS_PROTOCOL if provider == "Kerberos" else wsman.ENC_PROTOCOL
        self.mechanism = KerberosAuth.mechanism(ctx) if kerberos else "ntlm"
        return ctx

    def _status_error(self, resp: Response) -> Exception:
        """The error an HTTP answer other than 200 stands for (a SOAP fault, or the status)."""
        if resp.status == 401:
            return self._auth_error()
        fault = wsman.parse_fault(resp.body)
        if fault is not None:
            return wsman.fault_error(fault, self.context)
        return http_status_error(resp.status, self.context)

    async def post(self, env: wsman.Envelope, deadline: Deadline) -> ET.Element:
        """Send one envelope; the reply's root, or the `HostError` its fault or status means."""
        http = await self._connection(deadline)
        headers: list[tuple[str, str]] = []
        if self.credentials.method == "basic":
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(raw).decode()))
        if self.encrypt:
            assert self.ctx is not None
            headers.append(("Content-Type", wsman.enc_content_type(self.protocol)))
        else:
            headers.append(("Content-Type", "application/soap+xml;charset=UTF-8"))
        resp = await http.request(self._body(env), headers, deadline)
        data = resp.body
        ctype = resp.headers.get("content-type", "")
        if ctype.lower().startswith("multipart/encrypted") and self.ctx is not None:
            data = wsman.unwrap(data, ctype, self.ctx.unwrap_winrm)
        if resp.status != 200:
            if resp.status == 401:
                self.close()
            raise self._status_error(Response(resp.status, resp.headers, data))
        return wsman.parse_reply(data, env.message_id)

    def _body(self, env: wsman.Envelope) -> bytes:
        """The request body: the envelope's bytes (taken from it), sealed when the scheme says so."""
        if self.encrypt:
            assert self.ctx is not None
            return wsman.wrap(env.take(), self.ctx.wrap_winrm, self.protocol)
        return env.take()

    def close(self) -> None:
        if self.http is not None:
            self.http.close()
        self.http = None
        self.ctx = None
