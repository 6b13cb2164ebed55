"""WinRM message encryption over HTTP (MS-WSMV 2.2.9.1.1): multipart/encrypted bodies.

Both clients are strict about the framing (quoted boundary, verbatim protocol string,
exact trailer, `Length=` equal to the plaintext length), so it is built byte for byte here.
A session authenticated under the `Kerberos` scheme names its own protocol string
(`application/HTTP-Kerberos-session-encrypted`, MS-WSMV 2.2.9.1.2) where `Negotiate` uses the
SPNEGO one; the server answers in the protocol the request used.
"""

from __future__ import annotations

import struct
from typing import Any

PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
KERBEROS_PROTOCOL = "application/HTTP-Kerberos-session-encrypted"
CREDSSP_PROTOCOL = "application/HTTP-CredSSP-session-encrypted"
PROTOCOLS = (PROTOCOL, KERBEROS_PROTOCOL, CREDSSP_PROTOCOL)
CREDSSP_CHUNK = 16384
CONTENT_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'
_BOUNDARY = b"--Encrypted Boundary"
_TRAILER = _BOUNDARY + b"--\r\n"
_OCTET = b"\tContent-Type: application/octet-stream\r\n"


class EncryptionError(Exception):
    """The body is not a well-formed or decryptable encrypted message."""


def is_encrypted(content_type: str) -> bool:
    return protocol_of(content_type) is not None


def protocol_of(content_type: str) -> str | None:
    """The session-encryption protocol a `multipart/encrypted` Content-Type names, if any."""
    lowered = content_type.lower()
    if not lowered.startswith(("multipart/encrypted", "multipart/x-multi-encrypted")):
        return None
    return next((p for p in PROTOCOLS if f'protocol="{p.lower()}"' in lowered), None)


def protocol_for(scheme: str) -> str:
    """The encryption protocol string that goes with the scheme that authenticated the session."""
    return {"Kerberos": KERBEROS_PROTOCOL, "CredSSP": CREDSSP_PROTOCOL}.get(scheme, PROTOCOL)


def content_type(protocol: str = PROTOCOL, length: int = 0) -> str:
    kind = "multipart/x-multi-encrypted" if protocol == CREDSSP_PROTOCOL and length > CREDSSP_CHUNK else "multipart/encrypted"
    return f'{kind};protocol="{protocol}";boundary="Encrypted Boundary"'


def unwrap(ctx: Any, body: bytes) -> bytes:
    """Decrypt a multipart/encrypted request body (one part, or several 16 KiB CredSSP parts)."""
    plaintext = b""
    rest = body[: -len(_TRAILER)] if body.endswith(_TRAILER) else body
    while rest:
        plaintext += _unwrap_part(ctx, rest[: _next_part(rest)])
        rest = rest[_next_part(rest) :]
    return plaintext


def _next_part(body: bytes) -> int:
    """Where the part after the first one starts (len(body) when there is none)."""
    start = body.find(_OCTET)
    nxt = body.find(_BOUNDARY + b"\r\n\tContent-Type: application/HTTP-", start + 1) if start >= 0 else -1
    return nxt if nxt > 0 else len(body)


def _unwrap_part(ctx: Any, part: bytes) -> bytes:
    try:
        header_end = part.index(_OCTET)
        header = part[:header_end]
        expected = int(header.split(b"Length=", 1)[1].split(b"\r\n", 1)[0])
        payload = part[header_end + len(_OCTET) :]
        (sig_len,) = struct.unpack("<i", payload[:4])
        signature = payload[4 : 4 + sig_len]
        plaintext: bytes = ctx.unwrap_winrm(signature, payload[4 + sig_len :])
    except Exception as exc:
        raise EncryptionError(f"cannot decrypt the request body ({type(exc).__name__})") from None
    if len(plaintext) != expected:
        raise EncryptionError("decrypted length does not match the announced Length")
    return plaintext


def wrap(ctx: Any, plaintext: bytes, protocol: str = PROTOCOL) -> bytes:
    """Encrypt a SOAP response into the exact multipart framing the clients parse; CredSSP
    bodies over 16 KiB go in 16 KiB parts (multipart/x-multi-encrypted), as Windows sends them."""
    if protocol == CREDSSP_PROTOCOL and len(plaintext) > CREDSSP_CHUNK:
        parts = [plaintext[i : i + CREDSSP_CHUNK] for i in range(0, len(plaintext), CREDSSP_CHUNK)]
        return b"".join(_part(ctx, chunk, protocol) for chunk in parts) + _TRAILER
    return _part(ctx, plaintext, protocol) + _TRAILER


def _part(ctx: Any, plaintext: bytes, protocol: str) -> bytes:
    header, data, padding = ctx.wrap_winrm(plaintext)
    return frame(header, data, len(plaintext) + padding, protocol)[: -len(_TRAILER)]


def frame(signature: bytes, data: bytes, length: int, protocol: str = PROTOCOL) -> bytes:
    return (
        _BOUNDARY
        + b"\r\n\tContent-Type: "
        + protocol.encode()
        + b"\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
        + str(length).encode()
        + b"\r\n"
        + _BOUNDARY
        + b"\r\n"
        + _OCTET
        + struct.pack("<i", len(signature))
        + signature
        + data
        + _TRAILER
    )
