"""Fixtures for every test folder: a real MIT KDC for the Kerberos tests (one throw-away realm
per test process, k5test, started only when a test asks for it).

The realm, its database, keytabs and ticket caches live in one temporary folder; the KDC
listens on 127.0.0.1 at a free port. Lab hosts are reached by loopback address with their FQDN
as the SPN host (`negotiate_hostname_override`), and krb5.conf turns off DNS canonicalisation,
so no name needs to resolve. Without the KDC packages every test here is skipped, with the
missing pieces named in the skip reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetcheck.lab.kdc import LAB_USER, LAB_USER_PASSWORD, LabRealm, RealmUnavailable, missing_requirements


@pytest.fixture(scope="session")
def lab_realm() -> Iterator[LabRealm]:
    missing = missing_requirements()
    if missing:
        pytest.skip("no MIT KDC on this machine (CI installs it in .ci/run): missing " + "; ".join(missing))
    try:
        realm = LabRealm.start()
    except RealmUnavailable as exc:
        pytest.skip(str(exc))
    realm.add_user(LAB_USER, LAB_USER_PASSWORD)
    try:
        yield realm
    finally:
        realm.stop()


@pytest.fixture
def krb_env(lab_realm: LabRealm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabRealm:
    """The realm's KRB5_* variables for this test, with an empty ticket cache of its own."""
    for name, value in lab_realm.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'ccache'}")
    return lab_realm
