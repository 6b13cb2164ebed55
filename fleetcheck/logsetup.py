"""`-v` / `-vv`: how much fleetcheck logs to stderr, never a secret.

Default: warnings only. `-v`: fleetcheck's own progress (INFO: connections, retries, timings).
`-vv`: fleetcheck at DEBUG, the client libraries (pypsrp, urllib3, asyncssh) at INFO. Loggers
that print NTLM/SPNEGO tokens at DEBUG are capped at INFO whatever the level, and the library
loggers never go below INFO: their DEBUG output can carry request bodies.
"""

from __future__ import annotations

import logging
import sys

LIBRARY_LOGGERS = ("pypsrp", "psrpcore", "winrm", "urllib3", "asyncssh", "httpx", "h11")
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def level_for(verbosity: int) -> int:
    """0 -> WARNING, 1 -> INFO, 2 or more -> DEBUG (fleetcheck's own loggers)."""
    return logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG


_installed: list[logging.Handler] = []


def configure(verbosity: int, stream: object = None) -> logging.Handler | None:
    """Install one stderr handler on the root logger for `verbosity` (replacing the one a previous
    call installed, so a process running several commands does not print each record twice).

    Without `-v` nothing is changed: Python's default shows warnings and errors on stderr, and a
    library caller's own logging configuration stays as it is.
    """
    from fleetcheck.transports.base import quiet_token_loggers

    if verbosity <= 0:
        return None
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    while _installed:
        root.removeHandler(_installed.pop())
    root.addHandler(handler)
    _installed.append(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("fleetcheck").setLevel(level_for(verbosity))
    library = logging.INFO if verbosity >= 2 else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library)
    quiet_token_loggers()
    return handler
