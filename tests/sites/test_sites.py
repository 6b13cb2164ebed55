"""Multi-site runs on a real redis-server with Celery workers as separate processes.

Each site is its own lab fleet; the coordinator (this process) checks the `local` site
itself and sends the others' hosts to their workers.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason="the sites extra is not installed: pip install 'fleetcheck[sites]'")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)", allow_module_level=True)

import redis
from sitelab import SENTINEL, Monitor, RedisServer, Sites, Worker, decoded_payloads

from fleetcheck import api
from fleetcheck.dispatch.celery_sites import CeleryDispatcher, stream_key
from fleetcheck.dispatch.wire import Event
from fleetcheck.history import History
from fleetcheck.lab.fleet import PASSWORD_ENV
from fleetcheck.reports.table import TableOptions, render_table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sites")


@pytest.fixture(scope="module")
def broker(tmp: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp).start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def sites() -> Iterator[Sites]:
    lab = Sites()
    lab.add("local", 2)
    lab.add("east", 3)
    lab.add("west", 2)
    lab.add("slow", 3, latency_ms=150)
    yield lab
    lab.close()


@pytest.fixture(scope="module")
def workers(broker: RedisServer, tmp: Path) -> Iterator[dict[str, list[Worker]]]:
    started = {
        "east": [Worker("east", broker.url, tmp / "east.log")],
        "west": [Worker("west", broker.url, tmp / "west.log")],
        "slow": [Worker("slow", broker.url, tmp / f"slow{i}.log", forks=1, redeliver_after=2) for i in range(2)],
    }
    try:
        for group in started.values():
            for w in group:
                w.wait_ready()
        yield started
    finally:
        for group in started.values():
            for w in group:
                w.stop()


@pytest.fixture(autouse=True)
def lab_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, SENTINEL)  # the coordinator checks the `local` site itself


#: Facts the lab derives from the wall clock: they differ between any two runs.
CLOCK_FACTS = ("end_time", "skew_s")


def skews(data: dict[str, Any]) -> list[float]:
    return [c["observed"]["skew_s"] for h in data["hosts"] for c in h["checks"]
            if isinstance(c["observed"], dict) and "skew_s" in c["observed"]]


def normalized_report(path: Path) -> dict[str, Any]:
    """A json report without what differs between any two runs (ids, clocks, durations)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    assert max(abs(s) for s in skews(data)) < 1.0  # judged as of when the host answered, not when it arrived
    for key in ("run_id", "started_at", "finished_at"):
        data.pop(key)
    for host in data["hosts"]:
        for key in ("started_at", "duration_s"):
            host.pop(key)
        for check in host["checks"]:
            if isinstance(check["observed"], dict):
                for key in CLOCK_FACTS:
                    check["observed"].pop(key, None)
    data["hosts"].sort(key=lambda h: h["host"])
    return data


def history_rows(db: Path) -> list[dict[str, Any]]:
    with History(db) as history:
        run = history.get(history.resolve("last"))
    rows = [h.model_dump(mode="json", exclude={"started_at", "duration_s"}) for h in run.hosts]
    for row in rows:
        for check in row["checks"]:
            if isinstance(check["observed"], dict):
                for key in CLOCK_FACTS:
                    check["observed"].pop(key, None)
    return sorted(rows, key=lambda h: h["host"])


def table(run: Any) -> str:
    """The terminal table, but for the run's wall time in its last line."""
    run = run.model_copy(update={"hosts": sorted(run.hosts, key=lambda h: h.host)})
    return re.sub(r"; [0-9.]+ s\n$", "\n", render_table(run, TableOptions(view="full", wide=True, ascii=True)))


