"""A hostile WinRM endpoint on loopback: every request gets the same abusive answer.

Each mode is a way a broken or malicious host has taken a scanner down: bodies without end,
lies about their length, compression bombs, answers that trickle, headers without end, XML
entity expansion. The server never reads more than the request it is given.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable, Iterator

_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml;charset=UTF-8\r\n"
_BLOCK = b"<a>" + b"x" * 65_000 + b"</a>"


def _bomb(wbits: int) -> bytes:
    """About 1 GiB of zeros compressed (gzip: wbits 31, deflate: 15) to about 1 MiB."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    zeros = bytes(1024 * 1024)
    return b"".join(comp.compress(zeros) for _ in range(1024)) + comp.flush()


_BOMBS: dict[str, bytes] = {}


def _cached_bomb(kind: str) -> bytes:
    if kind not in _BOMBS:
        _BOMBS[kind] = _bomb(31 if kind == "gzip" else 15)
    return _BOMBS[kind]


def _send_forever(sock: socket.socket, first: bytes, chunk: bytes, pause: float = 0.0) -> None:
    sock.sendall(first)
    while True:
        sock.sendall(chunk)
        if pause:
            time.sleep(pause)


def endless_chunks(sock: socket.socket) -> None:
    _send_forever(sock, _HEAD + b"Transfer-Encoding: chunked\r\n\r\n", f"{len(_BLOCK):x}\r\n".encode() + _BLOCK + b"\r\n")


def huge_chunk(sock: socket.socket) -> None:
    _send_forever(sock, _HEAD + b"Transfer-Encoding: chunked\r\n\r\n7fffffff\r\n", _BLOCK)


def huge_content_length(sock: socket.socket) -> None:
    _send_forever(sock, _HEAD + b"Content-Length: 2147483648\r\n\r\n", _BLOCK)


def huge_length_unannounced(sock: socket.socket) -> None:
    """No length, no chunking: the body ends when the connection does (never)."""
    _send_forever(sock, _HEAD + b"Connection: close\r\n\r\n", _BLOCK)


def _bomb_mode(kind: str, encoding: bytes) -> Callable[[socket.socket], None]:
    def send(sock: socket.socket) -> None:
        body = _cached_bomb(kind)
        sock.sendall(_HEAD + b"Content-Encoding: " + encoding + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        time.sleep(30)

    return send


def trickle_body(sock: socket.socket) -> None:
    _send_forever(sock, _HEAD + b"Content-Length: 100000\r\n\r\n", b"<", pause=0.05)


def trickle_headers(sock: socket.socket) -> None:
    _send_forever(sock, b"HTTP/1.1 200 OK\r\n", b"X", pause=0.05)


def endless_headers(sock: socket.socket) -> None:
    _send_forever(sock, _HEAD, b"X-Filler: " + b"y" * 100 + b"\r\n")


def entity_expansion(sock: socket.socket) -> None:
    ents = "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
    body = f'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY e0 "lol">{ents}]><s:Envelope>&e9;</s:Envelope>'.encode()
    sock.sendall(_HEAD + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(30)


MODES: dict[str, Callable[[socket.socket], None]] = {
    "endless_chunks": endless_chunks,
    "huge_chunk": huge_chunk,
    "huge_content_length": huge_content_length,
    "unannounced_endless_body": huge_length_unannounced,
    "gzip_bomb": _bomb_mode("gzip", b"gzip"),
    "deflate_bomb": _bomb_mode("deflate", b"deflate"),
    "trickle_body": trickle_body,
    "trickle_headers": trickle_headers,
    "endless_headers": endless_headers,
    "entity_expansion": entity_expansion,
}

#: Modes that only end at the deadline (the others end as soon as the client refuses them).
SLOW_MODES = frozenset({"trickle_body", "trickle_headers"})


def _read_request(sock: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        if not got:
            return False
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        got = sock.recv(65536)
        if not got:
            return False
        body += got
    return True


@contextlib.contextmanager
def hostile_server(mode: str) -> Iterator[int]:
    """Serve `mode` on 127.0.0.1 (a free port); yield the port."""
    answer = MODES[mode]
    if mode.endswith("_bomb"):
        _cached_bomb(mode.split("_")[0])

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock: socket.socket = self.request
            sock.settimeout(30)
            with contextlib.suppress(OSError):
                if _read_request(sock):
                    answer(sock)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
