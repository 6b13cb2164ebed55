"""ansible-core in a virtualenv of its own, created once and cached by version under .venv-ansible/."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE_CORE = "ansible-core>=2.19,<2.20"
ROOT = Path(__file__).resolve().parents[2]


def _venv_dir() -> Path:
    given = os.environ.get("FLEETCHECK_ANSIBLE_VENV")
    if given:
        return Path(given)
    key = f"ansible-core-2.19-py{sys.version_info.major}.{sys.version_info.minor}"
    return ROOT / ".venv-ansible" / key


@pytest.fixture(scope="session")
def ansible_bin() -> Path:
    """The venv's bin/ with ansible-inventory; the tests skip, saying why, when it cannot be made."""
    venv = _venv_dir()
    binary = venv / "bin"
    if os.environ.get("FLEETCHECK_ANSIBLE_VENV") and (binary / "ansible-inventory").exists():
        return binary  # one the developer made: used as it is, never rebuilt
    stamp = venv / ".installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers: one creates the venv, the others wait for it
        if stamp.exists() and (binary / "ansible-inventory").exists():
            return binary
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True, timeout=120)
            subprocess.run([str(binary / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", ANSIBLE_CORE],
                           check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            pytest.skip(f"cannot install {ANSIBLE_CORE} into {venv}: {exc} {detail.decode(errors='replace')[-300:]}")
        stamp.write_text(ANSIBLE_CORE)
    return binary
