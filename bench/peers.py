"""The tools our users would otherwise run, in a venv of their own (`bench/.peers-venv`).

The peers never share the project's interpreter or packages: the benchmark creates the
venv on first use with the pinned versions below, so their CPU, memory and dependency
versions are theirs alone.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BENCH_DIR = Path(__file__).resolve().parent
PEERS_VENV = BENCH_DIR / ".peers-venv"
PEER_PACKAGES = ("ansible-core>=2.17,<2.20", "pypsrp==0.9.1", "pywinrm==0.5.0", "py-spy>=0.3.14")

#: Ansible's own PowerShell prefix: a command starting with it is run as it is by both the
#: winrm and the psrp connection (no `exit $LASTEXITCODE` suffix, no double encoding).
ANSIBLE_PS_PREFIX = "PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand"


@dataclass(frozen=True)
class Target:
    """One lab host as a peer needs it."""

    name: str
    address: str
    port: int
    scheme: str
    username: str
    auth: str = "negotiate"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "scheme": self.scheme,
            "username": self.username,
            "auth": self.auth,
        }


def peers_python() -> Path:
    return PEERS_VENV / "bin" / "python"


def ensure_peers_venv(log: Any = print) -> Path:
    """Create the peers' venv once (a few minutes the first time), then reuse it."""
    stamp = PEERS_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == "\n".join(PEER_PACKAGES):
        return peers_python()
    log(f"creating the peers' venv in {PEERS_VENV} ({', '.join(PEER_PACKAGES)})")
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    pip = [str(peers_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *PEER_PACKAGES], check=True)
    stamp.write_text("\n".join(PEER_PACKAGES))
    return peers_python()


def encoded_powershell(script: str) -> str:
    """A command line Ansible passes through unchanged on both Windows connections."""
    return f"{ANSIBLE_PS_PREFIX} {base64.b64encode(script.encode('utf-16-le')).decode('ascii')}"


def ansible_inventory(targets: list[Target], connection: str) -> dict[str, Any]:
    """An Ansible YAML inventory for the lab hosts; the password stays in the environment."""
    if connection not in ("winrm", "psrp"):
        raise ValueError(f"unknown Ansible connection {connection!r}")
    first = targets[0]
    common: dict[str, Any] = {
        "ansible_connection": connection,
        "ansible_user": first.username,
        "ansible_password": "{{ lookup('env', 'FLEETCHECK_LAB_PASSWORD') }}",
        "ansible_port": first.port,
    }
    if connection == "winrm":
        common |= {
            "ansible_winrm_transport": "ntlm",
            "ansible_winrm_scheme": first.scheme,
            "ansible_winrm_server_cert_validation": "ignore",
        }
    else:
        common |= {
            "ansible_psrp_protocol": first.scheme,
            "ansible_psrp_auth": "ntlm",
            "ansible_psrp_cert_validation": "ignore",
        }
    hosts: dict[str, Any] = {}
    for t in targets:
        entry: dict[str, Any] = {"ansible_host": t.address}
        if t.port != first.port:
            entry["ansible_port"] = t.port
        hosts[t.name] = entry
    return {"all": {"vars": common, "hosts": hosts}}


def write_ansible_inventory(path: Path, targets: list[Target], connection: str) -> Path:
    path.write_text(yaml.safe_dump(ansible_inventory(targets, connection), sort_keys=False))
    return path


def ansible_argv(inventory: Path, forks: int, command: str) -> list[str]:
    """Ad-hoc `raw` on every host of the inventory, one line per host."""
    ansible = PEERS_VENV / "bin" / "ansible"
    return [str(ansible), "all", "-i", str(inventory), "-m", "raw", "-a", command, "-f", str(forks), "-o"]


def ansible_env(base: dict[str, str], work: Path) -> dict[str, str]:
    env = dict(base)
    env |= {
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_TIMEOUT": "30",
    }
    return env


_ANSIBLE_LINE = re.compile(r"^(?P<host>\S+) \| (?P<state>[A-Z]+)")


def count_ansible_results(stdout: str) -> dict[str, int]:
    """Hosts per Ansible state (CHANGED/SUCCESS = ok; FAILED, UNREACHABLE) from `-o` output."""
    counts: dict[str, int] = {}
    for line in stdout.splitlines():
        match = _ANSIBLE_LINE.match(line)
        if match:
            counts[match["state"]] = counts.get(match["state"], 0) + 1
    return counts


def pypsrp_argv(
    targets_file: Path,
    mode: str,
    *,
    forks: int = 50,
    limit: int = 0,
    script: str = "hostname",
    bundle_script: Path | None = None,
    bundle_args: Path | None = None,
) -> list[str]:
    argv = [
        str(peers_python()),
        str(BENCH_DIR / "peer_pypsrp.py"),
        "--targets",
        str(targets_file),
        "--mode",
        mode,
        "--forks",
        str(forks),
        "--limit",
        str(limit),
        "--script",
        script,
    ]
    if bundle_script is not None and bundle_args is not None:
        argv += ["--bundle-script", str(bundle_script), "--bundle-args", str(bundle_args)]
    return argv


def write_targets(path: Path, targets: list[Target]) -> Path:
    path.write_text(json.dumps([t.as_dict() for t in targets]))
    return path


def parse_peer_json(stdout: str) -> dict[str, Any]:
    """The last JSON line a pypsrp peer printed."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise ValueError("the peer printed no result line")
