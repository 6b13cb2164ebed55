"""Prometheus textfile output: strictly valid exposition format, right numbers, atomic writes."""

from __future__ import annotations

import math
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_history import make_run

from fleetcheck.reports.base import ReportContext, get_writer
from fleetcheck.reports.prometheus import escape_label, render, write
from fleetcheck.results import CheckStatus, HostStatus

P, F, E, W = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.WAIVED

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
LABELS = rf"\{{(?:[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})(?:,[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE})*\}}"
SAMPLE = re.compile(rf"^({NAME})({LABELS})? (\S+)$")
LABEL_PAIR = re.compile(rf"([a-zA-Z_][a-zA-Z0-9_]*)=({LABEL_VALUE})")


def _unescape(quoted: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), quoted[1:-1])


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """A strict reader of the text format (what node_exporter's textfile collector accepts)."""
    assert text.endswith("\n"), "file must end with a newline"
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        assert line == line.strip() and line, f"line {number}: blank or padded line"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(NAME, name) and name not in helps, f"line {number}: bad or repeated HELP"
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types and kind in {"gauge", "counter", "untyped"}, f"line {number}: bad TYPE"
            assert not any(k[0] == name for k in samples), f"line {number}: TYPE after samples"
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"line {number}: not a valid sample: {line!r}"
            name, labels, value = m.groups()
            assert name in types, f"line {number}: sample before its TYPE"
            pairs = frozenset((k, _unescape(v)) for k, v in LABEL_PAIR.findall(labels or ""))
            assert (name, pairs) not in samples, f"line {number}: duplicate series"
            parsed = float(value)
            assert not math.isnan(parsed)
            samples[(name, pairs)] = parsed
    return samples


def lab(**kv: str) -> frozenset[tuple[str, str]]:
    return frozenset(kv.items())


def sample_run():
    run = make_run(
        "r",
        0,
        {
            "web1": {"a": F, "b": P},
            'we"ird\\host\nname': {"a": F, "b": E},
            "web3": {"a": W, "b": P},
            "dead": HostStatus.UNREACHABLE,
        },
    )
    return run.model_copy(
        update={
            "finished_at": run.started_at + timedelta(seconds=75.5),
            "inventory": "inventories/prod.yml",
            "playbooks": ["system-state-backup"],
        }
    )


def lab_s(**kv: str) -> frozenset[tuple[str, str]]:
    """Labels of a series of the sample run (its inventory and playbook included)."""
    return frozenset({"inventory": "inventories/prod.yml", "playbook": "system-state-backup", **kv}.items())


def test_exposition_is_valid_and_numbers_are_right() -> None:
    run = sample_run()
    samples = parse_exposition(render(run))
    assert samples[("fleetcheck_check_failing_hosts", lab_s(check="a"))] == 2
    assert samples[("fleetcheck_check_failing_hosts", lab_s(check="b"))] == 1
    assert samples[("fleetcheck_check_waived_hosts", lab_s(check="a"))] == 1
    assert samples[("fleetcheck_host_compliant", lab_s(host="web3"))] == 1
    assert samples[("fleetcheck_host_compliant", lab_s(host="web1"))] == 0
    assert samples[("fleetcheck_host_compliant", lab_s(host='we"ird\\host\nname'))] == 0
    assert samples[("fleetcheck_host_compliant", lab_s(host="dead"))] == 0
    assert samples[("fleetcheck_host_status", lab_s(host="dead", status="unreachable"))] == 1
    assert samples[("fleetcheck_host_status", lab_s(host="dead", status="compliant"))] == 0
    assert samples[("fleetcheck_host_failing_checks", lab_s(host='we"ird\\host\nname'))] == 2
    assert samples[("fleetcheck_host_failing_checks", lab_s(host="web3"))] == 0
    assert samples[("fleetcheck_hosts", lab_s(status="noncompliant"))] == 2
    assert samples[("fleetcheck_hosts", lab_s(status="timeout"))] == 0
    assert samples[("fleetcheck_run_duration_seconds", lab_s())] == 75.5
    finished = datetime(2026, 11, 1, 2, 1, 15, 500000, tzinfo=UTC).timestamp()
    assert samples[("fleetcheck_run_timestamp_seconds", lab_s())] == finished
    assert samples[("fleetcheck_run_interrupted", lab_s())] == 0


def test_official_parser_reads_it_and_two_inventories_do_not_clash() -> None:
    """prometheus_client's own text parser; two inventories' files merged share no series."""
    from prometheus_client.parser import text_string_to_metric_families

    run = sample_run()
    other = run.model_copy(update={"inventory": "inventories/lab.yml"})
    series: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    families = {}
    for text in (render(run), render(other)):
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            series += [(s.name, tuple(sorted(s.labels.items()))) for s in family.samples]
    assert len(series) == len(set(series)) > 0
    assert families["fleetcheck_host_status"] == "gauge"
    status = next(s for s in text_string_to_metric_families(render(run)) if s.name == "fleetcheck_host_status")
    per_host: dict[str, float] = {}
    for sample in status.samples:
        assert sample.labels["inventory"] == "inventories/prod.yml"
        per_host[sample.labels["host"]] = per_host.get(sample.labels["host"], 0) + sample.value
    assert set(per_host.values()) == {1.0}  # exactly one current status per host
    # a host changing status keeps the same set of series
    flipped = run.model_copy(
        update={"hosts": [h.model_copy(update={"status": HostStatus.TIMEOUT}) for h in run.hosts]}
    )
    def keys(text: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        return {
            (s.name, tuple(sorted(s.labels.items())))
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name.startswith("fleetcheck_host_")
        }
    assert keys(render(run)) == keys(render(flipped))


def test_label_escaping() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_parser_rejects_broken_text() -> None:
    with pytest.raises(AssertionError):
        parse_exposition('fleetcheck_x{host="a} 1\n')
    with pytest.raises(AssertionError):
        parse_exposition("fleetcheck_x 1\n")  # no TYPE


def test_write_is_atomic_and_registered(tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "fleetcheck.prom"
    writer = get_writer("prometheus")
    assert writer is write
    run = sample_run()
    writer(run, target, ReportContext())
    first = target.read_text()
    parse_exposition(first)
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    # A reader polling during many rewrites never sees a partial file.
    seen_bad: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                text = target.read_text()
            except FileNotFoundError:
                seen_bad.append("missing")
                continue
            if text != first:
                seen_bad.append(text[:40])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(30):
            writer(run, target, ReportContext())
    finally:
        stop.set()
        thread.join()
    assert seen_bad == []
    assert [p.name for p in target.parent.iterdir()] == ["fleetcheck.prom"]  # no temp files left


def test_failed_write_leaves_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "fleetcheck.prom"
    write(sample_run(), target, ReportContext())
    before = target.read_text()

    def boom(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write(sample_run().model_copy(update={"interrupted": True}), target, ReportContext())
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fleetcheck.prom"]
