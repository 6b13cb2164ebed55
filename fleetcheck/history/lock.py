"""One fleetcheck run per history file at a time: an OS lock the kernel drops when its holder dies."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from fleetcheck.history.schema import HistoryError, iso


class RunLockedError(HistoryError):
    """Another fleetcheck run holds the history lock."""


def _lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


@contextlib.contextmanager
def run_lock(db_path: Path | str) -> Iterator[Path]:
    """Hold an exclusive, non-blocking OS lock for one run; refuse a second concurrent run.

    The kernel drops the lock when the holder dies (even by kill -9), so a stale lock file
    never blocks the next night. Yields the lock file's path.
    """
    lock = _lock_path(Path(db_path))
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise HistoryError(
            f"{lock}: cannot create the run lock ({exc.strerror}). "
            "Pass --history with a writable path, or --no-history."
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            raise RunLockedError(
                f"another fleetcheck run is using {db_path}{holder}. "
                "Wait for it to finish (or stop it), or point this run at another --history file."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": iso(datetime.now(UTC))}).encode(), 0)
        try:
            yield lock
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return ""
    if not isinstance(info, dict) or "pid" not in info:
        return ""
    return f" (held by PID {info['pid']} since {info.get('since', '?')})"
