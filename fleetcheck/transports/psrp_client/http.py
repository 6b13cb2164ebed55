"""HTTP/1.1 framing for one WSMan connection, sans-IO: requests written here, responses read by httptools.

The client sends one shape of request only (`POST /wsman` with a known body and a few headers
it builds itself), so writing it is one format string; reading what a host answers is the
hard part and goes to httptools (llhttp, the parser of Node.js), which does it in C. h11 did
both in pure Python at about 80 us per request and response: 7 requests a host made it the
largest single cost of a scan after the PSRP state machines themselves.

`ResponseReader` adds what a scanner needs on top: a cap on header bytes and on body bytes
(checked as the bytes arrive, before anything is held), 1xx answers skipped, bodies delimited
by the connection's close, and whether the connection may carry the next request.
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools

__all__ = ["FramingError", "Response", "ResponseReader", "TooLarge", "request_bytes"]


class FramingError(Exception):
    """The bytes are not an HTTP/1.1 response (or break its framing)."""


class TooLarge(Exception):
    """The response's headers or body exceed the reader's caps."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    body: bytes


def request_bytes(host_header: str, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    """`POST /wsman` with `body`: Host and Content-Length first, then `headers` as given."""
    lines = [f"POST /wsman HTTP/1.1\r\nHost: {host_header}\r\nContent-Length: {len(body)}\r\n"]
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"HTTP header {name!r} would break the request's framing")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode("latin-1")
    return head + body if body else head


class ResponseReader:
    """Reads one HTTP response from the bytes `feed` is given; `response` once it is whole."""

    def __init__(self, max_header_bytes: int, max_body_bytes: int) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._parser = httptools.HttpResponseParser(self)
        self._head_bytes = 0
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._status = 0
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the end is known without a close
        self._too_large: str | None = None
        self.response: Response | None = None
        self.keep_alive = False
        self.extra = False  # bytes after the response: the connection cannot be trusted again

    # httptools callbacks (called from inside `feed`)
    def on_message_begin(self) -> None:
        if self.response is not None:
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            return
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip(" \t")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        if self.response is not None:
            return
        self._status = self._parser.get_status_code()
        self._headers_done = True
        self.keep_alive = self._parser.should_keep_alive()
        length = self._headers.get("content-length", "")
        chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        self._framed = bool(length) or chunked or self._status in (204, 304) or self._status < 200
        if length.isdigit() and int(length) > self.max_body_bytes:
            self._too_large = f"HTTP response of {length} bytes"

    def on_body(self, data: bytes) -> None:
        if self.response is not None or self._too_large:
            return
        if len(self._body) + len(data) > self.max_body_bytes:
            self._too_large = "HTTP response too large"
            return
        self._body += data

    def on_message_complete(self) -> None:
        if self.response is not None:
            return
        if 100 <= self._status < 200:  # 100 Continue and the like: the real answer follows
            self._headers, self._body, self._headers_done, self._head_bytes = {}, bytearray(), False, 0
            return
        self.response = Response(self._status, self._headers, bytes(self._body))
        self._body = bytearray()

    def feed(self, data: bytes) -> Response | None:
        """Take the next bytes from the socket; the response once it is complete."""
        if not self._headers_done:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise FramingError("the host switched protocols") from None
        except httptools.HttpParserError as exc:
            raise FramingError(str(exc) or type(exc).__name__) from None
        if self._too_large:
            raise TooLarge(self._too_large)
        if not self._headers_done and self.response is None and self._head_bytes > self.max_header_bytes:
            raise TooLarge(f"HTTP headers longer than {self.max_header_bytes} bytes")
        return self.response

    def eof(self) -> Response:
        """The host closed the connection: the response if its body ran to the close, else an error."""
        if self.response is not None:
            return self.response
        if self._headers_done and not self._framed:
            self.keep_alive = False
            self.response = Response(self._status, self._headers, bytes(self._body))
            return self.response
        if self._headers_done:
            raise ConnectionResetError("connection closed by the host in the middle of an answer")
        raise ConnectionResetError("connection closed by the host before it answered")
