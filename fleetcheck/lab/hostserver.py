"""One host's WinRM listener: HTTP(S) → auth → (de)cryption → WSMan dispatch → shells.

    server = await start_winrm_listener(host, "127.0.0.5", 0)            # HTTP, NTLM + encryption
    server = await start_winrm_listener(host, "127.0.0.5", 0, tls=ctx, cert_der=der)  # HTTPS
    port = server.sockets[0].getsockname()[1]
    ...
    await stop_listener(server)                                          # also drops open connections
    close_shells(host)                                                   # when the host itself goes away

Each TCP connection keeps its own auth state (as HTTP.sys does for NTLM). Shells live on
the `LabHost`, so a host's HTTP and HTTPS listeners share them and its quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import struct
import weakref
from dataclasses import dataclass, field

from fleetcheck.lab import encryption
from fleetcheck.lab.addressing import require_listening
from fleetcheck.lab.auth import (
    BASIC_OFFER,
    CREDSSP_OFFER,
    KERBEROS_OFFER,
    NEGOTIATE_OFFER,
    ConnectionAuth,
    channel_bindings,
)
from fleetcheck.lab.faults import pick_fault
from fleetcheck.lab.host import FaultSpec, LabHost
from fleetcheck.lab.http import HttpError, HttpRequest, format_response, read_request
from fleetcheck.lab.psrp_shell import PsrpShell
from fleetcheck.lab.shellbase import LabShell
from fleetcheck.lab.winrs_shell import WinrsShell
from fleetcheck.lab.wsman import (
    CMD_URI,
    NS_PS,
    NS_RSP,
    PSRP_URI_PREFIX,
    WSManFault,
    WsmanRequest,
    command_response,
    create_response,
    delete_response,
    envelope,
    fault_envelope,
    generic_fault,
    invalid_selectors,
    new_uuid,
    parse_duration,
    parse_request,
    shell_quota,
    simple_response,
    timed_out,
)

SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"
_LOG = logging.getLogger(__name__)
CONFIG_URI = "http://schemas.microsoft.com/wbem/wsman/1/config"
_ACTION_FAULT_KINDS = ("hang", "reset", "http401", "http500", "malformed", "encrypt_garbage", "optimeout", "shell_quota")

_OPEN_CONNECTIONS: weakref.WeakKeyDictionary[asyncio.base_events.Server, set[asyncio.StreamWriter]] = weakref.WeakKeyDictionary()


class _Hang(Exception):
    """Never answer this request."""


class _Reset(Exception):
    """Answer with a TCP RST."""


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


@dataclass
class _Listener:
    host: LabHost
    tls: bool
    cert_der: bytes | None

    @property
    def basic_allowed(self) -> bool:
        winrm = self.host.machine.winrm
        return winrm.basic_auth and (self.tls or winrm.allow_unencrypted)

    @property
    def kerberos_keytab(self) -> str | None:
        return self.host.kerberos_keytab if self.host.machine.winrm.kerberos_auth else None

    def schemes(self) -> tuple[str, ...]:
        winrm = self.host.machine.winrm
        schemes = (("negotiate", "ntlm") if winrm.negotiate_auth else ()) + (("kerberos",) if self.kerberos_keytab else ())
        return schemes + (("credssp",) if winrm.credssp_auth else ())

    def offers(self) -> list[tuple[str, str]]:
        """The 401's WWW-Authenticate headers: Negotiate, Kerberos (domain members), Basic."""
        winrm = self.host.machine.winrm
        offers = [NEGOTIATE_OFFER] if winrm.negotiate_auth else []
        if self.kerberos_keytab:
            offers.append(KERBEROS_OFFER)
        if winrm.credssp_auth:
            offers.append(CREDSSP_OFFER)
        return [*offers, BASIC_OFFER] if self.basic_allowed else offers

    def new_auth(self, client_cert_der: bytes | None = None) -> ConnectionAuth:
        bindings = None
        if self.tls and self.cert_der is not None:
            wrong = pick_fault(self.host, "auth", ("cbt_mismatch",)) is not None
            bindings = channel_bindings(os.urandom(32) if wrong else self.cert_der)
        level = self.host.machine.winrm.cbt_hardening_level
        if pick_fault(self.host, "auth", ("cbt_strict",)) is not None:
            level = "Strict"
        return ConnectionAuth(
            self.host.machine,
            bindings,
            self.basic_allowed,
            self.kerberos_keytab,
            self.schemes(),
            self._delegated,
            client_cert_der if self.tls else None,
            cbt_hardening=level,
        )

    def _delegated(self) -> None:
        self.host.delegations += 1


