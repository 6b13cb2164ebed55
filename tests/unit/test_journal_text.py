"""The journal keeps every host, whatever text the host sent back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fleetcheck.journal import Journal, read_journal
from fleetcheck.results import CheckResult, CheckStatus, HostResult, HostStatus, RunResult

#: What a non-BMP character (U+1F600) becomes when a decoder splits it into UTF-16 halves,
#: plus a half on its own.
SPLIT_EMOJI = "\ud83d\ude00"
LONE = "\ud83d"


def test_lone_surrogates_in_host_text_do_not_end_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    run = RunResult(run_id="r1", started_at=datetime.now(UTC), inventory=f"inv{LONE}")
    bad = HostResult(
        host="H1", status=HostStatus.PROTOCOL_ERROR, message=f"winrs said {SPLIT_EMOJI} then {LONE}",
        checks=[CheckResult(check_id="c1", status=CheckStatus.FAIL, message="m", observed={"k": LONE})],
    )
    good = HostResult(host="H2", status=HostStatus.COMPLIANT, message="fine")
    with Journal(path) as journal:
        journal.write_start(run)
        journal.write_host(run.run_id, bad)
        journal.write_host(run.run_id, good)
        journal.write_end(run)
    back = read_journal(path)
    assert [h.host for h in back.hosts] == ["H1", "H2"] and not back.interrupted
    assert back.hosts[0].message == "winrs said \U0001f600 then \ufffd"
    assert back.hosts[0].checks[0].observed == {"k": "\ufffd"}
    path.read_bytes().decode("utf-8")  # strict UTF-8 on disk


def test_clean_text_leaves_valid_text_alone() -> None:
    from fleetcheck.journal import clean_text

    assert clean_text("Zürich \U0001f600 ok") == "Zürich \U0001f600 ok"
    assert clean_text(LONE + "x") == "\ufffdx"


def test_a_hosts_error_text_reaches_every_report(tmp_path: Path) -> None:
    from fleetcheck.reports.base import WRITERS, ReportContext, get_writer

    host = HostResult(host="H1", status=HostStatus.PROTOCOL_ERROR, message=f"ssh said {LONE}{SPLIT_EMOJI}")
    assert host.message == "ssh said \ufffd\U0001f600"
    run = RunResult(run_id="r1", started_at=datetime.now(UTC), hosts=[host])
    for fmt in WRITERS:
        get_writer(fmt)(run, tmp_path / f"r.{fmt}", ReportContext())
        assert "ssh said" in (tmp_path / f"r.{fmt}").read_text(encoding="utf-8") or fmt == "prometheus"
