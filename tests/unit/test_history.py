"""History store: round trip, streaks, migrations, kill -9 safety, overlapping runs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleetcheck.history import (
    SCHEMA_VERSION,
    History,
    HistoryError,
    RunLockedError,
    default_history_path,
    run_lock,
)
from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult

REPO = Path(__file__).resolve().parents[2]
P, F, W = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.WAIVED


def make_run(run_id: str, day: int, hosts: dict[str, dict[str, CheckStatus] | HostStatus]) -> RunResult:
    start = datetime(2026, 11, 1, 2, 0, tzinfo=UTC) + timedelta(days=day)
    out = []
    for name, spec in hosts.items():
        if isinstance(spec, HostStatus):
            out.append(HostResult(host=name, status=spec, message="connection refused", error_type="OSError"))
            continue
        checks = [
            CheckResult(
                check_id=c,
                status=s,
                message=f"{c}: {s}",
                observed={"free_pct": 3.5, "name": name, "nested": [1, "two", None]},
                expected=">= 10",
                remediation="free some space",
                tags=["disk"],
                waiver="CHG-1 (until 2026-12-31)" if s == W else None,
            )
            for c, s in spec.items()
        ]
        status = HostStatus.NONCOMPLIANT if any(c.status == F for c in checks) else HostStatus.COMPLIANT
        out.append(
            HostResult(
                host=name,
                address=f"127.0.0.{len(out) + 1}",
                transport="psrp",
                groups=["web"],
                status=status,
                checks=checks,
                started_at=start,
                duration_s=1.25,
                attempts=2,
            )
        )
    return RunResult(
        run_id=run_id,
        started_at=start,
        finished_at=start + timedelta(seconds=30),
        inventory="prod.yml",
        playbooks=["system-state-backup"],
        check_ids=["a", "b"],
        hosts=out,
        fleetcheck_version="0.1.0",
    )


@pytest.fixture
def history(tmp_path: Path) -> History:
    h = History(tmp_path / "h" / "history.sqlite3")
    yield h
    h.close()


def test_round_trip_is_exact(history: History) -> None:
    run = make_run("r1", 0, {"web1": {"a": F, "b": W}, "web2": {"a": P, "b": P}, "web3": HostStatus.TIMEOUT})
    history.record(run)
    back = history.get("r1")
    assert back.model_dump() == run.model_dump()


def test_wal_mode_and_schema_version(history: History) -> None:
    conn = sqlite3.connect(history.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_latest_list_and_trend_order(history: History) -> None:
    for i in range(5):
        history.record(make_run(f"r{i}", i, {"web1": {"a": F if i % 2 else P}, "web2": {"a": P}}))
    latest = history.latest()
    assert latest is not None and latest.run_id == "r4"
    before = history.latest(before_run_id="r2")
    assert before is not None and before.run_id == "r1"
    assert history.latest(before_run_id="r0") is None
    assert [r.run_id for r in history.list_runs(3)] == ["r4", "r3", "r2"]
    trend = history.trend(limit=30)
    assert [r.run_id for r in trend] == ["r0", "r1", "r2", "r3", "r4"]
    assert [r.compliant for r in trend] == [2, 1, 2, 1, 2]
    assert trend[1].failing_checks == 1 and trend[1].hosts == 2


def test_latest_complete_only_skips_interrupted(history: History) -> None:
    history.record(make_run("r0", 0, {"web1": {"a": P}}))
    history.record(make_run("r1", 1, {"web1": {"a": P}}).model_copy(update={"interrupted": True}))
    history.record(make_run("r2", 2, {"web1": {"a": P}}))
    prev = history.latest(before_run_id="r2", complete_only=True)
    assert prev is not None and prev.run_id == "r0"


def test_resolve_references(history: History) -> None:
    history.record(make_run("20261101-aaaa", 0, {"w": {"a": P}}))
    history.record(make_run("20261102-bbbb", 1, {"w": {"a": P}}))
    assert history.resolve("last") == "20261102-bbbb"
    assert history.resolve("last~1") == "20261101-aaaa"
    assert history.resolve("20261101") == "20261101-aaaa"
    with pytest.raises(HistoryError, match="ambiguous"):
        history.resolve("2026110")
    with pytest.raises(HistoryError, match="no run matches"):
        history.resolve("nope")
    with pytest.raises(HistoryError, match="fewer than 3 runs"):
        history.resolve("last~2")


def test_failing_streak_survives_unreachable_nights(history: History) -> None:
    history.record(make_run("d0", 0, {"web1": {"a": F, "b": F}}))
    history.record(make_run("d1", 1, {"web1": {"a": P, "b": F}}))
    history.record(make_run("d2", 2, {"web1": {"a": F, "b": F}}))
    history.record(make_run("d3", 3, {"web1": HostStatus.UNREACHABLE}))
    history.record(make_run("d4", 4, {"web1": {"a": F, "b": W}}))
    since = history.failing_since("d4")
    assert since == {("web1", "a"): datetime(2026, 11, 3, 2, 0, tzinfo=UTC)}
    assert history.first_failed_since("web1", "a") == datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    assert history.first_failed_since("web1", "b") is None  # waived now
    # Asked about an older run, the streak is computed as of that run.
    assert history.failing_since("d2")[("web1", "b")] == datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def test_recording_same_run_twice_replaces_it(history: History) -> None:
    history.record(make_run("r1", 0, {"web1": {"a": F}}))
    history.record(make_run("r1", 0, {"web1": {"a": P}, "web2": {"a": P}}))
    assert len(history.list_runs(10)) == 1
    assert len(history.get("r1").hosts) == 2
    conn = sqlite3.connect(history.path)  # the replaced run's rows went with it
    assert conn.execute("SELECT COUNT(*) FROM check_results").fetchone()[0] == 2
    assert conn.execute("SELECT COUNT(*) FROM host_results").fetchone()[0] == 2
    conn.close()


def test_unknown_run_is_a_clear_error(history: History) -> None:
    with pytest.raises(HistoryError, match="no run 'x'"):
        history.get("x")


def test_migrates_empty_database_and_refuses_newer(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    sqlite3.connect(path).close()  # version 0, no tables
    with History(path) as h:
        h.record(make_run("r1", 0, {"w": {"a": P}}))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(HistoryError, match="newer than this fleetcheck knows"):
        History(path)


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryError, match="cannot open the history database"):
        History(path)


def test_default_path_is_in_user_data_dir() -> None:
    path = default_history_path()
    assert path.name == "history.sqlite3" and "fleetcheck" in str(path)


# ---------------------------------------------------------------------------------------------
# crash safety and overlapping runs (real subprocesses)

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from fleetcheck.history import History
    from fleetcheck.results import CheckResult, HostResult, RunResult
    h = History(sys.argv[1])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(10_000):
        hosts = [
            HostResult(host=f"h{j}", status="noncompliant", checks=[
                CheckResult(check_id=f"c{k}", status="fail" if (i + j + k) % 7 == 0 else "pass",
                            message="m" * 40, observed={"i": i, "v": "x" * 60})
                for k in range(18)
            ])
            for j in range(300)
        ]
        run = RunResult(run_id=f"run-{i:05d}", started_at=start + timedelta(minutes=i), hosts=hosts)
        print(f"begin {i}", flush=True)
        h.record(run)
        print(f"done {i}", flush=True)
    """
)


