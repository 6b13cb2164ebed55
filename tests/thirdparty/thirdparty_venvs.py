"""Virtual environments for clients nobody here wrote, created by the tests and cached.

Each client gets its own environment (their pins conflict with ours: pypsrp 1.0 beta vs 0.9,
ansible-core's own requirements). An environment is built once under
`$FLEETCHECK_THIRDPARTY_CACHE` (default `~/.cache/fleetcheck-thirdparty`) and reused while its
requirement list is unchanged. When it cannot be built (no registry, no wheel for this Python),
`venv_python` skips the test with pip's last lines as the visible reason; CI, which can reach
the registry, builds them.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLIENTS: dict[str, list[str]] = {
    "ansible": ["ansible-core>=2.16,<2.22", "pywinrm>=0.4.3", "pypsrp>=0.8,<1"],
    "pypsrp-1.0": ["pypsrp==1.0.0b1"],
    "awinrm": ["awinrm>=0.1.2,<0.2"],
}
INSTALL_TIMEOUT = 600


def cache_root() -> Path:
    return Path(
        os.environ.get("FLEETCHECK_THIRDPARTY_CACHE", Path.home() / ".cache" / "fleetcheck-thirdparty")
    )


def _path(name: str) -> Path:
    key = hashlib.sha256(("\n".join(CLIENTS[name]) + sys.version).encode()).hexdigest()[:12]
    return cache_root() / f"{name}-{key}"


def build(name: str) -> tuple[Path | None, str]:
    """(python of the environment, "") or (None, why it could not be built)."""
    root = _path(name)
    python = root / "bin" / "python"
    ready = root / ".ready"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two xdist workers never build the same environment
        if ready.exists():
            return python, ""
        failed = root.parent / f"{root.name}.failed"
        if failed.exists() and not os.environ.get("CI"):
            return None, failed.read_text(encoding="utf-8")
        try:
            subprocess.run(
                [sys.executable, "-m", "venv", "--clear", str(root)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            proc = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *CLIENTS[name]],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            why = f"{name}: cannot create its virtualenv ({type(exc).__name__})"
            failed.write_text(why, encoding="utf-8")
            return None, why
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            why = f"{name}: pip install {' '.join(CLIENTS[name])} failed: {tail}"
            failed.write_text(why, encoding="utf-8")
            return None, why
        ready.write_text("\n".join(CLIENTS[name]), encoding="utf-8")
        failed.unlink(missing_ok=True)
        return python, ""


def venv_python(name: str) -> Path:
    python, why = build(name)
    if python is None:
        pytest.skip(why)
    return python


if __name__ == "__main__":  # build all: python tests/thirdparty/thirdparty_venvs.py
    for client in CLIENTS:
        print(client, build(client))
