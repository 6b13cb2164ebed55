"""Reports from plain data: table, json, csv, junit, markdown; atomic writes; spec parsing."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_samples import CHECKS, big_result, sample_result

from fleetcheck.reports import csv as csv_report
from fleetcheck.reports import json as json_report
from fleetcheck.reports import junit, markdown
from fleetcheck.reports.base import (
    ReportContext,
    ReportSpecError,
    get_writer,
    parse_report_spec,
    sorted_hosts,
    summary_line,
    write_atomic,
)
from fleetcheck.reports.table import TableOptions, render_table
from fleetcheck.results import REPORT_SCHEMA, RunResult


def test_hosts_sorted_worst_first() -> None:
    assert [h.host for h in sorted_hosts(sample_result())] == ["=cmd|calc", "SRV-DOWN", "SRV-BAD", "SRV-WARN", "SRV-OK"]


def test_table_rows_symbols_legend_and_summary() -> None:
    text = render_table(sample_result(), TableOptions(width=120))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("Host"))
    assert header.split() == ["Host", "Status", "Sev", "1", "2", "3", "Message"]
    bad = next(line for line in lines if line.startswith("SRV-BAD"))
    assert bad.split()[:6] == ["SRV-BAD", "noncompliant", "H", "✓", "✗", "E"]
    assert "vss.service.startup: VSS startup type is Disabled (+1 more)" in bad
    warn = next(line for line in lines if line.startswith("SRV-WARN"))
    assert warn.split()[2:5] == ["!", "w", "-"]
    assert "Legend: ✓ pass  ✗ fail  ! warn  E error  ? unknown  - skip  w waived" in text
    assert "Severity: C critical  H high  M medium  L low  I info" in text
    assert text.index("SRV-DOWN") < text.index("SRV-BAD") < text.index("SRV-OK")
    per_check = next(line for line in lines if line.startswith("2 ") and CHECKS[1] in line)
    assert per_check.split()[1:9] == ["H", CHECKS[1], "1", "1", "0", "0", "1", "SRV-BAD"]
    assert lines[-1] == summary_line(sample_result())
    assert lines[-1].startswith("5 hosts: 2 compliant, 1 noncompliant, 1 unreachable, 1 auth_failed; 1 failed check")


def test_table_views_and_ascii() -> None:
    result = sample_result()
    summary = render_table(result, TableOptions(view="summary", width=120))
    assert summary.strip() == summary_line(result)
    checks = render_table(result, TableOptions(view="checks", width=120))
    assert "Failing hosts" in checks and "Legend" not in checks
    hosts = render_table(result, TableOptions(view="hosts", ascii=True, width=120))
    assert "Failing hosts" not in hosts and "✓" not in hosts
    bad = next(line for line in hosts.splitlines() if line.startswith("SRV-BAD"))
    assert bad.split()[:6] == ["SRV-BAD", "noncompliant", "H", ".", "X", "E"]


def test_large_fleet_collapses_unless_wide() -> None:
    result = big_result(300)
    text = render_table(result, TableOptions(max_rows=40, width=120))
    host_rows = [line for line in text.splitlines() if line.startswith("SRV")]
    assert len(host_rows) == 40
    assert "... 3 more hosts with problems not shown" in text
    assert "... 257 compliant hosts not shown" in text
    assert "SRV0000, SRV0007, SRV0014, SRV0021, SRV0028 +38 more" in text
    wide = render_table(result, TableOptions(wide=True, width=160))
    assert len([line for line in wide.splitlines() if line.startswith("SRV")]) == 300
    assert "+38 more" not in wide and max(len(line) for line in wide.splitlines()) <= 160


def test_json_round_trip_and_schema(tmp_path: Path) -> None:
    result = sample_result()
    doc = json.loads(json_report.render(result))
    assert doc["schema"] == REPORT_SCHEMA == "fleetcheck/report/v1"
    assert [h["host"] for h in doc["hosts"]] == [h.host for h in sorted_hosts(result)]  # the table's order
    assert doc["hosts"][2]["checks"][1]["observed"] == "Disabled"
    assert list(doc)[-2:] == ["summary", "hosts"]
    assert doc["summary"]["hosts"] == 5 and doc["summary"]["by_status"]["unreachable"] == 1
    assert (doc["summary"]["unchecked"], doc["summary"]["failed_checks"], doc["summary"]["waived"]) == (2, 1, 1)
    assert doc["summary"]["failing_checks"][0] == {"check_id": CHECKS[1], "severity": "high", "hosts": 1}
    path = tmp_path / "out" / "run.json"
    get_writer("json")(result, path, ReportContext())
    assert json_report.load(path) == result.model_copy(update={"hosts": sorted_hosts(result)})


def test_json_load_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"run_id": 1}', encoding="utf-8")
    with pytest.raises(json_report.ResultsFileError, match="not a fleetcheck json report"):
        json_report.load(bad)
    other = tmp_path / "other.json"
    other.write_text(sample_result().model_copy(update={"schema_": "x/v9"}).model_dump_json(by_alias=True))
    with pytest.raises(json_report.ResultsFileError, match="x/v9"):
        json_report.load(other)
    with pytest.raises(json_report.ResultsFileError, match="cannot read"):
        json_report.load(tmp_path / "missing.json")


def test_csv_one_row_per_host_and_check() -> None:
    rows = list(csv.DictReader(io.StringIO(csv_report.render(sample_result()))))
    assert len(rows) == 2 + 3 * 3  # two unchecked hosts get one row each
    assert rows[0]["host"] == "'=cmd|calc"  # formula defused
    assert rows[1] == rows[1] | {"host": "SRV-DOWN", "host_status": "unreachable", "check_id": ""}
    fail = next(r for r in rows if r["check_status"] == "fail")
    assert (fail["host"], fail["check_id"], fail["observed"], fail["expected"], fail["severity"]) == (
        "SRV-BAD", CHECKS[1], "Disabled", "Manual", "high",
    )
    waived = next(r for r in rows if r["check_status"] == "waived")
    assert waived["waiver"] == "CHG-42 until 2026-12-31"


def test_junit_parses_with_counts() -> None:
    root = ET.fromstring(junit.render(sample_result()).encode())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("14", "1", "3", "2")
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert set(suites) == {"=cmd|calc", "SRV-DOWN", "SRV-BAD", "SRV-OK", "SRV-WARN"}
    bad = suites["SRV-BAD"]
    assert (bad.get("tests"), bad.get("failures"), bad.get("errors")) == ("4", "1", "1")
    failure = bad.find(f"testcase[@name='{CHECKS[1]}']/failure")
    assert failure is not None and failure.get("message") == "VSS startup type is Disabled"
    assert "remediation: Set-Service VSS -StartupType Manual" in (failure.text or "")
    assert bad.find(f"testcase[@name='{CHECKS[2]}']/error") is not None
    down = suites["SRV-DOWN"].find("testcase[@name='connect']/error")
    assert down is not None and down.get("type") == "unreachable"
    warn = suites["SRV-WARN"]
    assert warn.get("skipped") == "2" and warn.get("failures") == "0"
    skipped = warn.find(f"testcase[@name='{CHECKS[1]}']/skipped")
    assert skipped is not None and "CHG-42" in (skipped.get("message") or "")
    assert suites["SRV-OK"].get("tests") == "4" and suites["SRV-OK"].find("testcase/failure") is None


def test_junit_loads_in_junitparser_with_host_classes_and_real_times() -> None:
    """junitparser (a real JUnit XML consumer) sees one class per host, check ids as test names."""
    from junitparser import Error, Failure, JUnitXml, Skipped

    run = sample_result()
    run.hosts[1] = run.hosts[1].model_copy(update={"host": "ber-fs01.corp.example.com", "duration_s": 2.5})
    xml = JUnitXml.fromstring(junit.render(run))
    cases = {(case.classname, case.name): case for suite in xml for case in suite}
    # Jenkins' rule: package = classname up to the last dot, class = the rest
    classes = {cn.rpartition(".")[2] for cn, _ in cases}
    packages = {cn.rpartition(".")[0] for cn, _ in cases}
    assert packages == {"fleetcheck"} and "ber-fs01_corp_example_com" in classes
    connect = cases[("fleetcheck.ber-fs01_corp_example_com", "connect")]
    assert connect.time == 2.5 and connect.is_passed
    failed = cases[("fleetcheck.ber-fs01_corp_example_com", CHECKS[1])]
    assert isinstance(failed.result[0], Failure) and failed.result[0].message == "VSS startup type is Disabled"
    assert isinstance(cases[("fleetcheck.SRV-DOWN", "connect")].result[0], Error)
    assert isinstance(cases[("fleetcheck.SRV-WARN", CHECKS[2])].result[0], Skipped)
    suites = {suite.name: suite for suite in xml}
    assert suites["ber-fs01.corp.example.com"].time == 2.5 and suites["ber-fs01.corp.example.com"].tests == 4


def test_markdown_contents() -> None:
    text = markdown.render(sample_result())
    assert text.startswith("# fleetcheck run r-0001")
    assert "| =cmd\\|calc | auth_failed |" in text
    assert f"| SRV-BAD | high | {CHECKS[1]}, {CHECKS[2]} | VSS startup type is Disabled |" in text
    assert "2 compliant hosts (1 with warnings) not listed." in text and "| SRV-OK" not in text
    section = text[text.index("## Failing checks") :]
    assert f"### `{CHECKS[1]}`" in section and "(high, 1 host)" in section
    assert "Fix: Set-Service VSS -StartupType Manual" in section and "Hosts: SRV-BAD" in section


def test_markdown_stays_short_for_a_big_fleet() -> None:
    text = markdown.render(big_result(1000))
    assert "857 compliant hosts not listed." in text
    assert len(text.splitlines()) < 1000 * 0.2  # 143 noncompliant rows plus headings, not 1,000 rows


def test_every_builtin_writer_writes_atomically(tmp_path: Path) -> None:
    result = sample_result()
    for fmt in ("json", "csv", "junit", "markdown"):
        path = tmp_path / "nested" / f"report.{fmt}"
        get_writer(fmt)(result, path, ReportContext())
        assert path.stat().st_size > 100
    assert [p.name for p in (tmp_path / "nested").iterdir() if p.name.startswith(".")] == []


def test_write_atomic_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    write_atomic(path, "old")

    with pytest.raises(TypeError):
        write_atomic(path, 12345)  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.txt"]


@pytest.mark.parametrize(
    ("spec", "fmt", "path"),
    [("json:out/r.json", "json", "out/r.json"), ("JUnit:x.xml", "junit", "x.xml"), ("csv:/a:b.csv", "csv", "/a:b.csv")],
)
def test_parse_report_spec(spec: str, fmt: str, path: str) -> None:
    assert parse_report_spec(spec) == (fmt, Path(path))


@pytest.mark.parametrize(("spec", "words"), [("json", "FORMAT:PATH"), ("pdf:x.pdf", "unknown format 'pdf'"), ("csv:", "FORMAT:PATH")])
def test_bad_report_spec(spec: str, words: str) -> None:
    with pytest.raises(ReportSpecError, match=words):
        parse_report_spec(spec)


def test_empty_run_renders_everywhere() -> None:
    from report_samples import T0

    empty = RunResult(run_id="e", started_at=T0)
    assert "0 hosts" in render_table(empty)
    assert junit.render(empty).count("testsuite") == 1  # only the root's name
    assert csv_report.render(empty).count("\n") == 1


def test_checks_passing_everywhere_fold_into_one_line() -> None:
    text = render_table(big_result(20), TableOptions(view="checks", width=120))
    assert f"Passed on every checked host: 1 {CHECKS[0]}, 3 {CHECKS[2]}" in text
    rows = [line for line in text.splitlines() if line[:1].isdigit() and "hosts:" not in line]
    assert len(rows) == 1 and rows[0].split()[:5] == ["2", "M", CHECKS[1], "17", "3"]
    wide = render_table(big_result(20), TableOptions(view="checks", wide=True, width=120))
    assert "Passed on every" not in wide
    assert len([x for x in wide.splitlines() if x[:1].isdigit() and "hosts:" not in x]) == 3


def test_many_checks_use_one_compact_column() -> None:
    from report_samples import check

    result = sample_result()
    ids = [f"chk-{i:02d}" for i in range(12)]
    result.check_ids = ids
    for h in result.hosts:
        if h.checks:
            h.checks = [check(cid, h.checks[i % 3].status) for i, cid in enumerate(ids)]
    lines = render_table(result, TableOptions(view="hosts", width=100)).splitlines()
    assert lines[0].split() == ["Host", "Status", "Sev", "1", "6", "11", "Message"]
    bad = next(line for line in lines if line.startswith("SRV-BAD"))
    assert "✓✗E✓✗ E✓✗E✓ ✗E" in bad
    assert any(line.startswith("Checks: 1 chk-00, 2 chk-01") for line in lines)


def test_json_report_from_texts_rendered_during_the_run_is_the_same_file(tmp_path: Path) -> None:
    """Rows recorded clean are rendered as they are recorded; the file is byte for byte the one
    rendered at the end. A hostile row and a waiver's copy of a row are rendered at the end."""
    from fleetcheck.reports import sanitize

    run = sample_result()
    hostile = run.hosts[1].model_copy(update={"message": "boom \x1b]0;owned\x07"})
    run.hosts[1] = hostile
    spool = json_report.HostSpool()
    for host in run.hosts:
        sanitize.note_row(host, host.model_dump_json())
        spool.add(host)
    copy = run.hosts[0].model_copy(update={"message": "waived"})  # made after recording, never spooled
    run.hosts[0] = copy
    rendered: list[str] = []
    real = json_report._host_text
    try:
        json_report._host_text = lambda host: rendered.append(host.host) or real(host)  # type: ignore[assignment]
        clean = sanitize.sanitize_result(run)
        json_report.write(clean, tmp_path / "early.json", ReportContext(prerendered=spool))
    finally:
        json_report._host_text = real  # type: ignore[assignment]
        spool.close()
    json_report.write(clean, tmp_path / "late.json", ReportContext())
    assert (tmp_path / "early.json").read_bytes() == (tmp_path / "late.json").read_bytes()
    assert sorted(rendered) == sorted([copy.host, hostile.host])  # every other host came from the spool
    assert "\x1b" not in (tmp_path / "early.json").read_text(encoding="utf-8")


def test_a_spool_that_cannot_be_written_leaves_the_report_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleetcheck.reports import sanitize

    run = sample_result()
    spool = json_report.HostSpool()
    sanitize.note_row(run.hosts[0], run.hosts[0].model_dump_json())
    spool.add(run.hosts[0])

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    monkeypatch.setattr(spool, "_file", Full())
    for host in run.hosts[1:]:
        sanitize.note_row(host, host.model_dump_json())
        spool.add(host)  # the failure is logged, never raised
    assert spool.text(run.hosts[0]) is None  # the whole spool is dropped, not only later rows
    json_report.write(run, tmp_path / "r.json", ReportContext(prerendered=spool))
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == json_report.render(run)
