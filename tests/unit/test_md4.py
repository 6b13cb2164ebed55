"""MD4 for the NT hash: RFC 1320's test suite, and pycryptodomex as an oracle on random inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcheck.transports.psrp_client.md4 import md4, nt_hash

RFC_1320_SUITE = [
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"),
    (b"1234567890" * 8, "e33b4ddc9c38f2199c3e7b164fcc0536"),
]


@pytest.mark.parametrize(("data", "digest"), RFC_1320_SUITE)
def test_rfc_1320_suite(data: bytes, digest: str) -> None:
    assert md4(data).hex() == digest


def test_nt_hash_of_a_known_password() -> None:
    # MS-NLMP 4.2.2.1.2: NTOWFv1("Password")
    assert nt_hash("Password") == "a4f49c406510bdcab6824ee7c30fd852"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_same_digest_as_pycryptodomex(data: bytes) -> None:
    from Cryptodome.Hash import MD4

    assert md4(data) == MD4.new(data).digest()
