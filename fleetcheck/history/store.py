"""The run history store: record runs, and the questions a nightly report asks of them.

Why SQLite: one file next to the user's data, transactions that survive a kill -9 (WAL journal),
and SQL for the questions a nightly report asks ("since when has this check failed?").
Each run is written in ONE transaction, so a crash leaves either the whole run or none of it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetcheck.history.schema import HistoryError, connect, iso
from fleetcheck.results import FAILING, CheckResult, CheckStatus, HostResult, HostStatus, RunResult


@dataclass(frozen=True)
class RunSummary:
    """One recorded run, as listed by `list_runs` and plotted by `trend`."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    inventory: str
    hosts: int
    compliant: int
    noncompliant: int
    unchecked: int
    failing_checks: int
    waived_checks: int
    interrupted: bool

    @property
    def compliant_ratio(self) -> float:
        return self.compliant / self.hosts if self.hosts else 0.0


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _intern(conn: sqlite3.Connection, texts: set[str]) -> dict[str, int]:
    """Ids of `texts` in the texts table, adding the new ones.

    Night to night almost every host name, message and observed value repeats, so storing
    each distinct string once keeps a 1,000-host run near 1 MB instead of ~5 MB.
    """
    by_hash = {hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest(): t for t in texts}
    ids: dict[str, int] = {}
    hashes = list(by_hash)
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for digest, text_id in conn.execute(f"SELECT hash, id FROM texts WHERE hash IN ({marks})", chunk):
            ids[by_hash[digest]] = text_id
    for digest, text in by_hash.items():
        if text not in ids:
            cur = conn.execute("INSERT INTO texts (hash, body) VALUES (?, ?)", (digest, text))
            ids[text] = int(cur.lastrowid or 0)
    return ids


