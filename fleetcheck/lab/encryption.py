"""WinRM message encryption over HTTP (MS-WSMV 2.2.9.1.1): multipart/encrypted bodies.

Both clients are strict about the framing (quoted boundary, verbatim protocol string,
exact trailer, `Length=` equal to the plaintext length), so it is built byte for byte here.
"""

from __future__ import annotations

import struct
from typing import Any

PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
CONTENT_TYPE = f'multipart/encrypted;protocol="{PROTOCOL}";boundary="Encrypted Boundary"'
_BOUNDARY = b"--Encrypted Boundary"
_TRAILER = _BOUNDARY + b"--\r\n"
_OCTET = b"\tContent-Type: application/octet-stream\r\n"


class EncryptionError(Exception):
    """The body is not a well-formed or decryptable encrypted message."""


def is_encrypted(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/encrypted") and PROTOCOL.lower() in content_type.lower()


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


def wrap(ctx: Any, plaintext: bytes) -> bytes:
    """Encrypt a SOAP response into the exact multipart framing the clients parse."""
    header, data, padding = ctx.wrap_winrm(plaintext)
    return frame(header, data, len(plaintext) + padding)


def frame(signature: bytes, data: bytes, length: int) -> bytes:
    return (
        _BOUNDARY
        + b"\r\n\tContent-Type: "
        + PROTOCOL.encode()
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
