"""Run history in an embedded SQLite database, split by job.

- `schema`: the tables, their append-only migrations, opening a connection (`HistoryError`);
- `store`: `History`, which records runs and answers the nightly report's questions;
- `lock`: `run_lock`, refusing overlapping runs on one history file (cron firing while last
  night's run still goes).
"""

from fleetcheck.history.lock import RunLockedError, run_lock
from fleetcheck.history.schema import MIGRATIONS, SCHEMA_VERSION, HistoryError, default_history_path
from fleetcheck.history.store import History, RunSummary

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "History",
    "HistoryError",
    "RunLockedError",
    "RunSummary",
    "default_history_path",
    "run_lock",
]
