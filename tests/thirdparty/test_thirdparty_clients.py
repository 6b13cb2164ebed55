"""Clients nobody here wrote, pointed at the lab: each must get the answer Windows would give.

Every client runs in its own virtual environment (`thirdparty_venvs`), as a subprocess with a
hard time limit, against a lab host served by this test's event loop on 127.0.0.1. A client
that cannot be installed is skipped with pip's reason; none may hang (each run is killed after
`CLIENT_TIMEOUT` seconds and the test fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from thirdparty_venvs import venv_python

from fleetcheck.lab.host import LabHost
from fleetcheck.lab.hostserver import close_shells, start_winrm_listener, stop_listener
from fleetcheck.lab.machine import LabUser, MachineState
from fleetcheck.lab.tls import LabTLS

USER = "fleetcheck"
PASSWORD = "Lab-Passw0rd!"
HOSTNAME = "SRV01"
CLIENT_TIMEOUT = 120.0

pytestmark = pytest.mark.timeout(400)


@dataclass
class Lab:
    host: LabHost
    port: int
    https: bool
    ca_path: str | None


@contextlib.asynccontextmanager
async def lab(tmp_path: Path, *, https: bool = False) -> AsyncIterator[Lab]:
    host = LabHost(
        name="srv01",
        machine=MachineState(hostname=HOSTNAME, users=[LabUser(name=USER, password=PASSWORD)]),
    )
    ctx = der = None
    ca_path = None
    if https:
        tls = LabTLS()
        ctx, der = tls.server_context("127.0.0.1")
        ca_path = str(tls.write_ca(tmp_path / "lab-ca.pem"))
    server = await start_winrm_listener(host, "127.0.0.1", 0, tls=ctx, cert_der=der)
    try:
        yield Lab(host, server.sockets[0].getsockname()[1], https, ca_path)
    finally:
        await stop_listener(server)
        close_shells(host)


async def run(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run a client to completion within CLIENT_TIMEOUT (killed and failed otherwise)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLIENT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{argv[0]} hung for {CLIENT_TIMEOUT:g} s against the lab")
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


# --- Ansible ----------------------------------------------------------------------------------


def _ansible_env(tmp_path: Path) -> dict[str, str]:
    return {
        "HOME": str(tmp_path),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"),
    }


def _inventory(tmp_path: Path, connection: str, port: int) -> Path:
    common = f"ansible_host=127.0.0.1 ansible_port={port} ansible_user={USER} ansible_password={PASSWORD}"
    if connection == "psrp":
        extra = "ansible_connection=psrp ansible_psrp_protocol=http ansible_psrp_auth=ntlm"
    else:
        extra = "ansible_connection=winrm ansible_winrm_scheme=http ansible_winrm_transport=ntlm"
    path = tmp_path / "inventory.ini"
    path.write_text(f"[windows]\nsrv01 {common} {extra}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("connection", ["psrp", "winrm"])
@pytest.mark.parametrize(
    ("command", "expected"), [("hostname", HOSTNAME), ("whoami", f"{HOSTNAME}\\{USER}".lower())]
)
def test_ansible_raw(connection: str, command: str, expected: str, tmp_path: Path) -> None:
    python = venv_python("ansible")
    ansible = python.parent / "ansible"

    async def go() -> tuple[int, str, str]:
        async with lab(tmp_path) as endpoint:
            inv = _inventory(tmp_path, connection, endpoint.port)
            return await run(
                [str(ansible), "windows", "-o", "-i", str(inv), "-m", "raw", "-a", command],
                env=_ansible_env(tmp_path),
                cwd=tmp_path,
            )

    code, out, err = asyncio.run(go())
    assert code == 0, f"ansible failed ({code}): {out[-2000:]} {err[-2000:]}"
    # one-line ad-hoc output: `srv01 | CHANGED | rc=0 | (stdout) SRV01`
    line = next(ln for ln in out.splitlines() if ln.startswith("srv01 |"))
    assert "| rc=0 |" in line, line
    # the one-line form escapes the console's CRLF, as it does for a Windows host
    assert line.split("(stdout)", 1)[1].strip().replace("\\r\\n", "") == expected, line


# --- pypsrp 1.0 (async API) -----------------------------------------------------------------------

_PYPSRP_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import psrp

    async def main():
        info = psrp.WSManInfo("127.0.0.1", scheme="http", port=int(sys.argv[1]), auth="ntlm",
                              username=sys.argv[2], password=sys.argv[3], read_timeout=20, connection_timeout=10)
        out = {}
        async with psrp.AsyncRunspacePool(info) as pool:
            ps = psrp.AsyncPowerShell(pool)
            ps.add_script("hostname")
            out["hostname"] = [str(o) for o in await ps.invoke()]
            ps = psrp.AsyncPowerShell(pool)
            ps.add_script("Get-NoSuchThing")
            await ps.invoke()
            out["error"] = [str(e) for e in ps.streams.error]
            out["available"] = await pool.get_available_runspaces()
            out["set_max"] = await pool.set_max_runspaces(4)
            out["set_min"] = await pool.set_min_runspaces(2)
            out["available_after"] = await pool.get_available_runspaces()
            out["reset"] = await pool.reset_runspace_state()
            meta = psrp.AsyncCommandMetaPipeline(pool, name="Get-Serv*")
            out["metadata"] = [str(getattr(m, "Name", "")) or f"count={m.Count}" for m in await meta.invoke()]
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_pypsrp_1_0_async_api(tmp_path: Path) -> None:
    python = venv_python("pypsrp-1.0")
    script = tmp_path / "client.py"
    script.write_text(_PYPSRP_SCRIPT, encoding="utf-8")

    async def go() -> tuple[int, str, str]:
        async with lab(tmp_path) as endpoint:
            return await run([str(python), str(script), str(endpoint.port), USER, PASSWORD])

    code, out, err = asyncio.run(go())
    assert code == 0, f"pypsrp 1.0 failed: {err[-3000:]}"
    got = json.loads(out.strip().splitlines()[-1])
    assert got["hostname"] == [HOSTNAME]
    assert got["error"] and "is not recognized" in got["error"][0]
    assert got["available"] == 1
    assert got["set_max"] is True and got["set_min"] is True
    assert got["available_after"] == 4
    assert got["reset"] is True
    assert got["metadata"] == ["count=1", "Get-Service"]  # Windows sends the count first, then each command


# --- awinrm ---------------------------------------------------------------------------------------

_AWINRM_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, ssl, sys
    import awinrm

    async def main():
        https = sys.argv[4] == "https"
        url = f"{sys.argv[4]}+ntlm-password://{sys.argv[2]}:{sys.argv[3]}@127.0.0.1:{sys.argv[1]}"
        kwargs = {"transport_type": "ssl", "ssl_ctx": ssl.create_default_context(cafile=sys.argv[5])} if https else {}
        out = {}
        async with awinrm.Session(url, timeout=40, **kwargs) as session:
            stdout, stderr, code = await session.run_cmd("hostname")
            out["cmd"] = [code, stdout.decode().strip()]
            stdout, stderr, code = await session.run_ps("whoami")
            out["ps"] = [code, stdout.decode().strip()]
        print(json.dumps(out))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_awinrm(https: bool, tmp_path: Path) -> None:
    python = venv_python("awinrm")
    script = tmp_path / "client.py"
    script.write_text(_AWINRM_SCRIPT, encoding="utf-8")

    async def go() -> tuple[int, str, str]:
        async with lab(tmp_path, https=https) as endpoint:
            scheme = "https" if https else "http"
            ca = endpoint.ca_path or ""
            # awinrm's keep-alive transport ignores ssl_ctx; httpx reads SSL_CERT_FILE for it
            env = {"SSL_CERT_FILE": ca} if ca else None
            return await run(
                [str(python), str(script), str(endpoint.port), USER, PASSWORD, scheme, ca], env=env
            )

    code, out, err = asyncio.run(go())
    assert code == 0, f"awinrm failed: {err[-3000:]}"
    got = json.loads(out.strip().splitlines()[-1])
    assert got["cmd"] == [0, HOSTNAME]
    assert got["ps"] == [0, f"{HOSTNAME}\\{USER}".lower()]
