"""Nothing secret or accidental is tracked: no Kerberos ticket cache, no keytab, no unprintable file name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: MIT credential cache (FILE: ccache v4) and keytab (v2) magic numbers.
SECRET_MAGIC = (b"\x05\x04", b"\x05\x02")


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [name for name in out.decode("utf-8", "surrogateescape").split("\0") if name]


def test_no_tracked_file_is_a_ticket_cache_or_keytab_or_has_an_unprintable_name() -> None:
    bad = []
    for name in _tracked():
        if not name.isprintable() or "\udc80" <= max(name) <= "\udcff":
            bad.append(repr(name))
            continue
        path = ROOT / name
        if path.is_file():
            with path.open("rb") as fh:
                if fh.read(2) in SECRET_MAGIC:
                    bad.append(name)
    assert not bad, f"tracked by accident: {bad}"
