"""The native client's HTTP framing (httptools) against h11 as the oracle, and its caps."""

from __future__ import annotations

import itertools

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcheck.transports.psrp_client.http import FramingError, ResponseReader, TooLarge, request_bytes

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=12)
_VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)


@st.composite
def responses(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    status = draw(st.sampled_from([200, 201, 400, 401, 404, 500, 503]))
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    names = draw(st.lists(_TOKEN.filter(lambda n: n.lower() not in {
        "content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "proxy-connection"}),
        max_size=5))
    head = [f"HTTP/1.1 {status} {draw(st.sampled_from(['OK', '', 'Some Reason']))}"]
    head += [f"{n}: {draw(_VALUE)}" for n in names]
    if framing == "length":
        head.append(f"Content-Length: {len(body)}")
        payload = body
    elif framing == "chunked":
        head.append("Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=4)))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if body[a:b]]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    else:
        head.append("Connection: close")
        payload = body
    informational = b"HTTP/1.1 100 Continue\r\nX-Info: 1\r\n\r\n" if draw(st.booleans()) else b""
    data = informational + ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    splits = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return data, splits


def _pieces(data: bytes, splits: list[int]) -> list[bytes]:
    bounds = [0, *splits, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if data[a:b]]


def _h11(data: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/wsman", headers=[("Host", "h"), ("Content-Length", "0")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    status, headers, body = 0, {}, b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
            for name, value in event.headers:
                key = name.decode().lower()
                headers[key] = f"{headers[key]}, {value.decode()}" if key in headers else value.decode()
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
    conn.next_event()  # ConnectionClosed or NEED_DATA
    return status, headers, body, conn.our_state is h11.DONE and conn.their_state is h11.DONE


@settings(max_examples=300, deadline=None)
@given(responses())
def test_the_reader_agrees_with_h11(case: tuple[bytes, list[int]]) -> None:
    data, splits = case
    reader = ResponseReader(64 * 1024, 1 << 20)
    got = None
    for piece in _pieces(data, splits):
        got = reader.feed(piece)
        if got is not None:
            break
    if got is None:
        got = reader.eof()
    status, headers, body, _ = _h11(data)
    assert (got.status, got.headers, got.body) == (status, headers, body)
    assert reader.keep_alive == ("connection: close" not in data.lower().decode(errors="replace"))


def test_request_is_framed_and_refuses_header_injection() -> None:
    raw = request_bytes("127.0.0.1:5985", b"<x/>", [("Content-Type", "application/soap+xml")])
    assert raw == (
        b"POST /wsman HTTP/1.1\r\nHost: 127.0.0.1:5985\r\nContent-Length: 4\r\n"
        b"Content-Type: application/soap+xml\r\n\r\n<x/>"
    )
    with pytest.raises(ValueError, match="framing"):
        request_bytes("h", b"", [("Authorization", "Basic x\r\nX-Evil: 1")])


def test_endless_header_line_is_cut_at_the_header_cap() -> None:
    reader = ResponseReader(1024, 1 << 20)
    reader.feed(b"HTTP/1.1 200 OK\r\nX-Long: ")
    with pytest.raises(TooLarge, match="headers"):
        for _ in range(10):
            reader.feed(b"a" * 200)


def test_body_over_the_cap_is_refused_as_it_arrives() -> None:
    announced = ResponseReader(1024, 100)
    with pytest.raises(TooLarge, match="1000 bytes"):
        announced.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    chunked = ResponseReader(1024, 100)
    chunked.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(TooLarge, match="too large"):
        chunked.feed(b"fffffff\r\n" + b"x" * 150)


def test_garbage_and_cut_answers() -> None:
    with pytest.raises(FramingError):
        ResponseReader(1024, 100).feed(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    cut = ResponseReader(1024, 100)
    cut.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(ConnectionResetError, match="middle"):
        cut.eof()
    with pytest.raises(ConnectionResetError, match="before"):
        ResponseReader(1024, 100).eof()


def test_bytes_after_the_answer_make_the_connection_unfit() -> None:
    reader = ResponseReader(1024, 100)
    got = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
    assert got is not None and got.body == b"ok" and reader.extra
