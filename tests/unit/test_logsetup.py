"""-v / -vv levels: fleetcheck's own detail, libraries held at INFO, token loggers never at DEBUG."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from fleetcheck import logsetup


@pytest.fixture
def restore() -> Iterator[None]:
    names = ["", "fleetcheck", "urllib3", "spnego", *logsetup.LIBRARY_LOGGERS]
    saved = {n: logging.getLogger(n).level for n in names}
    handlers = list(logging.getLogger().handlers)
    yield
    for n, level in saved.items():
        logging.getLogger(n).setLevel(level)
    logging.getLogger().handlers[:] = handlers


def test_without_verbose_nothing_changes(restore: None) -> None:
    before = logging.getLogger("fleetcheck").level, list(logging.getLogger().handlers)
    assert logsetup.configure(0) is None
    assert (logging.getLogger("fleetcheck").level, list(logging.getLogger().handlers)) == before


@pytest.mark.parametrize(("verbosity", "info", "debug", "lib_info"), [(1, True, False, False), (2, True, True, True)])
def test_levels(restore: None, verbosity: int, info: bool, debug: bool, lib_info: bool) -> None:
    out = io.StringIO()
    logsetup.configure(verbosity, out)
    logging.getLogger("fleetcheck.runner").info("host LAB-0001 connected")
    logging.getLogger("fleetcheck.runner").debug("probe bundle 12 kB")
    logging.getLogger("urllib3.connectionpool").info("Starting new HTTP connection")
    logging.getLogger("urllib3.connectionpool").debug("body bytes")
    logging.getLogger("spnego._ntlm").debug("NTLM token TlRMTVNTUAAB")
    text = out.getvalue()
    assert ("LAB-0001 connected" in text) == info
    assert ("probe bundle" in text) == debug
    assert ("Starting new HTTP" in text) == lib_info
    assert "body bytes" not in text and "TlRMTVNTUAAB" not in text
