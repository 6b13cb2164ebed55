"""PSRP over WinRM on asyncio streams: no threads, no requests, CLIXML serialized once per run.

The sans-IO parts (envelopes, replies, framing, encryption) live in `wsman_client`; this module
is the thin I/O shell: one keep-alive HTTP/1.1 connection per host, the NTLM/Negotiate 401
dance with pyspnego (or Basic over HTTPS), and the PSRP exchange of one runspace pool and one
pipeline. Failures are pypsrp's exception types (or the OS's / ssl's), so they classify like
the pypsrp transport's. Auth methods this client does not speak (Kerberos, CredSSP,
certificate) are handed to the pypsrp transport.

Per-run caches (on the transport object, memory only): the NT hash of each distinct password
(so pyspnego skips its pure-Python DES and MD4 per host) and the CLIXML of the pool-open and
CreatePipeline messages (identical for every host but for the ids framed around them).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pypsrp.exceptions import InvalidRunspacePoolStateError, WinRMTransportError

from fleetcheck.errors import WSMAN_TIMED_OUT
from fleetcheck.transports import wsman_client as wc
from fleetcheck.transports.base import (
    MAX_OUTPUT_BYTES,
    Budget,
    ScriptOutput,
    Transport,
    failure_context,
    quiet_token_loggers,
)
from fleetcheck.transports.errors import (
    WSMAN_RULES,
    DeadlineExceeded,
    OutputTooLarge,
    RunCancelled,
    auth_rejected,
    cleartext_auth,
    map_exceptions,
    missing_credentials,
)
from fleetcheck.transports.target import PsrpSettings, Target, endpoint_address, settings_as

log = logging.getLogger(__name__)
quiet_token_loggers()

DEFAULT_OPERATION_TIMEOUT = 10
CONNECT_TIMEOUT = 30.0
CANCEL_GRACE = 10.0
#: Largest HTTP response accepted (a 512000-byte envelope, encrypted, plus headers).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
NATIVE_AUTHS = frozenset({"negotiate", "ntlm", "basic"})


class ConnectTimeoutError(TimeoutError):
    """No TCP/TLS connection within the time allowed (named like urllib3's, classified alike)."""


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class HttpConnection:
    """One HTTP/1.1 keep-alive connection; Content-Length or chunked bodies, bounded."""

    def __init__(self, address: str, port: int, ssl_ctx: ssl.SSLContext | None) -> None:
        self.address = address
        self.port = port
        self.ssl_ctx = ssl_ctx
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reusable = False
        host = f"[{address}]" if ":" in address else address
        self.host_header = f"{host}:{port}"

    async def connect(self, timeout: float) -> None:
        server_hostname = self.address if self.ssl_ctx is not None else None
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.address, self.port, ssl=self.ssl_ctx, server_hostname=server_hostname, limit=MAX_HEADER_BYTES
                ),
                max(0.05, timeout),
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(f"connection to {self.host_header} timed out") from exc
        self.reusable = True

    def peer_cert(self) -> bytes | None:
        if self.writer is None:
            return None
        sslobj = self.writer.get_extra_info("ssl_object")
        return sslobj.getpeercert(True) if sslobj is not None else None

    async def request(self, body: bytes, headers: dict[str, str], timeout: float) -> HttpResponse:
        self.send(body, headers)
        return await self.response(timeout)

    def send(self, body: bytes, headers: dict[str, str]) -> None:
        """Queue one POST; the caller may drop `body` at once (the transport keeps what is unsent)."""
        assert self.writer is not None
        lines = [f"POST /wsman HTTP/1.1\r\nHost: {self.host_header}\r\nContent-Length: {len(body)}\r\n"]
        lines.append("User-Agent: fleetcheck\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\n")
        lines.extend(f"{k}: {v}\r\n" for k, v in headers.items())
        lines.append("\r\n")
        self.reusable = False  # until a full response was read
        self.writer.write("".join(lines).encode("latin-1"))
        self.writer.write(body)

    async def response(self, timeout: float) -> HttpResponse:
        try:
            async with asyncio.timeout(max(0.05, timeout)):
                return await self._read_response()
        except TimeoutError as exc:
            raise DeadlineExceeded("no HTTP answer in time") from exc

    async def _read_response(self) -> HttpResponse:
        assert self.reader is not None
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError("connection closed by the host before it answered") from exc
        except asyncio.LimitOverrunError as exc:
            raise WinRMTransportError("http", 502, "response headers too large") from exc
        status_line, _, rest = head.decode("latin-1").partition("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise WinRMTransportError("http", 502, f"not an HTTP response: {status_line[:60]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in rest.split("\r\n"):
            if ":" in line:
                k, _, v = line.partition(":")
                k = k.strip().lower()
                headers[k] = f"{headers[k]}, {v.strip()}" if k in headers else v.strip()
        body = await self._read_body(headers)
        keep = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
        self.reusable = keep
        return HttpResponse(status, headers, body)

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        assert self.reader is not None
        try:
            if "chunked" in headers.get("transfer-encoding", "").lower():
                return await self._read_chunked()
            length = headers.get("content-length")
            if length is None:
                data = await self.reader.read(MAX_RESPONSE_BYTES + 1)
                self.reusable = False
            else:
                n = int(length)
                if n > MAX_RESPONSE_BYTES:
                    raise OutputTooLarge(f"HTTP response of {n} bytes")
                data = await self.reader.readexactly(n)
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError("connection closed by the host in the middle of an answer") from exc
        if len(data) > MAX_RESPONSE_BYTES:
            raise OutputTooLarge("HTTP response too large")
        return data

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        out = bytearray()
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(out)
            out += await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            if len(out) > MAX_RESPONSE_BYTES:
                raise OutputTooLarge("HTTP response too large")

    def close(self) -> None:
        self.reusable = False
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.transport.abort()
        self.reader = self.writer = None


@dataclass
class _Auth:
    """How one host authenticates (derived once per run)."""

    method: str  # negotiate | ntlm | basic
    username: str
    password: str  # plain for basic; "LM:NT" hex for NTLM
    encrypt: bool


class WSManSession:
    """The WSMan conversation with one host: connection, authentication, encryption."""

    def __init__(self, target: Target, auth: _Auth, ssl_ctx: ssl.SSLContext | None, budget: Budget) -> None:
        self.target = target
        self.settings = settings_as(target, PsrpSettings)
        self.auth = auth
        self.budget = budget
        self.ssl_ctx = ssl_ctx
        self.conn: HttpConnection | None = None
        self.ctx: Any = None  # spnego context bound to the current connection
        self.endpoint = f"{self.settings.scheme}://{endpoint_address(target.address)}:{self.settings.effective_port}/wsman"
        self.session_id = f"uuid:{str(uuid.uuid4()).upper()}"
        self.max_envelope = wc.DEFAULT_MAX_ENVELOPE
        self.in_flight = False

    def _left(self) -> float:
        return self.budget.check()

    async def _connect(self) -> HttpConnection:
        if self.conn is not None and self.conn.reusable and not self.conn.reader.at_eof():  # type: ignore[union-attr]
            return self.conn
        self.close()
        conn = HttpConnection(self.target.address, self.settings.effective_port, self.ssl_ctx)
        try:
            await conn.connect(min(CONNECT_TIMEOUT, self._left()))
            if self.auth.method != "basic":
                await self._negotiate(conn)
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        return conn

    async def _negotiate(self, conn: HttpConnection) -> None:
        """The 401 dance on this connection, body-less as pypsrp does it before encrypting."""
        import spnego
        from spnego.channel_bindings import GssChannelBindings

        first = await conn.request(b"", {}, self._left())
        if first.status != 401:
            _raise_status(first, self.auth)
        offered = first.headers.get("www-authenticate", "")
        provider = _pick_provider(offered)
        if provider is None:
            raise auth_rejected(self.auth.method)
        # Raw NTLMSSP under the Negotiate header (as pypsrp's auth="ntlm"): Windows accepts it and it
        # skips the SPNEGO wrapping; without gssapi, pyspnego's negotiate would pick NTLM anyway.
        protocol = "ntlm"
        cbt = None
        der = conn.peer_cert()
        if der is not None:
            cbt = GssChannelBindings(application_data=b"tls-server-end-point:" + tls_server_end_point(der))
        options = spnego.NegotiateOptions.wrapping_winrm if self.auth.encrypt else spnego.NegotiateOptions.none
        ctx = spnego.client(
            self.auth.username,
            self.auth.password,
            hostname=self.target.address,
            service="HTTP",
            channel_bindings=cbt,
            protocol=protocol,
            options=options,
        )
        token = ctx.step()
        resp = first
        while token is not None:
            header = f"{provider} {base64.b64encode(token).decode()}"
            resp = await conn.request(b"", {"Authorization": header}, self._left())
            in_token = _auth_token(resp.headers.get("www-authenticate", ""))
            if resp.status == 401 and in_token is None:
                raise auth_rejected(self.auth.method)
            if resp.status not in (200, 401):
                _raise_status(resp, self.auth)
            token = ctx.step(in_token) if in_token is not None and not ctx.complete else None
            if not conn.reusable:
                raise ConnectionResetError("the host closed the connection during authentication")
        if not ctx.complete:
            raise auth_rejected(self.auth.method)
        self.ctx = ctx

    async def post(self, env: wc.Envelope, *, abortable: bool = True) -> Any:
        """Send one envelope, return the parsed reply root (or raise the fault/HTTP error)."""
        left = self.budget.begin_request(abortable=abortable)
        try:
            conn = await self._connect()
            headers: dict[str, str] = {}
            if self.auth.method == "basic":
                raw = f"{self.auth.username}:{self.auth.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            if self.auth.encrypt:
                headers["Content-Type"] = wc.ENC_CONTENT_TYPE
            else:
                headers["Content-Type"] = "application/soap+xml;charset=UTF-8"
            message_id = env.message_id
            self.in_flight = True
            conn.send(wc.wrap(env.data, self.ctx.wrap_winrm) if self.auth.encrypt else env.data, headers)
            del env  # a big request is not kept alive while we wait for its answer
            resp = await conn.response(min(self._left(), left))
            self.in_flight = False
            ctype = resp.headers.get("content-type", "")
            data = resp.body
            if ctype.startswith("multipart/encrypted") and self.ctx is not None:
                data = wc.unwrap(data, ctype, self.ctx.unwrap_winrm)
            if resp.status != 200:
                if resp.status == 401:
                    raise auth_rejected(self.auth.method)
                text = data.decode("utf-8", "replace")
                try:
                    fault = wc.parse_fault(data)
                except Exception:
                    raise WinRMTransportError("http", resp.status, text) from None
                raise fault
            return wc.parse_reply(data, message_id)
        except BaseException:
            if self.conn is not None and self.in_flight:
                self.conn.close()  # a half-read answer: the connection is unusable
            self.in_flight = False
            raise
        finally:
            self.budget.end_request()

    def envelope(self, action: str, *, shell_id: str | None = None, options: Any = (), body: str = "") -> wc.Envelope:
        left = self.budget.remaining()
        op = max(1, min(DEFAULT_OPERATION_TIMEOUT, int(left) - 1))
        return wc.build_envelope(
            action,
            to=self.endpoint,
            session_id=self.session_id,
            max_envelope=self.max_envelope,
            timeout_s=op,
            shell_id=shell_id,
            options=options,
            body=body,
        )

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.ctx = None


def _pick_provider(header: str) -> str | None:
    low = header.lower()
    for name in ("Negotiate", "Kerberos", "NTLM"):
        if name.lower() in low:
            return name
    return None


def _auth_token(header: str) -> bytes | None:
    import re

    m = re.search(r"(Kerberos|Negotiate|NTLM)\s+([^,\s]+)", header, re.I)
    return base64.b64decode(m.group(2)) if m else None


def _raise_status(resp: HttpResponse, auth: _Auth) -> None:
    if resp.status == 401:
        raise auth_rejected(auth.method)
    text = resp.body.decode("utf-8", "replace")
    try:
        fault = wc.parse_fault(resp.body)
    except Exception:
        raise WinRMTransportError("http", resp.status, text) from None
    raise fault


# --- per-run caches --------------------------------------------------------------------------


class _MessageCache:
    """CLIXML bodies serialized once per run: pool open, and CreatePipeline per script+args."""

    def __init__(self) -> None:
        self._open: list[tuple[int, bytes]] | None = None
        self._pipelines: dict[tuple[str, str, bool], bytes] = {}

    def open_messages(self) -> list[tuple[int, bytes]]:
        if self._open is None:
            import psrpcore

            pool = psrpcore.ClientRunspacePool()
            pool.open()
            self._open = [(m.message_type.value, bytes(m.data[40:])) for m in pool._send_buffer]
        return self._open

    def create_pipeline(self, script: str, args_json: str, modern: bool) -> bytes:
        key = (script, args_json, modern)
        body = self._pipelines.get(key)
        if body is None:
            import psrpcore
            from psrpcore.types import PSVersion, SessionCapability

            pool = psrpcore.ClientRunspacePool()
            pool.their_capability = SessionCapability(
                PSVersion=PSVersion("2.0"),
                protocolversion=PSVersion("2.3" if modern else "2.1"),
                SerializationVersion=PSVersion("1.1.0.1"),
            )
            pool.state = psrpcore.types.RunspacePoolState.Opened
            ps = psrpcore.ClientPowerShell(pool)
            ps.add_script(script).add_parameter("ArgsJson", args_json)
            ps.start()
            body = bytes(pool._send_buffer[-1].data[40:])
            if len(self._pipelines) >= 8:
                self._pipelines.pop(next(iter(self._pipelines)))
            self._pipelines[key] = body
        return body


class NativePsrpTransport(Transport):
    """PSRP with our own asyncio WSMan client; same contract and failure types as `PsrpTransport`."""

    name = "psrp:native"

    def __init__(self, fallback: Transport | Callable[[], Transport] | None = None) -> None:
        self._fallback = fallback
        self._hashes: dict[str, str] = {}
        self._ssl: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self.messages = _MessageCache()

    def _ntlm_secret(self, password: str) -> str:
        """`LMHASH:NTHASH` hex, computed once per distinct password (pyspnego accepts this form)."""
        got = self._hashes.get(password)
        if got is None:
            from spnego._ntlm_raw.crypto import is_ntlm_hash, lmowfv1, ntowfv1

            got = password if is_ntlm_hash(password) else f"{lmowfv1(password).hex()}:{ntowfv1(password).hex()}"
            self._hashes[password] = got
        return got

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
                ctx = ssl.create_default_context(cafile=key[1]) if key[1] else _default_verify_context()
            self._ssl[key] = ctx
        return ctx

    def _auth(self, psrp: PsrpSettings) -> _Auth | None:
        method = psrp.auth if psrp.auth in NATIVE_AUTHS else None
        if method is None or (method == "negotiate" and _kerberos_available()):
            return None
        password = psrp.secret()
        username = psrp.username
        if not username or password is None:
            raise missing_credentials()
        https = psrp.scheme == "https"
        if method == "basic":
            if not https:
                raise cleartext_auth(method)
            return _Auth("basic", username, password, encrypt=False)
        return _Auth(method, username, self._ntlm_secret(password), encrypt=not https)

    def _fallback_transport(self) -> Transport:
        if self._fallback is None:
            from fleetcheck.transports.psrp import PsrpTransport

            self._fallback = PsrpTransport()
        elif not isinstance(self._fallback, Transport):
            self._fallback = self._fallback()
        return self._fallback

    async def run(self, target: Target, script: str, args_json: str, *, timeout: float) -> ScriptOutput:
        psrp = settings_as(target, PsrpSettings)
        auth = self._auth(psrp)
        if auth is None:  # Kerberos, CredSSP, certificate: pypsrp speaks them
            return await self._fallback_transport().run(target, script, args_json, timeout=timeout)
        with map_exceptions(failure_context(target, timeout), WSMAN_RULES):
            budget = Budget(timeout)
            session = WSManSession(target, auth, self._ssl_context(psrp), budget)
            shell = _Shell(session, self.messages)
            try:
                return await shell.run(script, args_json)
            except asyncio.CancelledError:
                budget.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(shell.close_after_cancel(), CANCEL_GRACE)
                raise
            finally:
                session.close()


def tls_server_end_point(der: bytes) -> bytes:
    """RFC 5929 channel binding: the certificate's hash by its signature hash (SHA-256 for MD5/SHA-1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return digest.finalize()


@functools.lru_cache(maxsize=1)
def _kerberos_available() -> bool:
    """With gssapi installed, Negotiate may mean Kerberos: leave that to pypsrp."""
    import importlib.util

    return importlib.util.find_spec("gssapi") is not None


def _default_verify_context() -> ssl.SSLContext:
    """Verification against the system CAs, honouring REQUESTS_CA_BUNDLE like requests does."""
    import os

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        return ssl.create_default_context(cafile=bundle)
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with requests
        return ssl.create_default_context()


class _Shell:
    """One runspace pool + one pipeline on one host; raises the FIRST failure."""

    def __init__(self, session: WSManSession, messages: _MessageCache) -> None:
        self.s = session
        self.messages = messages
        self.rpid = uuid.uuid4()
        self.shell_id: str | None = None
        self._create: asyncio.Future[Any] | None = None
        self.protocol: tuple[int, ...] = (2, 1)
        self._object_id = 0

    def _next_object_id(self) -> int:
        self._object_id += 1
        return self._object_id

    async def run(self, script: str, args_json: str) -> ScriptOutput:
        first: BaseException | None = None
        result = ScriptOutput()
        try:
            await self._open()
            cid = await self._invoke(script, args_json)
            result = await self._collect(cid)  # the request's 100+ KB are no longer referenced here
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            first = RunCancelled("run interrupted") if self.s.budget.cancelled else exc
        clean = first is None or isinstance(first, RunCancelled) or (self.s.conn is not None and self.s.conn.reusable)
        await self.close(clean=clean)
        if first is not None:
            raise first
        return result

    async def _open(self) -> None:
        frags: list[bytes] = []
        for msg_type, clixml in self.messages.open_messages():
            framed = wc.frame_message(msg_type, clixml, self.rpid, None)
            frags += wc.fragment(self._next_object_id(), framed, wc.max_fragment_payload(wc.DEFAULT_MAX_ENVELOPE))
        payload = wc.pack_payloads(frags, wc.max_fragment_payload(wc.DEFAULT_MAX_ENVELOPE))[0]
        body = wc.create_body(str(self.rpid).upper(), base64.b64encode(payload).decode())
        env = self.s.envelope(wc.ACTION_CREATE, options=wc.CREATE_OPTIONS, body=body)
        # Shielded: a Create cut short by Ctrl-C could leave a shell whose id we never learn, so a
        # cancelled run still waits (within the grace) for its answer and then deletes the shell.
        self._create = asyncio.ensure_future(self.s.post(env, abortable=False))
        root = await asyncio.shield(self._create)
        self.shell_id = wc.created_shell_id(root)
        defrag = wc.Defragmenter(limit=MAX_OUTPUT_BYTES)
        opened = False
        while not opened:
            env = self.s.envelope(wc.ACTION_RECEIVE, shell_id=self.shell_id, options=wc.RECEIVE_OPTIONS, body=wc.receive_body())
            data, _ = wc.received_stdout(await self.s.post(env))
            for msg in defrag.feed(data):
                if msg.msg_type == wc.SESSION_CAPABILITY:
                    self.protocol = wc.protocol_version(msg.data)
                elif msg.msg_type == wc.RUNSPACEPOOL_STATE:
                    state = wc.pool_state(msg.data)
                    if state != wc.POOL_OPENED:
                        raise InvalidRunspacePoolStateError(state, wc.POOL_OPENED, "open a new Runspace Pool")
                    opened = True
        if self.protocol >= (2, 2):
            self.s.max_envelope = wc.MODERN_MAX_ENVELOPE

    async def _invoke(self, script: str, args_json: str) -> str:
        """Start the pipeline (Command, then Send for the rest); return its CommandId."""
        assert self.shell_id is not None
        pid = uuid.uuid4()
        cid = str(pid).upper()
        clixml = self.messages.create_pipeline(script, args_json, self.protocol >= (2, 2))
        room = wc.max_fragment_payload(self.s.max_envelope)
        framed = wc.frame_message(wc.CREATE_PIPELINE, clixml, self.rpid, pid)
        payloads = wc.pack_payloads(wc.fragment(self._next_object_id(), framed, room), room)
        del framed
        # Each payload is popped into its request, so no copy of the bundle waits with us for an answer.
        await self.s.post(
            self.s.envelope(
                wc.ACTION_COMMAND,
                shell_id=self.shell_id,
                options=wc.COMMAND_OPTIONS,
                body=wc.command_body(cid, base64.b64encode(payloads.pop(0)).decode()),
            )
        )
        while payloads:
            body = wc.send_body(cid, base64.b64encode(payloads.pop(0)).decode())
            await self.s.post(self.s.envelope(wc.ACTION_SEND, shell_id=self.shell_id, body=body))
        return cid

    async def _collect(self, cid: str) -> ScriptOutput:
        defrag = wc.Defragmenter(limit=MAX_OUTPUT_BYTES)
        out: list[str] = []
        errors: list[str] = []
        size = 0
        state: int | None = None
        while state is None:
            env = self.s.envelope(
                wc.ACTION_RECEIVE, shell_id=self.shell_id, options=wc.RECEIVE_OPTIONS, body=wc.receive_body(cid)
            )
            try:
                root = await self.s.post(env)
            except Exception as exc:
                if getattr(exc, "code", None) == WSMAN_TIMED_OUT and type(exc).__name__ == "WSManFaultError":
                    continue  # the long-poll ended without output: ask again
                raise
            data, _ = wc.received_stdout(root)
            for msg in defrag.feed(data):
                if msg.msg_type == wc.PIPELINE_OUTPUT:
                    text = wc.output_text(msg.data)
                    size += len(text)
                    if size > MAX_OUTPUT_BYTES:
                        raise OutputTooLarge(f"more than {MAX_OUTPUT_BYTES} characters of output")
                    out.append(text)
                elif msg.msg_type == wc.ERROR_RECORD:
                    if len(errors) < 50:
                        errors.append(wc.error_record_from(msg.data))
                elif msg.msg_type == wc.PIPELINE_STATE:
                    state = wc.pipeline_state(msg.data)
                    err = wc.pipeline_state_error(msg.data)
                    if err is not None and len(errors) < 50:
                        errors.append(err)
        return ScriptOutput(stdout="\n".join(out), errors=errors, failed=state == wc.PIPE_FAILED)

    async def close(self, *, clean: bool) -> None:
        """Delete the shell (best effort); over a fresh connection if the current one is suspect."""
        if self.shell_id is None:
            return
        self.s.budget.start_closing()
        if not clean:
            self.s.close()
        try:
            await self.s.post(self.s.envelope(wc.ACTION_DELETE, shell_id=self.shell_id))
        except asyncio.CancelledError:
            raise  # the shell id stays: the cancel handler tries once more on a fresh connection
        except BaseException as exc:  # closing is best effort by design
            log.debug("closing the shell on %s failed: %s", self.s.target.address, type(exc).__name__)
        self.shell_id = None

    async def close_after_cancel(self) -> None:
        """After Ctrl-C: learn the shell id of a Create still in flight, then delete the shell."""
        self.s.budget.start_closing()
        if self.shell_id is None and self._create is not None:
            try:
                self.shell_id = wc.created_shell_id(await self._create)
            except BaseException:
                return  # no shell was created (or we cannot know its id)
        await self.close(clean=self.s.conn is not None and self.s.conn.reusable and not self.s.in_flight)
