"""The audit trail of `fleetcheck fix`: every change tried, in the history database.

One row per change: the fix run, the host, the check, what it was and what it became, who ran
it, when, and the result (changed, unchanged, failed, not run) with the check's status before
and after the re-check. Rows are written per batch in one transaction, so an interrupted fix
keeps what was done. Only what the plan and the host reported is stored: never a credential
(error texts are redacted before they get here).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleetcheck.fix import FixResult, HostFix

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fix_audit (
    id INTEGER PRIMARY KEY,
    fix_run_id TEXT NOT NULL,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    host TEXT NOT NULL,
    check_id TEXT NOT NULL,
    change TEXT NOT NULL,
    before TEXT,
    after TEXT,
    result TEXT NOT NULL,
    error TEXT,
    restart_needed INTEGER NOT NULL DEFAULT 0,
    check_before TEXT,
    check_after TEXT
);
CREATE INDEX IF NOT EXISTS fix_audit_host ON fix_audit (host, check_id, at);
"""


@dataclass(frozen=True)
class FixRecord:
    fix_run_id: str
    at: datetime
    who: str
    host: str
    check_id: str
    change: str
    before: str | None
    after: str | None
    result: str
    error: str | None
    restart_needed: bool
    check_before: str | None
    check_after: str | None

    @property
    def fixed(self) -> bool:
        """The change was made and the re-check passed."""
        return self.result == "changed" and self.check_after == "pass"


@contextmanager
def _open(path: Path | str) -> Iterator[sqlite3.Connection]:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(str(path), timeout=10.0)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        yield conn


def record_batch(path: Path | str, result: FixResult, fixes: Sequence[HostFix], at: datetime | None = None) -> int:
    """Write one batch's changes in one transaction; returns the number of rows."""
    rows = [
        (
            result.run_id, (at or fix.at or datetime.now(UTC)).isoformat(), result.who, fix.host, a.change.check_id, a.change.summary, a.change.before, a.after,
            a.result, a.error, int(a.restart_needed),
            _value(fix.before.get(a.change.check_id)), _value(fix.after.get(a.change.check_id)),
        )
        for fix in fixes
        for a in fix.applied
    ]
    with _open(path) as conn, conn:
        conn.executemany(
            "INSERT INTO fix_audit (fix_run_id, at, who, host, check_id, change, before, after, result, error,"
            " restart_needed, check_before, check_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return len(rows)


def _value(status: object) -> str | None:
    return None if status is None else str(getattr(status, "value", status))


def list_fixes(path: Path | str, *, limit: int = 50, host: str | None = None, since: datetime | None = None) -> list[FixRecord]:
    """The newest audit rows first (optionally one host's, or those after `since`)."""
    if not Path(path).exists():
        return []
    sql = "SELECT fix_run_id, at, who, host, check_id, change, before, after, result, error, restart_needed," \
          " check_before, check_after FROM fix_audit"
    where: list[str] = []
    args: list[str | int] = []
    if host:
        where.append("host = ?")
        args.append(host)
    if since is not None:
        where.append("at > ?")
        args.append(since.astimezone(UTC).isoformat())
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY at DESC, id DESC LIMIT ?"
    args.append(limit)
    with _open(path) as conn:
        return [
            FixRecord(r[0], datetime.fromisoformat(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], bool(r[10]), r[11], r[12])
            for r in conn.execute(sql, args)
        ]


def fixed_since(path: Path | str, since: datetime | None, limit: int = 10_000) -> dict[tuple[str, str], FixRecord]:
    """(host, check) -> the newest successful fix after `since` (what the next run's report mentions)."""
    out: dict[tuple[str, str], FixRecord] = {}
    for rec in list_fixes(path, limit=limit, since=since):
        if rec.fixed:
            out.setdefault((rec.host, rec.check_id), rec)
    return out


def render_fixes(records: Sequence[FixRecord]) -> str:
    """`fleetcheck history fixes`: one line per change, newest first."""
    if not records:
        return "no fixes recorded\n"
    lines = []
    for r in records:
        status = f"{r.check_before or '?'} -> {r.check_after or '?'}"
        tail = f"  ERROR {r.error}" if r.error else ""
        restart = "  (restart needed)" if r.restart_needed else ""
        lines.append(
            f"{r.at.astimezone(UTC):%Y-%m-%d %H:%M}Z  {r.fix_run_id}  {r.who}  {r.host}  {r.check_id}  {r.result}  [{status}]"
            f"\n    {r.change}{restart}{tail}"
        )
    return "\n".join(lines) + "\n"