def test_two_sites_give_the_table_report_and_history_of_one_process_and_no_secret_crosses_redis(
    sites: Sites, broker: RedisServer, workers: dict[str, list[Worker]], tmp: Path
) -> None:
    inv = sites.inventory(tmp / "two-sites.yml", ["local", "east", "west"])
    monitor = Monitor(broker, tmp / "monitor.txt")
    try:
        spread = api.run(inv, [], api.RunOptions(
            broker=broker.url, site_wait=20, history=tmp / "spread.db", handle_sigterm=False,
            reports=api.parse_report_specs([f"json:{tmp / 'spread.json'}"]), journal=tmp / "spread.jsonl",
        ))
    finally:
        seen = monitor.stop()
    single = api.run(inv, [], api.RunOptions(
        history=tmp / "single.db", handle_sigterm=False,
        reports=api.parse_report_specs([f"json:{tmp / 'single.json'}"]),
    ))
    statuses = [(h.host, h.status.value, h.message) for h in [*spread.run.hosts, *single.run.hosts]]
    assert spread.run.counts() == single.run.counts() == {
        "hosts": 7, "compliant": 7, "noncompliant": 0, "unchecked": 0, "failing_checks": 0, "waived_checks": 0,
    }, statuses
    assert normalized_report(tmp / "spread.json") == normalized_report(tmp / "single.json")
    assert table(spread.run) == table(single.run)
    assert history_rows(tmp / "spread.db") == history_rows(tmp / "single.db")
    journal = [json.loads(line) for line in (tmp / "spread.jsonl").read_text().splitlines()]
    assert sorted(r["result"]["host"] for r in journal if r.get("record") == "host") == sorted(h.host for h in single.run.hosts)

    # The scan can see what crossed: the batches name the hosts and the password's variable...
    bodies = decoded_payloads(seen)
    assert any("east-LAB-0001" in b and PASSWORD_ENV in b for b in bodies)
    assert '"kind":"done"' in seen.replace("\\", "")  # ...and the results that came back
    # ...but never the password, in clear or inside a base64 body.
    assert SENTINEL not in seen
    assert not [b for b in bodies if SENTINEL in b]


def test_a_site_without_a_worker_ends_as_unreachable_within_the_wait(sites: Sites, broker: RedisServer, tmp: Path) -> None:
    inv = sites.inventory(tmp / "gone.yml", ["local", "west"])
    text = inv.read_text().replace("site: west", "site: gone")
    inv.write_text(text)
    t0 = time.monotonic()
    outcome = api.run(inv, [], api.RunOptions(broker=broker.url, site_wait=2, handle_sigterm=False))
    elapsed = time.monotonic() - t0
    by_host = {h.host: h for h in outcome.run.hosts}
    assert [by_host[f"west-LAB-000{i}"].message for i in (1, 2)] == ["no worker for site gone answered within 2 s"] * 2
    assert {by_host[f"west-LAB-000{i}"].status.value for i in (1, 2)} == {"unreachable"}
    assert {by_host[f"local-LAB-000{i}"].status.value for i in (1, 2)} == {"compliant"}
    assert outcome.exit_code == 3
    assert max(by_host[f"west-LAB-000{i}"].duration_s for i in (1, 2)) < 2 + 2  # the wait, plus a watch tick
    assert elapsed < 30  # no hang (the local hosts' time depends on the machine's load)


def _events(broker: RedisServer, run: str) -> list[Event]:
    client = redis.Redis.from_url(broker.url)
    try:
        return [Event.from_fields(fields) for _id, fields in client.xrange(stream_key(run))]
    finally:
        client.close()


def test_a_worker_killed_mid_batch_loses_no_host(
    sites: Sites, broker: RedisServer, workers: dict[str, list[Worker]], tmp: Path
) -> None:
    inv = sites.inventory(tmp / "slow.yml", ["slow"])
    dispatcher = CeleryDispatcher(broker.url)
    box: list[api.RunOutcome] = []
    runner = threading.Thread(target=lambda: box.append(api.run(inv, [], api.RunOptions(
        dispatcher=dispatcher, site_wait=30, batch_size=3, handle_sigterm=False))))
    runner.start()
    by_pid = {w.pid: w for w in workers["slow"]}
    victim = None
    deadline = time.monotonic() + 30
    while victim is None and time.monotonic() < deadline:
        for event in _events(broker, dispatcher.run_id):
            if event.kind == "done":  # one host delivered, the others of the batch still running
                victim = by_pid[int(event.worker.rpartition(":")[2])]
                break
        time.sleep(0.05)
    assert victim is not None, "no worker of site slow took the batch"
    victim.kill()
    runner.join(60)
    assert box, "the run did not end"
    hosts = box[0].run.hosts
    assert sorted(h.host for h in hosts) == ["slow-LAB-0001", "slow-LAB-0002", "slow-LAB-0003"]
    assert {h.status.value for h in hosts} == {"compliant"}
    finished_by = {int(e.worker.rpartition(":")[2]) for e in _events(broker, dispatcher.run_id) if e.kind == "done"}
    survivor = next(w for w in workers["slow"] if w is not victim)
    assert finished_by == {victim.pid, survivor.pid}  # the batch was redelivered to the other worker