class History:
    """The run history at `path` (created and migrated on first use)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------

    def record(self, run: RunResult) -> None:
        """Store `run` atomically; recording the same run_id again replaces it."""
        counts = run.counts()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))
            cur = conn.execute(
                "INSERT INTO runs (run_id, started_at, finished_at, inventory, playbooks, check_ids,"
                " interrupted, fleetcheck_version, hosts, compliant, noncompliant, unchecked,"
                " failing_checks, waived_checks, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    iso(run.started_at),
                    iso(run.finished_at),
                    run.inventory,
                    _dumps(run.playbooks),
                    _dumps(run.check_ids),
                    int(run.interrupted),
                    run.fleetcheck_version,
                    counts["hosts"],
                    counts["compliant"],
                    counts["noncompliant"],
                    counts["unchecked"],
                    counts["failing_checks"],
                    counts["waived_checks"],
                    iso(datetime.now(UTC)),
                ),
            )
            seq = cur.lastrowid
            conn.executemany(
                "INSERT INTO host_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        seq,
                        h.host,
                        h.address,
                        h.transport,
                        _dumps(h.groups),
                        h.status.value,
                        h.message,
                        h.error_type,
                        iso(h.started_at),
                        h.duration_s,
                        h.attempts,
                    )
                    for h in run.hosts
                ],
            )
            rows = [
                (h.host, c.check_id, c.message, _dumps(c.observed), _dumps(c.expected), c.remediation,
                 c.severity, _dumps(c.tags), c.status.value, c.waiver)
                for h in run.hosts
                for c in h.checks
            ]
            ids = _intern(conn, {text for row in rows for text in row[:8]})
            conn.executemany(
                "INSERT INTO check_results (run_seq, host_id, check_id, message_id, observed_id, expected_id,"
                " remediation_id, severity_id, tags_id, status, waiver) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(seq, *(ids[text] for text in row[:8]), row[8], row[9]) for row in rows],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def prune(self, keep_runs: int, collect_texts: bool | None = None) -> int:
        """Delete all but the newest `keep_runs` runs; returns how many went.

        Unused texts are collected too, which scans every stored result: by default only about
        once a month of nightly runs (`collect_texts=None`), or when asked (True).
        """
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(
                "DELETE FROM runs WHERE seq NOT IN (SELECT seq FROM runs ORDER BY started_at DESC, seq DESC"
                " LIMIT ?)",
                (max(1, keep_runs),),
            )
            removed = cur.rowcount
            newest = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM runs").fetchone()[0]
            if collect_texts is None:
                collect_texts = removed > 0 and newest % 30 == 0
            if collect_texts:
                conn.execute(
                    "DELETE FROM texts WHERE id NOT IN ("
                    + " UNION ".join(
                        f"SELECT {col} FROM check_results"
                        for col in (
                            "host_id", "check_id", "message_id", "observed_id",
                            "expected_id", "remediation_id", "severity_id", "tags_id",
                        )
                    )
                    + ")"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return removed

    # -- reading --------------------------------------------------------------------------------

    def _seq_of(self, run_id: str) -> int:
        row = self._conn.execute("SELECT seq FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise HistoryError(f"{self.path}: no run {run_id!r} in history (see `fleetcheck diff --list`).")
        return int(row[0])

    def resolve(self, ref: str) -> str:
        """Turn a user's run reference into a run_id.

        Accepted: a full run id, a unique prefix of one, `last` (newest run) or `last~N`
        (N runs before the newest).
        """
        ref = ref.strip()
        if ref == "last" or ref.startswith("last~"):
            back = ref[5:] or "0"
            if not back.isdigit():
                raise HistoryError(f"bad run reference {ref!r}: use last, last~1, last~2, ...")
            row = self._conn.execute(
                "SELECT run_id FROM runs ORDER BY started_at DESC, seq DESC LIMIT 1 OFFSET ?", (int(back),)
            ).fetchone()
            if row is None:
                raise HistoryError(f"{self.path}: history has fewer than {int(back) + 1} runs.")
            return str(row[0])
        rows = self._conn.execute(
            "SELECT run_id FROM runs WHERE run_id = ? OR substr(run_id, 1, ?) = ? LIMIT 3",
            (ref, len(ref), ref),
        ).fetchall()
        exact = [r[0] for r in rows if r[0] == ref]
        if exact:
            return str(exact[0])
        if len(rows) == 1:
            return str(rows[0][0])
        if not rows:
            raise HistoryError(f"{self.path}: no run matches {ref!r} (see `fleetcheck diff --list`).")
        raise HistoryError(f"run reference {ref!r} is ambiguous; give more characters of the run id.")

    def latest(
        self, before_run_id: str | None = None, complete_only: bool = False, inventory: str | None = None
    ) -> RunResult | None:
        """The newest run, or the newest one started before `before_run_id`.

        `complete_only` skips interrupted runs (a half run makes a poor baseline); `inventory`
        keeps only runs of the same inventory and `--limit` (`RunResult.inventory`), so two cron
        jobs sharing one history never diff against each other.
        """
        where = ["1 = 1"]
        params: list[Any] = []
        if inventory is not None:
            where.append("inventory = ?")
            params.append(inventory)
        if before_run_id is not None:
            where.append("(started_at, seq) < (SELECT started_at, seq FROM runs WHERE seq = ?)")
            params.append(self._seq_of(before_run_id))
        if complete_only:
            where.append("interrupted = 0")
        row = self._conn.execute(
            f"SELECT run_id FROM runs WHERE {' AND '.join(where)} ORDER BY started_at DESC, seq DESC LIMIT 1",
            params,
        ).fetchone()
        return self.get(row[0]) if row else None

    def get(self, run_id: str) -> RunResult:
        """Rebuild a recorded run exactly as it was stored."""
        conn = self._conn
        row = conn.execute(
            "SELECT seq, run_id, started_at, finished_at, inventory, playbooks, check_ids, interrupted,"
            " fleetcheck_version FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise HistoryError(f"{self.path}: no run {run_id!r} in history (see `fleetcheck diff --list`).")
        seq = row[0]
        checks: dict[str, list[CheckResult]] = {}
        for c in conn.execute(
            "SELECT th.body, tc.body, c.status, tm.body, tob.body, tex.body, tr.body, ts.body, tt.body, c.waiver"
            " FROM check_results c"
            " JOIN texts th ON th.id = c.host_id JOIN texts tc ON tc.id = c.check_id"
            " JOIN texts tm ON tm.id = c.message_id JOIN texts tob ON tob.id = c.observed_id"
            " JOIN texts tex ON tex.id = c.expected_id JOIN texts tr ON tr.id = c.remediation_id"
            " JOIN texts ts ON ts.id = c.severity_id JOIN texts tt ON tt.id = c.tags_id"
            " WHERE c.run_seq = ? ORDER BY c.rowid",
            (seq,),
        ):
            checks.setdefault(c[0], []).append(
                CheckResult(
                    check_id=c[1],
                    status=CheckStatus(c[2]),
                    message=c[3],
                    observed=json.loads(c[4]) if c[4] is not None else None,
                    expected=json.loads(c[5]) if c[5] is not None else None,
                    remediation=c[6],
                    severity=c[7],
                    tags=json.loads(c[8]),
                    waiver=c[9],
                )
            )
        hosts = [
            HostResult(
                host=h[0],
                address=h[1],
                transport=h[2],
                groups=json.loads(h[3]),
                status=HostStatus(h[4]),
                message=h[5],
                error_type=h[6],
                started_at=_dt(h[7]),
                duration_s=h[8],
                attempts=h[9],
                checks=checks.get(h[0], []),
            )
            for h in conn.execute(
                "SELECT host, address, transport, groups_json, status, message, error_type, started_at,"
                " duration_s, attempts FROM host_results WHERE run_seq = ? ORDER BY rowid",
                (seq,),
            )
        ]
        return RunResult(
            run_id=row[1],
            started_at=_dt(row[2]) or datetime.now(UTC),
            finished_at=_dt(row[3]),
            inventory=row[4],
            playbooks=json.loads(row[5]),
            check_ids=json.loads(row[6]),
            interrupted=bool(row[7]),
            fleetcheck_version=row[8],
            hosts=hosts,
        )

    def list_runs(self, limit: int = 20, inventory: str | None = None) -> list[RunSummary]:
        """The newest `limit` runs (of one inventory when given), newest first."""
        where, params = ("WHERE inventory = ?", [inventory]) if inventory is not None else ("", [])
        rows = self._conn.execute(
            "SELECT run_id, started_at, finished_at, inventory, hosts, compliant, noncompliant, unchecked,"
            f" failing_checks, waived_checks, interrupted FROM runs {where} ORDER BY started_at DESC, seq DESC LIMIT ?",
            (*params, max(0, limit)),
        ).fetchall()
        return [
            RunSummary(
                run_id=r[0],
                started_at=_dt(r[1]) or datetime.now(UTC),
                finished_at=_dt(r[2]),
                inventory=r[3],
                hosts=r[4],
                compliant=r[5],
                noncompliant=r[6],
                unchecked=r[7],
                failing_checks=r[8],
                waived_checks=r[9],
                interrupted=bool(r[10]),
            )
            for r in rows
        ]

    def trend(self, limit: int = 30, inventory: str | None = None) -> list[RunSummary]:
        """The newest `limit` complete runs, oldest first (an interrupted run would plot a false dip)."""
        runs = self.list_runs(limit * 2, inventory=inventory)
        return list(reversed([r for r in runs if not r.interrupted][:limit]))

    def check_failures(self, run_ids: list[str]) -> dict[str, dict[str, int]]:
        """run id -> check id -> hosts on which it failed, errored or was unknown (per-check trend)."""
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        rows = self._conn.execute(
            "SELECT r.run_id, t.body, COUNT(*) FROM check_results c JOIN runs r ON r.seq = c.run_seq"
            " JOIN texts t ON t.id = c.check_id"
            f" WHERE r.run_id IN ({marks}) AND c.status IN ('fail', 'error', 'unknown')"
            " GROUP BY r.run_id, t.body",
            run_ids,
        ).fetchall()
        out: dict[str, dict[str, int]] = {rid: {} for rid in run_ids}
        for run_id, check_id, count in rows:
            out[run_id][check_id] = count
        return out

    def first_failed_since(self, host: str, check_id: str, run_id: str | None = None) -> datetime | None:
        """Start time of the run where the current failing streak of (host, check) began.

        Runs where the host was not checked (no row) do not break a streak; a passing, skipped
        or waived result does. None when the check is not failing in `run_id` (default: newest).
        """
        return self.failing_since(run_id).get((host, check_id))

    def failing_since(self, run_id: str | None = None) -> dict[tuple[str, str], datetime]:
        """`first_failed_since` for every failing (host, check) of a run, in two queries."""
        if run_id is None:
            row = self._conn.execute("SELECT seq FROM runs ORDER BY started_at DESC, seq DESC LIMIT 1").fetchone()
            if row is None:
                return {}
            seq = int(row[0])
        else:
            seq = self._seq_of(run_id)
        params: dict[str, Any] = {"seq": seq}
        for i, status in enumerate(sorted(FAILING)):
            params[f"f{i}"] = status.value
        failing = ",".join(f":f{i}" for i in range(len(FAILING)))
        # Ordered by run start time (not insertion order): a re-recorded run keeps its place.
        sql = f"""
            WITH now_at AS (SELECT started_at AS t FROM runs WHERE seq = :seq),
            cur AS (
                SELECT host_id, check_id FROM check_results WHERE run_seq = :seq AND status IN ({failing})
            ),
            last_ok AS (
                SELECT c.host_id, c.check_id, MAX(r.started_at) AS ok_at
                FROM check_results c JOIN cur USING (host_id, check_id) JOIN runs r ON r.seq = c.run_seq
                WHERE r.started_at <= (SELECT t FROM now_at) AND c.status NOT IN ({failing})
                GROUP BY c.host_id, c.check_id
            )
            SELECT th.body, tc.body, MIN(r.started_at)
            FROM check_results c
            JOIN cur USING (host_id, check_id)
            JOIN runs r ON r.seq = c.run_seq
            JOIN texts th ON th.id = c.host_id
            JOIN texts tc ON tc.id = c.check_id
            LEFT JOIN last_ok o ON o.host_id = c.host_id AND o.check_id = c.check_id
            WHERE r.started_at <= (SELECT t FROM now_at)
              AND (o.ok_at IS NULL OR r.started_at > o.ok_at)
              AND c.status IN ({failing})
            GROUP BY c.host_id, c.check_id
        """
        result: dict[tuple[str, str], datetime] = {}
        for host, check_id, started in self._conn.execute(sql, params):
            when = _dt(started)
            if when is not None:
                result[(host, check_id)] = when
        return result