def _check_loopback(address: str) -> None:
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"the lab only listens on loopback addresses, not {address!r}")


async def start_winrm_listener(
    host: LabHost,
    address: str,
    port: int,
    *,
    tls: ssl.SSLContext | None = None,
    cert_der: bytes | None = None,
) -> asyncio.base_events.Server:
    """Listen for WinRM on `address:port` (loopback only; port 0 picks one). HTTPS when `tls`."""
    _check_loopback(address)
    listener = _Listener(host, tls is not None, cert_der)
    connections: set[asyncio.StreamWriter] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(writer)
        try:
            await _serve_connection(listener, reader, writer)
        finally:
            connections.discard(writer)

    server = await asyncio.start_server(on_connect, address, port, ssl=tls, limit=256 * 1024, backlog=256)
    require_listening(server, address, port)
    _OPEN_CONNECTIONS[server] = connections
    return server


async def stop_listener(server: asyncio.base_events.Server) -> None:
    """Stop accepting and drop every open connection of this listener."""
    server.close()
    for writer in list(_OPEN_CONNECTIONS.get(server, ())):
        writer.transport.abort()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 2.0)


def close_shells(host: LabHost) -> int:
    """Delete every open shell of `host` (when the whole host goes away); returns how many."""
    shells = [s for s in list(host.shells.values()) if isinstance(s, LabShell)]
    for shell in shells:
        shell.close()
    return len(shells)


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _serve_connection(listener: _Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    host = listener.host
    if pick_fault(host, "connect", ("refuse",)) is not None or pick_fault(host, "connect", ("reset",), exact=True) is not None:
        _abort_with_rst(writer)
        return
    peer = writer.get_extra_info("peername")
    tls_object = writer.get_extra_info("ssl_object")
    client_cert = tls_object.getpeercert(binary_form=True) if tls_object is not None else None
    conn = _Connection(listener, listener.new_auth(client_cert), peer[0] if peer else "127.0.0.1")
    try:
        while True:
            try:
                request = await read_request(reader)
            except HttpError as exc:
                writer.write(format_response(exc.status, [("Connection", "close")]))
                await writer.drain()
                return
            if request is None:
                return
            try:
                reply = await conn.handle(request)
            except _Hang:
                while await reader.read(65536):
                    pass
                return
            except _Reset:
                _abort_with_rst(writer)
                return
            except Exception:
                _LOG.exception("lab host %s failed to answer a request", host.name)
                body = fault_envelope(None, generic_fault(2150858752), host.machine.hostname)
                reply = _Reply(500, body, [("Content-Type", SOAP_CONTENT_TYPE)], close=True)
            headers = list(reply.headers)
            if reply.close or not request.keep_alive:
                headers.append(("Connection", "close"))
            writer.write(format_response(reply.status, headers, reply.body))
            await writer.drain()
            if reply.close or not request.keep_alive:
                return
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        return
    finally:
        if not writer.transport.is_closing():
            writer.close()


class _Connection:
    """One TCP connection: its auth context, and the request pipeline."""

    def __init__(self, listener: _Listener, auth: ConnectionAuth, client_ip: str) -> None:
        self.listener = listener
        self.host = listener.host
        self.auth = auth
        self.client_ip = client_ip

    def _unauthorized(self) -> _Reply:
        self.auth.reset()
        return _Reply(401, headers=self.listener.offers())

    async def handle(self, request: HttpRequest) -> _Reply:
        host = self.host
        host.counters.requests += 1
        if request.path.split("?", 1)[0].lower() != "/wsman":
            return _Reply(404)
        if request.method != "POST":
            return _Reply(405)
        if pick_fault(host, "auth", ("http401",)) is not None:
            return self._unauthorized()
        early = pick_fault(host, "auth", ("hang", "reset"), exact=True)
        if early is not None:
            raise _Hang if early.kind == "hang" else _Reset
        authorization = request.headers.get("authorization")
        step = self.auth.step(authorization)
        if step.outcome != "ok" or not request.body:
            # an authentication leg crosses the network like any request: same added latency
            await self._latency("auth")
        if step.outcome == "reject":
            return self._unauthorized()
        if step.outcome == "challenge":
            return _Reply(401, headers=[("WWW-Authenticate", f"{step.scheme} {step.token or ''}".strip())])
        if authorization and step.mechanism:
            host.logons[step.mechanism] = host.logons.get(step.mechanism, 0) + 1
        extra = [("WWW-Authenticate", f"{step.scheme} {step.token}")] if step.token else []
        if not request.body:
            return _Reply(200, headers=extra)
        protocol = encryption.protocol_of(request.headers.get("content-type", ""))
        if protocol is not None:
            # The framing names the scheme that authenticated (as pypsrp notes, Windows wants the
            # Kerberos protocol string after the Kerberos scheme, SPNEGO's after Negotiate).
            if not self.auth.encrypted_session or protocol != encryption.protocol_for(self.auth.scheme or ""):
                return _Reply(400)
            try:
                plaintext = encryption.unwrap(self.auth.context, request.body)
            except encryption.EncryptionError:
                return _Reply(400, close=True)
        elif not self.listener.tls and not host.machine.winrm.allow_unencrypted:
            return self._unauthorized()
        else:
            plaintext = request.body
        if len(plaintext) > host.machine.winrm.max_envelope_size_kb * 1024:
            return _Reply(413)  # what WinRM answers past MaxEnvelopeSizekb (clients report HTTP 413)
        try:
            status, body, wsreq = await self._wsman(plaintext)
        except _Unauthorized:
            return self._unauthorized()
        return self._reply(status, body, protocol, extra, wsreq)

    def _reply(self, status: int, body: bytes, protocol: str | None, extra: list[tuple[str, str]], wsreq: WsmanRequest | None) -> _Reply:
        garbage = wsreq is not None and wsreq.garbage
        if protocol is not None:
            if garbage:
                header, data, _ = self.auth.context.wrap_winrm(body)
                data = os.urandom(len(data))
                payload = encryption.frame(header, data, len(body), protocol)
            else:
                payload = encryption.wrap(self.auth.context, body, protocol)
            return _Reply(status, payload, [("Content-Type", encryption.content_type(protocol, len(body))), *extra])
        if garbage:
            body = os.urandom(len(body))
        return _Reply(status, body, [("Content-Type", SOAP_CONTENT_TYPE), *extra])

    async def _wsman(self, plaintext: bytes) -> tuple[int, bytes, WsmanRequest | None]:
        host = self.host
        machine = host.machine.hostname
        try:
            wsreq = parse_request(plaintext)
        except WSManFault as fault:
            return 500, fault_envelope(None, fault, machine), None
        verb = wsreq.verb
        wsreq.max_envelope_size = min(wsreq.max_envelope_size, host.machine.winrm.max_envelope_size_kb * 1024)
        host.requests_by_action[verb] = host.requests_by_action.get(verb, 0) + 1
        try:
            await self._latency(verb)
            spec = pick_fault(host, verb, _ACTION_FAULT_KINDS)
            if spec is not None:
                early = self._apply_fault(spec, wsreq)
                if early is not None:
                    return 500, fault_envelope(wsreq.message_id, early, machine), wsreq
            body = await self._dispatch(wsreq)
        except WSManFault as fault:
            return 500, fault_envelope(wsreq.message_id, fault, machine), wsreq
        if spec is not None and spec.kind == "malformed":
            body = body[: max(16, len(body) // 2)]
        return 200, body, wsreq

    async def _latency(self, verb: str) -> None:
        delay = 0.0
        spec = pick_fault(self.host, verb, ("latency",))
        if spec is not None:
            delay += float(spec.value or 0.0)
        jitter = pick_fault(self.host, verb, ("jitter",))
        if jitter is not None and jitter.value:
            delay += self.host.rng.uniform(0.0, float(jitter.value))
        if delay:
            await asyncio.sleep(delay)

    def _apply_fault(self, spec: FaultSpec, wsreq: WsmanRequest) -> WSManFault | None:
        if spec.kind == "hang":
            raise _Hang
        if spec.kind == "reset":
            raise _Reset
        if spec.kind == "http401":
            raise _Unauthorized
        if spec.kind == "http500":
            return generic_fault(spec.code or 2147943418)
        if spec.kind == "optimeout":
            return timed_out()
        if spec.kind == "shell_quota":
            return shell_quota(self.host.machine.winrm.max_shells_per_user)
        if spec.kind == "encrypt_garbage":
            wsreq.garbage = True
        return None

    # -- WSMan dispatch ------------------------------------------------------------------------
    def _shell(self, wsreq: WsmanRequest, *, get: bool = False) -> LabShell:
        shell = self.host.shells.get(wsreq.selectors.get("ShellId", "").upper())
        if not isinstance(shell, LabShell) or shell.closed:
            raise invalid_selectors()
        if shell.disconnected and not get and wsreq.verb != "Delete":
            raise invalid_selectors()  # until a Connect, which the lab does not offer
        if not get:
            shell.touch()
        return shell

    async def _dispatch(self, wsreq: WsmanRequest) -> bytes:
        verb = wsreq.verb
        if verb == "Create":
            return self._create(wsreq)
        if verb == "Get":
            if wsreq.resource_uri.startswith(CONFIG_URI):
                return self._config(wsreq)
            return envelope(wsreq, self._shell(wsreq, get=True).state_xml(get=True))
        if verb == "Delete":
            self._shell(wsreq).close()
            return delete_response(wsreq)
        if verb == "Command":
            return command_response(wsreq, await self._shell(wsreq).command(wsreq))
        if verb == "Send":
            await self._shell(wsreq).send(wsreq)
            return simple_response(wsreq, "SendResponse")
        if verb == "Receive":
            return await self._shell(wsreq).receive(wsreq)
        if verb == "Signal":
            await self._shell(wsreq).signal(wsreq)
            return simple_response(wsreq, "SignalResponse")
        raise WSManFault(2150858771, "a:ActionNotSupported", f"The action {verb} is not supported by the service. ", "s:Sender")

    def _owner(self) -> str:
        return self.auth.principal or ""

    def _create(self, wsreq: WsmanRequest) -> bytes:
        host = self.host
        owner = self._owner()
        limit = host.machine.winrm.max_shells_per_user
        mine = sum(1 for s in host.shells.values() if isinstance(s, LabShell) and s.owner.lower() == owner.lower())
        if mine >= limit:
            raise shell_quota(limit)
        body = wsreq.body
        shell_el = body.find(f"{{{NS_RSP}}}Shell") if body is not None else None
        if shell_el is None:
            raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "The Shell element is missing.", "s:Sender")
        shell: LabShell
        if wsreq.resource_uri.startswith(PSRP_URI_PREFIX):
            creation = shell_el.find(f"{{{NS_PS}}}creationXml")
            shell_id = (shell_el.get("ShellId") or new_uuid()).upper()
            if creation is None:
                raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "creationXml is missing.", "s:Sender")
            import base64

            shell = PsrpShell(host, shell_id, owner, wsreq.resource_uri, self.client_ip, base64.b64decode(creation.text or ""))
        elif wsreq.resource_uri == CMD_URI:
            winrs = WinrsShell(host, new_uuid(), owner, wsreq.resource_uri, self.client_ip, wsreq.options.get("WINRS_CODEPAGE", "437"))
            winrs.configure(shell_el)
            shell = winrs
        else:
            raise WSManFault(
                2150858811,
                "w:DestinationUnreachable",
                f"The WS-Management service cannot process the request. The resource URI ({wsreq.resource_uri}) was not found in the WS-Management catalog. ",
                "s:Sender",
            )
        idle = shell_el.find(f"{{{NS_RSP}}}IdleTimeOut")
        if idle is not None and idle.text:
            shell.set_idle_timeout(parse_duration(idle.text, 0.0))
        return create_response(wsreq, shell.shell_id, shell.state_xml())

    def _config(self, wsreq: WsmanRequest) -> bytes:
        winrm = self.host.machine.winrm
        body = (
            f'<cfg:Config xmlns:cfg="{CONFIG_URI}"><cfg:MaxEnvelopeSizekb>{winrm.max_envelope_size_kb}</cfg:MaxEnvelopeSizekb>'
            "<cfg:MaxTimeoutms>60000</cfg:MaxTimeoutms><cfg:MaxBatchItems>32000</cfg:MaxBatchItems></cfg:Config>"
        )
        return envelope(wsreq, body)


class _Unauthorized(Exception):
    """Injected 401 on a WSMan action."""