def test_kill_9_while_recording_keeps_previous_runs(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    done = -1
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            kind, _, num = line.partition(" ")
            if kind == "done":
                done = int(num)
            if kind == "begin" and int(num) == 4:
                time.sleep(0.01)  # inside the transaction of run 4 (it takes far longer than this)
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert done >= 3
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with History(db) as h:
        ids = sorted(r.run_id for r in h.list_runs(100))
        assert ids[: done + 1] == [f"run-{i:05d}" for i in range(done + 1)]
        for run_id in ids:  # every run there is whole: all hosts, all checks
            run = h.get(run_id)
            assert len(run.hosts) == 300
            assert all(len(host.checks) == 18 for host in run.hosts)
        h.record(make_run("after-crash", 400, {"w": {"a": P}}))  # and it still takes writes


HOLDER = textwrap.dedent(
    """
    import sys, time
    from fleetcheck.history import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_overlapping_run_is_refused_with_holder_pid(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError) as info, run_lock(db):
            pass
        message = str(info.value)
        assert f"PID {proc.pid}" in message and "another fleetcheck run" in message
        proc.kill()  # the kernel releases a dead holder's lock: no stale lock file problem
        proc.wait(timeout=10)
        with run_lock(db) as lock_file:
            assert lock_file.exists()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_lock_is_released_after_the_run(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    with run_lock(db), pytest.raises(RunLockedError), run_lock(db):
        pass
    with run_lock(db):
        pass


def test_prune_keeps_newest_runs_and_their_texts(history: History) -> None:
    for i in range(5):
        history.record(make_run(f"r{i}", i, {f"web{i}": {"a": F}, "web": {"a": P}}))
    assert history.prune(keep_runs=2, collect_texts=True) == 3
    assert [r.run_id for r in history.list_runs(10)] == ["r4", "r3"]
    assert history.get("r3").model_dump() == make_run("r3", 3, {"web3": {"a": F}, "web": {"a": P}}).model_dump()
    conn = sqlite3.connect(history.path)
    bodies = {row[0] for row in conn.execute("SELECT body FROM texts")}
    conn.close()
    assert "web0" not in bodies and "web3" in bodies  # unused strings are gone


def test_repeated_values_are_stored_once(history: History) -> None:
    for i in range(3):
        history.record(make_run(f"r{i}", i, {"web1": {"a": F, "b": P}}))
    conn = sqlite3.connect(history.path)
    count = conn.execute("SELECT COUNT(*) FROM texts WHERE body = 'free some space'").fetchone()[0]
    conn.close()
    assert count == 1


def test_prune_by_default_keeps_texts_between_collections(history: History) -> None:
    for i in range(3):
        history.record(make_run(f"r{i}", i, {f"web{i}": {"a": F}}))
    assert history.prune(keep_runs=1) == 2  # newest seq is 3: no text collection tonight
    conn = sqlite3.connect(history.path)
    bodies = {row[0] for row in conn.execute("SELECT body FROM texts")}
    conn.close()
    assert "web0" in bodies
    assert [r.run_id for r in history.list_runs(10)] == ["r2"]


def test_unwritable_location_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where a directory should be: mkdir fails even as root
    with pytest.raises(HistoryError, match="cannot open the history database"):
        History(blocker / "sub" / "history.sqlite3")
    with pytest.raises(HistoryError, match="cannot create the run lock"), run_lock(blocker / "sub" / "h.sqlite3"):
        pass


def test_trend_skips_interrupted_runs(history: History) -> None:
    history.record(make_run("r0", 0, {"w": {"a": P}}))
    history.record(make_run("r1", 1, {"w": {"a": P}}).model_copy(update={"interrupted": True}))
    history.record(make_run("r2", 2, {"w": {"a": P}}))
    assert [r.run_id for r in history.trend(30)] == ["r0", "r2"]
    assert [r.run_id for r in history.trend(1)] == ["r2"]


def test_baseline_and_trend_stay_within_one_inventory_scope(history: History) -> None:
    """Two cron jobs (or a --limit run) sharing one history never become each other's baseline."""
    prod, dmz, limited = "/etc/fc/prod.yml", "/etc/fc/dmz.yml", "/etc/fc/prod.yml --limit web*"
    history.record(make_run("p0", 0, {"web1": {"a": P}, "db1": {"a": P}}).model_copy(update={"inventory": prod}))
    history.record(make_run("d0", 1, {"dmz1": {"a": F}}).model_copy(update={"inventory": dmz}))
    history.record(make_run("l0", 2, {"web1": {"a": P}}).model_copy(update={"inventory": limited}))
    history.record(make_run("p1", 3, {"web1": {"a": F}, "db1": {"a": P}}).model_copy(update={"inventory": prod}))
    prev = history.latest(before_run_id="p1", complete_only=True, inventory=prod)
    assert prev is not None and prev.run_id == "p0"
    assert history.latest(before_run_id="l0", inventory=limited) is None
    assert [r.run_id for r in history.trend(inventory=prod)] == ["p0", "p1"]
    assert [r.run_id for r in history.trend()] == ["p0", "d0", "l0", "p1"]
