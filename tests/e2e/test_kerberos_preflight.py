"""A run with Kerberos hosts on a machine that cannot speak Kerberos stops before any connection,
exit 2, with one message naming what to install."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, env_extra: dict[str, str], auth: str = "kerberos", transport: str = "psrp") -> tuple[int, str, int]:
    """(exit code, output, connections the host saw) for `fleetcheck run` over one host that
    accepts and drops every connection (a fast, countable failure)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    seen: list[int] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                seen.append(1)
                conn.close()

    threading.Thread(target=accept, daemon=True).start()
    inv = tmp_path / "inv.yml"
    inv.write_text(
        f"vars: {{transport: {transport}, scheme: http, auth: {auth}, username: alice@CORP.EXAMPLE, password_env: FC_PW}}\n"
        f"hosts:\n  web01: {{address: 127.0.0.1, port: {port}, timeout: 20}}\n"
    )
    env = {**os.environ, "FC_PW": "not-a-real-secret", "PYTHONPATH": os.pathsep.join([*env_extra.pop("PYTHONPATH_FIRST", "").split(os.pathsep), str(REPO)]).strip(os.pathsep), **env_extra}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "fleetcheck", "run", str(inv), "--no-history", "--journal", str(tmp_path / "j.jsonl")],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
        )
    finally:
        listener.close()
    return proc.returncode, proc.stdout + proc.stderr, len(seen)


def test_no_krb5_conf(tmp_path: Path) -> None:
    code, out, seen = _run(tmp_path, {"KRB5_CONFIG": str(tmp_path / "missing-krb5.conf")})
    assert (code, seen) == (2, 0), out
    assert "missing-krb5.conf does not exist" in out and "pip install 'fleetcheck[kerberos]'" in out
    assert "web01" in out and "Traceback" not in out


def test_no_gssapi(tmp_path: Path) -> None:
    """gssapi made unimportable (a stub that raises ImportError first on the path)."""
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "gssapi.py").write_text("raise ImportError('no gssapi here')\n")
    conf = tmp_path / "krb5.conf"
    conf.write_text("[libdefaults]\n default_realm = CORP.EXAMPLE\n")
    code, out, seen = _run(tmp_path, {"KRB5_CONFIG": str(conf), "PYTHONPATH_FIRST": str(stub)})
    assert (code, seen) == (2, 0), out
    assert "the Python package gssapi" in out and "apt-get install krb5-user libkrb5-dev" in out


@pytest.mark.parametrize("auth", ["negotiate", "ntlm"])
def test_negotiate_and_ntlm_hosts_need_no_kerberos(tmp_path: Path, auth: str) -> None:
    code, out, seen = _run(tmp_path, {"KRB5_CONFIG": str(tmp_path / "missing-krb5.conf")}, auth=auth)
    assert "does not exist" not in out and code == 3 and seen >= 1, out  # it did try the host
