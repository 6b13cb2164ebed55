"""pypsrp's WSMan() is built from many worker threads at once; its namespace registration must not race.

`xml.etree.ElementTree.register_namespace` rewrites a process-wide dict while it copies it.
pypsrp calls it for every WSMan it builds, so two threads building at once could end a host
with "RuntimeError: dictionary keys changed during iteration" (1 host in ~1,200 in the bench).
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor

import pytest

from fleetcheck.transports.base import Budget
from fleetcheck.transports.psrp import _BoundedWSMan


def test_wsman_objects_register_their_namespaces_one_thread_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ET.register_namespace
    inside = 0
    most = 0
    lock = threading.Lock()

    def watched(prefix: str, uri: str) -> None:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.001)  # widen the window a real race needs
        real(prefix, uri)
        with lock:
            inside -= 1

    monkeypatch.setattr(ET, "register_namespace", watched)

    def build(_: int) -> None:
        _BoundedWSMan(
            budget=Budget(30), server="127.0.0.1", port=5985, ssl=False, auth="ntlm",
            username="lab", password="Sentinel-Pw1", no_proxy=True,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(build, range(32)))
    assert most == 1
