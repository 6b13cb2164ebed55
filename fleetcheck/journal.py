"""The run journal: one JSON line per record, written to the OS as each host finishes.

Durability, honestly: every line is flushed to the operating system before `write_*`
returns, so a run that ends early in any way the OS survives (Ctrl-C, SIGTERM, SIGKILL, a
crash of fleetcheck itself) keeps every host that finished before it. Against a crash of the
OS or a power loss the run record and the end record are fsynced at once, host lines at
most `fsync_interval` seconds apart (0.5 s by default) and on close: such a crash may lose
the hosts of the last half second, never more, and never tear an earlier line. One fsync
per host cost ~8 % of a large run's CPU on the event loop. Call `sync_if_due()` after a
write to keep the interval (the runner does, on a timer), or pass `fsync_interval=0` for
one fsync per line. Records:

    {"record": "run",  "run_id": ..., "started_at": ..., "inventory": ..., "playbooks": [...]}
    {"record": "host", "run_id": ..., "result": <HostResult as in fleetcheck/report/v1>}
    {"record": "end",  "run_id": ..., "finished_at": ..., "interrupted": false}

Several runs may append to the same file; `read_journal` returns the last run by default.
A torn last line (crash mid-write) is skipped, never fatal. Text that UTF-8 cannot carry (lone
surrogate halves, as a non-BMP character split by a careless decoder becomes) is written with
the halves paired again or replaced by U+FFFD: one host's text never ends the run.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from fleetcheck.results import HostResult, RunResult, clean_text, map_text

#: Longest time a host line may stay written but not fsynced (see the module docstring).
FSYNC_INTERVAL = 0.5


def _apply(rec: dict[str, Any], rid: str, runs: dict[str, RunResult], order: list[str]) -> None:
    """Fold one journal record into the runs read so far."""
    kind = rec.get("record")
    if kind == "run":
        runs[rid] = RunResult(
            run_id=rid,
            started_at=datetime.fromisoformat(rec["started_at"]),
            inventory=rec.get("inventory", ""),
            playbooks=rec.get("playbooks", []),
            fleetcheck_version=rec.get("fleetcheck_version", ""),
            interrupted=True,  # until an end record says otherwise
        )
        order.append(rid)
    elif kind == "host" and rid in runs:
        runs[rid].hosts.append(HostResult.model_validate(rec["result"]))
    elif kind == "end" and rid in runs:
        run = runs[rid]
        run.interrupted = bool(rec.get("interrupted"))
        if rec.get("finished_at"):
            run.finished_at = datetime.fromisoformat(rec["finished_at"])


def _clean(value: Any) -> Any:
    return map_text(value, clean_text)


class Journal:
    """Append-only JSON-lines writer; every line reaches the OS before `write_*` returns."""

    def __init__(self, path: Path, fsync_interval: float = FSYNC_INTERVAL) -> None:
        self.path = path
        self.fsync_interval = max(0.0, float(fsync_interval))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = path.open("a", encoding="utf-8")
        self._synced_at = time.monotonic()
        #: True while a line was flushed to the OS but not yet fsynced.
        self.dirty = False

    def _write(self, record: dict[str, Any], *, sync: bool = False) -> None:
        self._write_line(json.dumps(record, ensure_ascii=False, default=str), sync=sync)

    def _write_line(self, line: str, *, sync: bool = False) -> None:
        if self._fh is None:
            raise ValueError("journal is closed")
        try:
            self._fh.write(line + "\n")
        except UnicodeEncodeError:  # encoding fails before anything is buffered: no torn line
            self._fh.write(clean_text(line) + "\n")
        self._fh.flush()
        self.dirty = True
        if sync:
            self.sync()
        else:
            self.sync_if_due()

    def sync(self) -> None:
        """fsync what was written (cheap no-op when nothing is pending)."""
        if self._fh is not None and self.dirty:
            os.fsync(self._fh.fileno())
            self.dirty = False
        self._synced_at = time.monotonic()

    def sync_if_due(self) -> bool:
        """fsync when the oldest pending line has waited `fsync_interval`; True if it did."""
        if self.dirty and time.monotonic() - self._synced_at >= self.fsync_interval:
            self.sync()
            return True
        return False

    def write_start(self, run: RunResult) -> None:
        self._write(
            {
                "record": "run",
                "run_id": run.run_id,
                "started_at": run.started_at.isoformat(),
                "inventory": run.inventory,
                "playbooks": run.playbooks,
                "fleetcheck_version": run.fleetcheck_version,
            },
            sync=True,
        )

    def write_host(self, run_id: str, result: HostResult, body: str | None = None) -> None:
        """One host's line; `body` is the row's `model_dump_json()` when the caller has it."""
        # pydantic's own JSON encoder: the same document as model_dump(mode="json") through
        # json.dumps, at a fraction of the CPU (one line per host on the event loop).
        head = json.dumps({"record": "host", "run_id": run_id}, ensure_ascii=False)
        if body is None:
            try:
                body = result.model_dump_json()
            except ValueError:  # text UTF-8 cannot encode (pydantic's serializer refuses it)
                body = json.dumps(_clean(result.model_dump(mode="json")), ensure_ascii=False)
        self._write_line(f'{head[:-1]}, "result": {body}}}')

    def write_end(self, run: RunResult) -> None:
        finished = run.finished_at.isoformat() if run.finished_at else None
        self._write(
            {"record": "end", "run_id": run.run_id, "finished_at": finished, "interrupted": run.interrupted},
            sync=True,
        )

    def close(self) -> None:
        if self._fh is not None:
            try:
                self.sync()
            finally:
                self._fh.close()
            self._fh = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Bytes of journal read at most (the CLI rotates journals at 50 MiB), and per line.
MAX_READ_BYTES = 256 * 1024 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of `path`, bounded in total and per line (a device like /dev/zero ends)."""
    total = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for number in itertools.count(1):
            line = fh.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            total += len(line)
            if len(line) > MAX_LINE_BYTES or total > MAX_READ_BYTES:
                raise ValueError(f"line {number}: longer than a journal holds - is this a fleetcheck journal?")
            yield number, line


def read_journal(path: Path, run_id: str | None = None) -> RunResult:
    """Rebuild a RunResult from a journal (the last run in the file unless `run_id` is given).

    A torn line (a crash mid-write) is skipped; a line that parses but is not a journal record
    (`null`, a list, a host record without its result) is an error naming its line.
    """
    runs: dict[str, RunResult] = {}
    order: list[str] = []
    for number, line in _lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn line from a crash
        if not isinstance(rec, dict):
            raise ValueError(f"line {number}: {type(rec).__name__} is not a journal record")
        rid = rec.get("run_id")
        if not isinstance(rid, str):
            continue
        try:
            _apply(rec, rid, runs, order)
        except (KeyError, TypeError, ValueError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())[:200]
            raise ValueError(f"line {number}: unreadable {rec.get('record')!r} record ({detail})") from None
    if not order:
        raise ValueError(f"{path}: no run recorded in this journal")
    chosen = run_id or order[-1]
    if chosen not in runs:
        raise ValueError(f"{path}: run {chosen} not found")
    run = runs[chosen]
    seen: list[str] = []
    for h in run.hosts:
        for c in h.checks:
            if c.check_id not in seen:
                seen.append(c.check_id)
    run.check_ids = seen
    return run
