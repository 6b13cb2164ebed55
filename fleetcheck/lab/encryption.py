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
PROTOCOLS = (PROTOCOL, KERBEROS_PROTOCOL)
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
    if not lowered.startswith("multipart/encrypted"):
        return None
    return next((p for p in PROTOCOLS if f'protocol="{p.lower()}"' in lowered), None)


def content_type(protocol: str = PROTOCOL) -> str:
    return f'multipart/encrypted;protocol="{protocol}";boundary="Encrypted Boundary"'


def unwrap(ctx: Any, body: bytes) -> bytes:
    """Decrypt one multipart/encrypted request body with the connection's security context."""
    try:
        header_end = body.index(_OCTET)
        header = body[:header_end]
        expected = int(header.split(b"Length=", 1)[1].split(b"\r\n", 1)[0])
        payload = body[header_end + len(_OCTET) :]
        if payload.endswith(_TRAILER):
            payload = payload[: -len(_TRAILER)]
        (sig_len,) = struct.unpack("<i", payload[:4])
        signature = payload[4 : 4 + sig_len]
        plaintext: bytes = ctx.unwrap_winrm(signature, payload[4 + sig_len :])
    except EncryptionError:
        raise
    except Exception as exc:
        raise EncryptionError(f"cannot decrypt the request body ({type(exc).__name__})") from None
    if len(plaintext) != expected:
        raise EncryptionError("decrypted length does not match the announced Length")
    return plaintext


def wrap(ctx: Any, plaintext: bytes, protocol: str = PROTOCOL) -> bytes:
    """Encrypt a SOAP response into the exact multipart framing the clients parse."""
    header, data, padding = ctx.wrap_winrm(plaintext)
    return frame(header, data, len(plaintext) + padding, protocol)


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