def test_redis_restarted_mid_run_is_survived(sites: Sites, tmp: Path) -> None:
    server = RedisServer(tmp).start()
    worker = Worker("slow", server.url, tmp / "restart.log", forks=1).wait_ready()
    try:
        inv = sites.inventory(tmp / "restart.yml", ["slow"])
        dispatcher = CeleryDispatcher(server.url)
        box: list[api.RunOutcome] = []
        runner = threading.Thread(target=lambda: box.append(api.run(inv, [], api.RunOptions(
            dispatcher=dispatcher, site_wait=20, handle_sigterm=False))))
        runner.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(e.kind == "started" for e in _events(server, dispatcher.run_id)):
            time.sleep(0.05)
        server.kill()  # every key, queue and stream is gone with it (no persistence)
        time.sleep(1.0)
        server.start()
        runner.join(60)
        assert box, "the run did not end"
        hosts = box[0].run.hosts
        assert len(hosts) == 3
        for host in hosts:  # checked after all, or named as lost with the broker
            assert host.status.value == "compliant" or "broker" in host.message, host
        assert [h.status.value for h in hosts].count("compliant") >= 2
    finally:
        worker.stop()
        server.kill()


def test_batches_of_a_stopped_run_are_revoked_and_dropped_by_a_late_worker(
    sites: Sites, broker: RedisServer, tmp: Path
) -> None:
    from fleetcheck.dispatch.celery_sites import queue_name
    from fleetcheck.dispatch.wire import Batch, WireTarget
    from fleetcheck.inventory import load_inventory

    inv = sites.inventory(tmp / "late.yml", ["west"])
    targets = [WireTarget.from_target(h.model_copy(update={"site": "late"}).to_target(), PASSWORD_ENV)
               for h in load_inventory(inv).hosts]

    async def queue_then_interrupt() -> str:
        dispatcher = CeleryDispatcher(broker.url)
        await dispatcher.submit(Batch(run=dispatcher.run_id, batch="b1", site="late", script="x", args_json="{}",
                                      targets=targets))
        await dispatcher.stop(revoke=True)  # what Ctrl-C does
        await dispatcher.close()
        return dispatcher.run_id

    import asyncio

    run = asyncio.run(queue_then_interrupt())
    client = redis.Redis.from_url(broker.url)
    try:
        assert client.llen(queue_name("late")) == 1
        worker = Worker("late", broker.url, tmp / "late.log").wait_ready()
        try:
            deadline = time.monotonic() + 20
            while client.llen(queue_name("late")) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
            assert client.llen(queue_name("late")) == 0  # the worker took the batch...
            assert _events(broker, run) == []  # ...and started none of its hosts
        finally:
            worker.stop()
    finally:
        client.close()


def test_an_interrupted_run_closes_its_batches_and_keeps_what_finished(
    sites: Sites, broker: RedisServer, workers: dict[str, list[Worker]], tmp: Path
) -> None:
    import os
    import signal

    from fleetcheck.dispatch.celery_sites import closed_key, queue_name

    inv = sites.inventory(tmp / "interrupt.yml", ["local", "west"])
    inv.write_text(inv.read_text().replace("site: west", "site: nobody"))
    dispatcher = CeleryDispatcher(broker.url)

    class StopAfterLocalHosts:
        """Once both local hosts are in, SIGTERM: api.run stops on it like on Ctrl-C."""

        done = 0

        def run_started(self, total: int) -> None: ...

        def host_done(self, host: Any) -> None:
            self.done += 1
            if self.done == 2:
                threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()

        def run_finished(self, result: Any, total: int) -> None: ...

    t0 = time.monotonic()
    outcome = api.run(inv, [], api.RunOptions(dispatcher=dispatcher, site_wait=60, progress=StopAfterLocalHosts()))
    assert time.monotonic() - t0 < 40
    assert outcome.run.interrupted and outcome.exit_code == 4
    assert sorted(h.host for h in outcome.run.hosts) == ["local-LAB-0001", "local-LAB-0002"]
    client = redis.Redis.from_url(broker.url)
    try:
        assert client.exists(closed_key(dispatcher.run_id))  # a worker that comes later drops the batch
        assert client.llen(queue_name("nobody")) == 1
        client.delete(queue_name("nobody"))
    finally:
        client.close()
