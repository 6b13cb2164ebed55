"""A throw-away MIT Kerberos realm for the lab: a real `krb5kdc` on a loopback port.

Built on `k5test` (python-gssapi's own test harness): the database, `krb5.conf`, keytabs and
ticket caches all live in one temporary folder, removed by `stop()`. The KDC listens on
127.0.0.1 only, on a port found free at start.

Lab host names never need to resolve for Kerberos: `krb5.conf` turns off DNS
canonicalisation and reverse lookups, so a client asks for exactly `WSMAN/<name>` where
`<name>` is the host name it was given or its SPN host override. The lab connects by
loopback address and sets that override to the host's FQDN, the way Ansible's
`negotiate_hostname_override` is used behind a load balancer.

    realm = LabRealm.start()
    keytab = realm.add_host("lab-0001.fleetcheck.test")   # host/, HTTP/ and WSMAN/ keys
    realm.add_user("alice", "Secret-1")
    os.environ.update(realm.env)                         # KRB5_CONFIG, KRB5CCNAME, ...
    ...
    realm.stop()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REALM = "FLEETCHECK.TEST"
DOMAIN = "fleetcheck.test"
#: The domain user every lab realm starts with (tests and benchmarks log on as this account).
LAB_USER = "alice"
LAB_USER_PASSWORD = "Alice-Passw0rd!"
#: A computer account's SPNs: `host/` on every one (pypsrp's default service), `HTTP/` (pywinrm's)
#: and `WSMAN/` as WinRM registers. MIT is case-sensitive where AD is not, so each in the case clients send.
SERVICES = ("host", "HTTP", "WSMAN")
#: Debian packages the realm needs (and `libkrb5-dev` to build the `gssapi` wheel).
SYSTEM_PACKAGES = ("krb5-kdc", "krb5-admin-server", "krb5-user", "libkrb5-dev")
#: libfaketime (Debian `faketime`) runs the KDC with a skewed clock for the clock-skew test.
FAKETIME_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1")
_TOOLS = ("/usr/sbin/krb5kdc", "/usr/sbin/kdb5_util", "/usr/sbin/kadmin.local", "/usr/bin/kinit")


class RealmUnavailable(RuntimeError):
    """The machine lacks the KDC packages or the Python libraries; the message says which."""


def missing_requirements() -> list[str]:
    """What this machine lacks to run a lab realm (empty when everything is there)."""
    missing = [f"{tool} (Debian: {' '.join(SYSTEM_PACKAGES)})" for tool in _TOOLS if not os.access(tool, os.X_OK)]
    for module in ("k5test", "gssapi", "krb5"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python module {module} (pip install 'fleetcheck[lab-kerberos]')")
    return missing


def _faketime_lib() -> str:
    lib = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
    if lib is None:
        raise RealmUnavailable("libfaketime is not installed (Debian package faketime)")
    return lib


def _free_port() -> int:
    """A port free on 127.0.0.1 for both TCP and UDP (the KDC serves both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise OSError("no free loopback port for the KDC")


def _krb5_conf() -> dict[str, Any]:
    return {
        "libdefaults": {
            "default_realm": "$realm",
            "dns_lookup_kdc": "false",
            "dns_lookup_realm": "false",
            "dns_canonicalize_hostname": "false",
            "rdns": "false",
            "forwardable": "true",
            "udp_preference_limit": "1",  # TCP, as Windows clients use for large tickets
            "kdc_timesync": "0",  # no silent correction from the KDC's clock: skew shows as skew
        },
        "realms": {"$realm": {"kdc": "127.0.0.1:$port0", "admin_server": "127.0.0.1:$port1", "kpasswd_server": "127.0.0.1:$port2"}},
        "domain_realm": {f".{DOMAIN}": "$realm", DOMAIN: "$realm"},
    }


def _kdc_conf() -> dict[str, Any]:
    # Loopback only: an address in kdc_ports/kdc_tcp_ports replaces the wildcard listener.
    return {"realms": {"$realm": {"kdc_ports": "127.0.0.1:$port0", "kdc_tcp_ports": "127.0.0.1:$port0"}}}


@dataclass
class LabRealm:
    """A running realm. `env` holds the variables a client or acceptor in this realm needs."""

    k5: Any
    realm: str = REALM
    keytabs: dict[str, str] = field(default_factory=dict)
    kdc_running: bool = True

    @classmethod
    def start(cls, realm: str = REALM, attempts: int = 5) -> LabRealm:
        """Create the database and start the KDC; raises `RealmUnavailable` on a bare machine."""
        missing = missing_requirements()
        if missing:
            raise RealmUnavailable("cannot run a lab KDC, missing: " + "; ".join(missing))
        from k5test import K5Realm

        last: Exception | None = None
        for _ in range(attempts):  # the port may be taken between the probe and the KDC's bind
            try:
                k5 = K5Realm(
                    realm=realm,
                    portbase=_free_port(),
                    krb5_conf=_krb5_conf(),
                    kdc_conf=_kdc_conf(),
                    create_user=False,
                    create_host=False,
                    get_creds=False,
                )
            except Exception as exc:
                last = exc
                continue
            return cls(k5=k5, realm=realm)
        raise RealmUnavailable(f"the lab KDC did not start: {last}")

    # -- paths and environment ---------------------------------------------------------------
    @property
    def tmpdir(self) -> Path:
        return Path(self.k5.tmpdir)

    @property
    def kdc_port(self) -> int:
        return int(self.k5.portbase)

    @property
    def krb5_conf(self) -> str:
        return str(self.k5.env["KRB5_CONFIG"])

    @property
    def env(self) -> dict[str, str]:
        """KRB5_CONFIG, KRB5_KDC_PROFILE, KRB5CCNAME, KRB5RCACHEDIR (no default keytab: hosts have their own)."""
        env = {k: v for k, v in self.k5.env.items() if k.startswith("KRB5") and k not in ("KRB5_KTNAME", "KRB5_CLIENT_KTNAME")}
        env["KRB5_KTNAME"] = str(self.tmpdir / "no-default.keytab")
        env["KRB5_CLIENT_KTNAME"] = str(self.tmpdir / "no-default-client.keytab")
        return env

    def principal(self, name: str) -> str:
        return name if "@" in name else f"{name}@{self.realm}"

    # -- principals ----------------------------------------------------------------------------
    def kadmin(self, *args: str) -> str:
        """Run one kadmin.local query; returns its output (raises when kadmin.local fails)."""
        if any('"' in a or "\n" in a for a in args):
            raise ValueError("kadmin arguments cannot hold double quotes or newlines")
        # kadmin's own parser knows double quotes only (k5test's shell quoting reaches it verbatim).
        query = " ".join(f'"{a}"' if (not a or any(c in a for c in " '\\")) else a for a in args)
        out = self.k5.run([shutil.which("kadmin.local") or "/usr/sbin/kadmin.local", "-q", query])
        return out.decode(errors="replace") if isinstance(out, bytes) else str(out)

    def add_user(self, name: str, password: str, *options: str) -> str:
        """A user principal that, as in Active Directory, must pre-authenticate."""
        principal = self.principal(name)
        self.kadmin("addprinc", "+requires_preauth", *options, "-pw", password, principal)
        return principal

    def delete_principal(self, name: str) -> None:
        self.kadmin("delprinc", "-force", self.principal(name))

    def add_host(self, fqdn: str, services: tuple[str, ...] = SERVICES) -> str:
        """Register `service/fqdn` for each service (a computer account's SPNs); returns the host's keytab."""
        fqdn = fqdn.lower()
        keytab = self.tmpdir / f"{fqdn}.keytab"
        for service in services:
            principal = self.principal(f"{service}/{fqdn}")
            self.kadmin("addprinc", "-randkey", principal)
            self.k5.extract_keytab(principal, str(keytab))
        self.keytabs[fqdn] = str(keytab)
        return str(keytab)

    def client_keytab(self, name: str) -> str:
        """A keytab holding the user's keys (kept at their current version, the password stays valid)."""
        path = self.tmpdir / f"{name.split('@')[0]}.client.keytab"
        self.k5.extract_keytab(self.principal(name), str(path))
        return str(path)

    def kinit(self, name: str, password: str, ccache: str | Path, *flags: str, clock_offset: int = 0) -> Path:
        """A ticket cache for `name` at `ccache` (FILE:), as `kinit` would leave it; `clock_offset`
        runs kinit with a shifted clock (inside `kdc_clock_offset` of the same amount)."""
        env = dict(self.k5.env, KRB5CCNAME=f"FILE:{ccache}")
        if clock_offset:
            env.update(LD_PRELOAD=_faketime_lib(), FAKETIME=f"{clock_offset:+d}s")
        done = subprocess.run(
            [shutil.which("kinit") or "/usr/bin/kinit", *flags, self.principal(name)],
            input=(password + "\n").encode(),
            env=env,
            capture_output=True,
            timeout=30,
        )
        if done.returncode:
            raise RuntimeError(f"kinit {name} failed: {done.stderr.decode(errors='replace').strip()}")
        return Path(ccache)

    # -- the KDC -------------------------------------------------------------------------------
    def stop_kdc(self) -> None:
        if self.kdc_running:
            self.k5.stop_kdc()
            self.kdc_running = False

    def start_kdc(self) -> None:
        if not self.kdc_running:
            self.k5.start_kdc()
            self.kdc_running = True

    @contextlib.contextmanager
    def kdc_stopped(self) -> Iterator[None]:
        """The KDC down for the block, up again after (other tests share the realm)."""
        self.stop_kdc()
        try:
            yield
        finally:
            self.start_kdc()

    @contextlib.contextmanager
    def kdc_clock_offset(self, seconds: int) -> Iterator[None]:
        """The KDC restarted with its clock `seconds` ahead (libfaketime) for the block."""
        lib = _faketime_lib()
        self.stop_kdc()
        self.k5.start_kdc(env=dict(self.k5.env, LD_PRELOAD=lib, FAKETIME=f"{seconds:+d}s"))
        self.kdc_running = True
        try:
            yield
        finally:
            self.stop_kdc()
            self.start_kdc()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.k5.stop()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
