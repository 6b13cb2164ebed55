"""The history database's schema, its migrations and how a connection is opened.

Migrations are append-only: `MIGRATIONS[i]` brings a database from `PRAGMA user_version` i to
i + 1, each in one transaction, so an interrupted upgrade leaves the old schema intact.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

from fleetcheck.errors import UserError

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 10.0


class HistoryError(UserError):
    """The history database cannot be used (unreadable, newer schema, unknown run)."""


def default_history_path() -> Path:
    """Where history lives unless `--history PATH` says otherwise."""
    return Path(platformdirs.user_data_dir("fleetcheck", appauthor=False)) / "history.sqlite3"



def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it commits first, and a migration must stay one transaction.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_1(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL UNIQUE,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            inventory TEXT NOT NULL DEFAULT '',
            playbooks TEXT NOT NULL DEFAULT '[]',
            check_ids TEXT NOT NULL DEFAULT '[]',
            interrupted INTEGER NOT NULL DEFAULT 0,
            fleetcheck_version TEXT NOT NULL DEFAULT '',
            hosts INTEGER NOT NULL,
            compliant INTEGER NOT NULL,
            noncompliant INTEGER NOT NULL,
            unchecked INTEGER NOT NULL,
            failing_checks INTEGER NOT NULL,
            waived_checks INTEGER NOT NULL,
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX runs_started ON runs (started_at, seq);
        CREATE TABLE host_results (
            run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
            host TEXT NOT NULL,
            address TEXT NOT NULL DEFAULT '',
            transport TEXT NOT NULL DEFAULT '',
            groups_json TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL,
            message TEXT NOT NULL DEFAULT '',
            error_type TEXT,
            started_at TEXT,
            duration_s REAL NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (run_seq, host)
        );
        CREATE TABLE texts (
            id INTEGER PRIMARY KEY,
            hash BLOB NOT NULL UNIQUE,
            body TEXT NOT NULL
        );
        CREATE TABLE check_results (
            run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
            host_id INTEGER NOT NULL,
            check_id INTEGER NOT NULL,
            status TEXT NOT NULL,
            message_id INTEGER NOT NULL,
            observed_id INTEGER NOT NULL,
            expected_id INTEGER NOT NULL,
            remediation_id INTEGER NOT NULL,
            severity_id INTEGER NOT NULL,
            tags_id INTEGER NOT NULL,
            waiver TEXT
        );
        CREATE UNIQUE INDEX check_results_streak ON check_results (host_id, check_id, run_seq);
        CREATE INDEX check_results_run ON check_results (run_seq);
        """
    )


#: MIGRATIONS[i] brings a database from user_version i to i + 1. Append, never edit.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_1]


def connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn, path)
    except (sqlite3.DatabaseError, OSError) as exc:
        raise HistoryError(
            f"{path}: cannot open the history database ({exc}). "
            "Move the file aside or pass --history with another path, or --no-history."
        ) from None
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise HistoryError(
            f"{path}: history schema version {version} is newer than this fleetcheck knows "
            f"({len(MIGRATIONS)}). Upgrade fleetcheck or use another --history path."
        )
    for target in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read inside the write lock: a concurrent opener may have migrated already.
            if conn.execute("PRAGMA user_version").fetchone()[0] != target:
                conn.execute("ROLLBACK")
                continue
            MIGRATIONS[target](conn)
            conn.execute(f"PRAGMA user_version = {target + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise



def iso(value: datetime | None) -> str | None:
    """UTC ISO-8601 with microseconds: sorts as text in SQL the way the times sort."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")
