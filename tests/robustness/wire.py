"""A recording TCP relay on loopback (to see what crossed the wire) and the forms of a secret to look for."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import Iterator


class Relay:
    """Forwards 127.0.0.1:<port> to a target port and keeps every byte in both directions."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.captured = bytearray()
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.captured += data
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _md4(data: bytes) -> bytes:
    """MD4 (RFC 1320): OpenSSL 3 no longer offers it, and the NT hash is MD4 of UTF-16LE."""
    mask = 0xFFFFFFFF

    def rol(x: int, n: int) -> int:
        return ((x << n) | (x >> (32 - n))) & mask

    msg = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", len(data) * 8)
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for off in range(0, len(msg), 64):
        x = list(struct.unpack("<16I", msg[off : off + 64]))
        a, b, c, d = h
        for i in range(16):
            k, s = i, (3, 7, 11, 19)[i % 4]
            a, b, c, d = d, rol((a + ((b & c) | (~b & d)) + x[k]) & mask, s), b, c
        for i in range(16):
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            a, b, c, d = d, rol((a + ((b & c) | (b & d) | (c & d)) + x[k] + 0x5A827999) & mask, s), b, c
        for i in range(16):
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            s = (3, 9, 11, 15)[i % 4]
            a, b, c, d = d, rol((a + (b ^ c ^ d) + x[k] + 0x6ED9EBA1) & mask, s), b, c
        h = [(v + n) & mask for v, n in zip(h, (a, b, c, d), strict=True)]
    return struct.pack("<4I", *h)


def nt_hash(password: str) -> bytes:
    return _md4(password.encode("utf-16-le"))


def secret_forms(password: str, username: str = "") -> Iterator[tuple[str, bytes]]:
    """Every form a password could leak in: plain, UTF-16LE, base64 (alone and as Basic), NT hash."""
    plain = password.encode()
    yield "plain", plain
    yield "utf-16le", password.encode("utf-16-le")
    for name, raw in (("base64", plain), ("base64-utf16", password.encode("utf-16-le"))):
        for pad in range(3):  # inside a longer base64 text the password can start at any offset
            enc = base64.b64encode(b"\0" * pad + raw)
            yield f"{name}+{pad}", enc[4 if pad else 0 : -4]
    if username:
        yield "basic", base64.b64encode(f"{username}:{password}".encode()).rstrip(b"=")
    yield "nt-hash", nt_hash(password)
    yield "nt-hash-hex", nt_hash(password).hex().encode()
    yield "nt-hash-HEX", nt_hash(password).hex().upper().encode()
