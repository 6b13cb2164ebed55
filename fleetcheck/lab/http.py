"""A small HTTP/1.1 server side: enough for WinRM clients (keep-alive, Content-Length bodies).

Hand-rolled rather than aiohttp because the lab needs per-TCP-connection auth state, real
TCP resets and deliberately broken answers, which a framework hides.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from email.utils import formatdate

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
}


class HttpError(Exception):
    """A request the server answers with `status` and then drops the connection."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@dataclass
class HttpRequest:
    method: str
    path: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; repeats joined by ", "
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


def _parse_head(head: bytes) -> HttpRequest:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes everything
        raise HttpError(400, "undecodable header") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "bad request line")
    request = HttpRequest(method=parts[0], path=parts[1], version=parts[2])
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, "bad header line")
        key = name.strip().lower()
        value = value.strip()
        request.headers[key] = f"{request.headers[key]}, {value}" if key in request.headers else value
    return request


async def read_request(reader: asyncio.StreamReader, max_body: int = MAX_BODY_BYTES) -> HttpRequest | None:
    """The next request on the connection, or None when the peer closed it cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError(400, "truncated header") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError(400, "header too large") from exc
    request = _parse_head(head[:-4])
    if "chunked" in request.headers.get("transfer-encoding", "").lower():
        raise HttpError(411, "chunked bodies are not accepted")
    length_text = request.headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HttpError(400, "bad Content-Length")
    length = int(length_text)
    if length > max_body:
        raise HttpError(413, "body too large")
    if length:
        try:
            request.body = await reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            raise HttpError(400, "truncated body") from exc
    return request


def format_response(status: int, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """Serialise a response the way HTTP.sys does (Server header, explicit Content-Length)."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    lines.append("Server: Microsoft-HTTPAPI/2.0")
    lines.append(f"Date: {formatdate(usegmt=True)}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
