"""MD4 (RFC 1320), for one purpose: the NT hash of a password, NTLM's long-term key.

OpenSSL 3 no longer offers MD4 (hashlib refuses it), `cryptography` dropped it, and
pycryptodomex, which has it, costs 40-50 ms to import (cffi parses its C declarations with
pycparser at import time): a fifth of `fleetcheck run`'s start-up, paid once per run to hash
one password. MD4 is a fixed 48-step function; `tests/unit/test_md4.py` checks it against the
RFC's test suite and against pycryptodomex on random inputs.
"""

from __future__ import annotations

import struct

_MASK = 0xFFFFFFFF
_ROUND2 = 0x5A827999
_ROUND3 = 0x6ED9EBA1
# (word order, shifts) of each round: RFC 1320 section 3.4
_ORDER_1 = range(16)
_ORDER_2 = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
_ORDER_3 = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
_SHIFTS_1 = (3, 7, 11, 19)
_SHIFTS_2 = (3, 5, 9, 13)
_SHIFTS_3 = (3, 9, 11, 15)


def _rotl(x: int, n: int) -> int:
    x &= _MASK
    return ((x << n) | (x >> (32 - n))) & _MASK


def _block(state: list[int], words: tuple[int, ...]) -> None:
    a, b, c, d = state
    for i, k in enumerate(_ORDER_1):
        a = _rotl(a + ((b & c) | (~b & d)) + words[k], _SHIFTS_1[i % 4])
        a, b, c, d = d, a, b, c
    for i, k in enumerate(_ORDER_2):
        a = _rotl(a + ((b & c) | (b & d) | (c & d)) + words[k] + _ROUND2, _SHIFTS_2[i % 4])
        a, b, c, d = d, a, b, c
    for i, k in enumerate(_ORDER_3):
        a = _rotl(a + (b ^ c ^ d) + words[k] + _ROUND3, _SHIFTS_3[i % 4])
        a, b, c, d = d, a, b, c
    for i, v in enumerate((a, b, c, d)):
        state[i] = (state[i] + v) & _MASK


def md4(data: bytes) -> bytes:
    """The 16-byte MD4 digest of `data`."""
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack("<Q", (len(data) * 8) & (2**64 - 1))
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for offset in range(0, len(padded), 64):
        _block(state, struct.unpack_from("<16I", padded, offset))
    return struct.pack("<4I", *state)


def nt_hash(password: str) -> str:
    """NTOWFv1 (MS-NLMP 3.3.1): MD4 of the UTF-16LE password, as lowercase hex."""
    return md4(password.encode("utf-16-le")).hex()
