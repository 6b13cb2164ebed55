"""Settings shared by every test folder.

Kerberos stays inside the tests that ask for it. Installing Debian's krb5 packages (as CI does
for the Kerberos tests) writes an /etc/krb5.conf whose default realm names MIT's public KDCs;
a Negotiate login that has gssapi available would then try Kerberos first and wait on DNS
for KDCs this machine can never reach. Every test process gets a krb5.conf with no realm and
no DNS look-ups instead, so Negotiate falls back to NTLM at once, as it does on a host outside
any domain. The Kerberos tests set their own KRB5_CONFIG for their throw-away realm.

`fleet_hosts` and `playbooks` serve every test that runs a LabFleet (end to end, robustness).

The Kerberos tests ask for `lab_realm` / `krb_env`: one throw-away MIT realm per test process
(k5test, started only when a test asks for it), its KDC on 127.0.0.1 at a free port. Lab hosts
are reached by loopback address with their FQDN as the SPN host (`negotiate_hostname_override`),
and the realm's krb5.conf turns off DNS canonicalisation, so no name needs to resolve. Without
the KDC packages those tests are skipped, with the missing pieces named in the skip reason.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from fleetcheck.inventory.model import Host
from fleetcheck.lab.fleet import LabFleet
from fleetcheck.lab.kdc import LAB_USER, LAB_USER_PASSWORD, LabRealm, RealmUnavailable, missing_requirements

_NO_REALM = """[libdefaults]
    dns_lookup_kdc = false
    dns_lookup_realm = false
    rdns = false
"""


def _isolate_kerberos() -> None:
    conf = Path(tempfile.gettempdir()) / f"fleetcheck-tests-krb5-{os.getuid()}.conf"
    if not conf.exists() or conf.read_text() != _NO_REALM:
        staged = conf.with_name(f"{conf.name}.{os.getpid()}")
        staged.write_text(_NO_REALM)
        os.replace(staged, conf)  # parallel test workers never read a half-written file
    os.environ["KRB5_CONFIG"] = str(conf)
    os.environ.setdefault("KRB5CCNAME", f"FILE:{conf.with_suffix('.ccache')}")


_isolate_kerberos()


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


def load_fleet_hosts(fleet: LabFleet, tmp_path: Path, transport: str = "psrp", **kw: Any) -> list[Host]:
    """Write the fleet's inventory, load it the way `fleetcheck run` does, fill the lab's password."""
    from fleetcheck.inventory.loader import load_credentials, load_inventory
    from fleetcheck.lab.fleet import PASSWORD_ENV

    inv = fleet.write_inventory(tmp_path / f"lab-{transport}.yml", transport=transport, **kw)  # type: ignore[arg-type]
    hosts = load_inventory(inv).hosts
    return load_credentials(hosts, environ={PASSWORD_ENV: fleet.password})


@pytest.fixture
def fleet_hosts() -> Callable[..., list[Host]]:
    """`fleet_hosts(fleet, tmp_path, transport="psrp")` -> the fleet's hosts, passwords filled."""
    return load_fleet_hosts


@pytest.fixture
def playbooks() -> Sequence[Any]:
    """The built-in System State Backup playbook."""
    from fleetcheck.playbook import load_playbook

    return [load_playbook("system-state-backup")]
