"""Host-controlled text never drives the terminal nor breaks XML, in any report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcheck.api import ReportSpec, write_reports
from fleetcheck.reports.base import WRITERS, ReportContext
from fleetcheck.reports.sanitize import _walk, may_be_unsafe, sanitize_result, sanitize_text
from fleetcheck.reports.table import TableOptions, render_table
from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult
from robustness.cli_helpers import cli

OSC = "\x1b]0;owned\x07"
CSI = "\x1b[31m"
HOSTILE = f"srv{OSC}{CSI}\x9b2J\x00\x0c\r"
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\x00", "\x0c", "\r")


def _result() -> RunResult:
    t0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    check = CheckResult(check_id="custom-x", status=CheckStatus.FAIL, message=f"got {HOSTILE}", observed=HOSTILE)
    hosts = [
        HostResult(host=HOSTILE, address="127.0.0.1", status=HostStatus.NONCOMPLIANT, checks=[check], started_at=t0,
                   message=HOSTILE),
        HostResult(host="ok", address="127.0.0.1", status=HostStatus.PROTOCOL_ERROR, message=f"fault {OSC}"),
    ]
    return RunResult(run_id="r1", started_at=t0, finished_at=t0, hosts=hosts, check_ids=["custom-x"])


def test_sanitize_text_keeps_tabs_and_newlines_visible_controls() -> None:
    assert sanitize_text("a\tb\nc") == "a\tb\nc"
    assert sanitize_text("\x1b[31m") == "\u241b[31m"


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_every_report_format_is_free_of_control_characters(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"out.{fmt}"
    assert write_reports(_result(), [ReportSpec(fmt, path)], ReportContext()) == []
    data = path.read_text(encoding="utf-8")
    assert not [c for c in FORBIDDEN if c in data], fmt
    if fmt == "junit":
        ET.fromstring(data.encode())
    if fmt == "json":
        assert any("srv" in h["host"] for h in json.loads(data)["hosts"])


def test_report_command_sanitizes(tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    saved.write_text(_result().model_dump_json(by_alias=True), encoding="utf-8")
    for fmt in ["table", *sorted(WRITERS)]:
        code, out = cli("report", str(saved), "-f", fmt)
        assert code == 0 and not [c for c in FORBIDDEN if c in out], fmt


def test_sanitized_result_keeps_every_host() -> None:
    assert [h.status for h in sanitize_result(_result()).hosts] == [h.status for h in _result().hosts]


def test_terminal_table_is_free_of_control_characters() -> None:
    text = render_table(_result(), TableOptions(view="full", wide=True))
    assert not [c for c in FORBIDDEN if c in text]



_TRICKY = st.text(alphabet="\\\x1b\x08\x0c\rbfru0019\x7f\x85\ufffe\ud800\udfff \t\n", max_size=12)


@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=12) | _TRICKY)
def test_the_json_fast_path_never_misses_an_unsafe_character(text: str) -> None:
    """`may_be_unsafe` only reads the JSON; it must say so whenever the walk would change a string."""
    check = CheckResult(check_id=text, status=CheckStatus.FAIL, message=text, observed={text: [text]})
    host = HostResult(host=text, status=HostStatus.NONCOMPLIANT, checks=[check])
    result = RunResult(run_id="r", started_at=datetime(2026, 11, 30, tzinfo=UTC), hosts=[host])
    dumped = result.model_dump(mode="python", by_alias=True)
    if _walk(dumped) != dumped:
        assert may_be_unsafe(result), repr(text)
        assert sanitize_result(result).hosts[0].checks[0].observed == {sanitize_text(text): [sanitize_text(text)]}
    elif not may_be_unsafe(result):
        assert sanitize_result(result) is result


def test_a_clean_result_is_not_rebuilt_and_a_windows_path_is_clean() -> None:
    t0 = datetime(2026, 11, 30, tzinfo=UTC)
    host = HostResult(host="srv", status=HostStatus.COMPLIANT, message=r"C:\backup\ref\f.txt \\srv\u001b")
    result = RunResult(run_id="r", started_at=t0, hosts=[host])
    assert not may_be_unsafe(result)
    assert sanitize_result(result) is result
    assert may_be_unsafe(_result())


def test_a_result_is_read_once_for_all_its_outputs_and_again_when_it_gains_a_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every report and the terminal table sanitize the same run: the hosts' JSON is read once.
    A host added afterwards is checked (and cleaned) like the first ones."""
    from fleetcheck.reports import sanitize

    reads: list[str] = []
    real = sanitize._may_be_unsafe
    monkeypatch.setattr(sanitize, "_may_be_unsafe", lambda model, **kw: reads.append("x") or real(model, **kw))
    t0 = datetime(2026, 11, 30, tzinfo=UTC)
    result = RunResult(run_id="r", started_at=t0, hosts=[HostResult(host=f"srv{i}", status=HostStatus.COMPLIANT) for i in range(3)])
    assert sanitize_result(result) is result
    first = len(reads)
    assert first == 4  # the run's own fields, then each host
    assert sanitize_result(result) is result and render_table(result, TableOptions(width=120))
    assert len(reads) == first
    result.hosts.append(HostResult(host=HOSTILE, status=HostStatus.COMPLIANT))
    clean = sanitize_result(result)
    assert clean is not result and not any(c in clean.hosts[-1].host for c in FORBIDDEN)
