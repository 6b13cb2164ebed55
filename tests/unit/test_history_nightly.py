"""The nightly pipeline end to end: two consecutive nights -> terminal, diff, HTML and mail agree.

One test drives two real lab runs (the runner against a LabFleet, a scenario changed between
the nights); the others use small hand-made runs to cover waivers, options and failures.
"""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_history import make_run
from test_mail import Sink, plain_smtp  # noqa: F401  (fixture)

from fleetcheck import nightly
from fleetcheck.history import History, RunLockedError
from fleetcheck.mail import MailSettings
from fleetcheck.reports.html import render
from fleetcheck.results import CheckStatus, HostStatus, RunResult

P, F = CheckStatus.PASS, CheckStatus.FAIL

#: scenario -> checks that fail on it (from the scenario library's own expectations)
FAILS = {"healthy-2019": set(), "wsb-missing": {"wsb-feature", "wsb-cmdlets"}, "mars-stopped": {"mars-service"}}


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, highlight=False), buf


def _mail(port: int, always: bool = False) -> MailSettings:
    return MailSettings(
        to=["ops@example.test"], smtp_host="127.0.0.1", smtp_port=port, sender="fc@example.test", always=always, attempts=1
    )


def _html_list(html: str, section: str) -> set[tuple[str, str]]:
    if f'id="{section}"' not in html:
        return set()
    part = html.split(f'id="{section}"')[1].split("</ul>")[0]
    return set(re.findall(r">([\w.-]+)</a> · <code>([\w.-]+)</code>", part))


async def _lab_night(tmp_path: Path, night: int, mix: dict[str, int], seed: int, faults: str) -> tuple[RunResult, dict[str, str]]:
    from fleetcheck.inventory.loader import load_credentials, load_inventory
    from fleetcheck.lab.fleet import PASSWORD_ENV, LabFleet
    from fleetcheck.playbook import load_playbook
    from fleetcheck.runner import RunOptions, run_fleet

    async with LabFleet(hosts=5, mix=mix, seed=seed, faults=faults) as fleet:
        inv = fleet.write_inventory(tmp_path / f"night{night}.yml")
        hosts = load_credentials(load_inventory(inv).hosts, environ={PASSWORD_ENV: fleet.password})
        run = await run_fleet(hosts, [load_playbook("system-state-backup")], RunOptions(forks=5, timeout=20, retries=0))
        return run, {name: h.scenario for name, h in fleet.hosts.items()}


async def test_two_lab_nights_agree_everywhere(tmp_path: Path, plain_smtp: tuple[Sink, int]) -> None:  # noqa: F811
    sink, port = plain_smtp
    opts = nightly.NightlyOptions(history_path=tmp_path / "history.sqlite3", mail=_mail(port))
    nightly.prepare(opts)

    mix = {"healthy-2019": 2, "wsb-missing": 2, "mars-stopped": 1}
    run1, scen1 = await _lab_night(tmp_path, 1, mix, seed=0, faults="")
    with nightly.run_guard(opts):
        out1 = nightly.finish_run(run1, opts, _console()[0])
    assert out1.recorded and out1.changes is not None and out1.changes.first_run

    # Night 2: scenarios moved around (fixes and breakages) and LAB-0005 stopped answering.
    mix2 = {"healthy-2019": 2, "wsb-missing": 1, "mars-stopped": 2}
    run2, scen2 = await _lab_night(tmp_path, 2, mix2, seed=4, faults="LAB-0005:refuse")
    console, buf = _console()
    with nightly.run_guard(opts):
        out2 = nightly.finish_run(run2, opts, console)

    unreachable = {"LAB-0005"}
    expected_new = {(h, c) for h in scen2 if h not in unreachable for c in FAILS[scen2[h]] - FAILS[scen1[h]]}
    expected_fixed = {(h, c) for h in scen2 if h not in unreachable for c in FAILS[scen1[h]] - FAILS[scen2[h]]}
    expected_still = {(h, c) for h in scen2 if h not in unreachable for c in FAILS[scen1[h]] & FAILS[scen2[h]]}
    assert (len(expected_new), len(expected_fixed), len(expected_still)) == (3, 2, 1)  # the scenario change

    ch = out2.changes
    assert ch is not None
    assert {(c.host, c.check_id) for c in ch.new_failures} == expected_new
    assert {(c.host, c.check_id) for c in ch.fixed} == expected_fixed
    assert {(c.host, c.check_id) for c in ch.still_failing} == expected_still
    assert ch.still_failing[0].since == run1.started_at  # the streak began on night 1
    assert [h.host for h in ch.hosts_unreachable] == ["LAB-0005"]
    headline = "3 new failures, 2 fixed, 1 still failing, 1 host became unreachable"

    terminal = buf.getvalue()
    assert terminal.startswith(f"Since {run1.started_at:%Y-%m-%d %H:%M} UTC (run {run1.run_id}): {headline}.")

    diff = nightly.diff_text(opts.history_path)
    assert diff.splitlines()[0] == terminal.splitlines()[0]
    for host, check in expected_new:
        assert re.search(rf"^  {host}  {check}  fail", diff, re.M)

    html = render(out2.run, out2.context)
    assert _html_list(html, "new-failures") == expected_new
    assert _html_list(html, "fixed") == expected_fixed
    assert _html_list(html, "still-failing") == expected_still
    assert html.count("<circle") == 2  # two nights in the trend

    assert out2.mail_sent and len(sink.messages) == 2  # first night and the changed one
    msg = sink.messages[1]
    assert headline in msg["Subject"]
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and headline in body.get_content()
    (attachment,) = list(msg.iter_attachments())
    assert _html_list(attachment.get_content(), "new-failures") == expected_new


def test_waivers_history_and_exit_relevant_status(tmp_path: Path, plain_smtp: tuple[Sink, int]) -> None:  # noqa: F811
    sink, port = plain_smtp
    waivers = tmp_path / "waivers.yml"
    waivers.write_text(
        "waivers:\n"
        "  - check: a\n    hosts: [web1]\n    justification: CHG-7 replacement pending\n    expires: 2026-12-01\n"
        "  - check: a\n    hosts: [web2]\n    justification: was accepted\n    expires: 2026-11-01\n"
    )
    opts = nightly.NightlyOptions(
        history_path=tmp_path / "h.sqlite3", waivers_path=waivers, today=date(2026, 11, 20), mail=_mail(port)
    )
    nightly.prepare(opts)
    run = make_run("r1", 0, {"web1": {"a": F}, "web2": {"a": F}, "web3": {"a": P}})
    console, buf = _console()
    out = nightly.finish_run(run, opts, console)
    status = {h.host: h.status for h in out.run.hosts}
    assert status == {"web1": HostStatus.COMPLIANT, "web2": HostStatus.NONCOMPLIANT, "web3": HostStatus.COMPLIANT}
    assert any("expired on 2026-11-01" in n for n in out.notes)
    assert "expired on 2026-11-01" in buf.getvalue()
    with History(opts.history_path) as h:  # history keeps the waived status
        stored = h.get("r1")
    assert stored.hosts[0].checks[0].status == CheckStatus.WAIVED
    assert out.context.trend is not None and out.context.trend[0].waived_checks == 1
    assert "expired on 2026-11-01" in sink.messages[0].get_body(preferencelist=("plain",)).get_content()


def test_no_history_no_mail_unless_always(tmp_path: Path, plain_smtp: tuple[Sink, int]) -> None:  # noqa: F811
    sink, port = plain_smtp
    run = make_run("r1", 0, {"web1": {"a": F}})
    out = nightly.finish_run(run, nightly.NightlyOptions(history_path=None, mail=_mail(port)))
    assert out.changes is None and not out.mail_sent and sink.messages == []
    out = nightly.finish_run(run, nightly.NightlyOptions(history_path=None, mail=_mail(port, always=True)))
    assert out.mail_sent and len(sink.messages) == 1


def test_nothing_changed_sends_no_mail(tmp_path: Path, plain_smtp: tuple[Sink, int]) -> None:  # noqa: F811
    sink, port = plain_smtp
    opts = nightly.NightlyOptions(history_path=tmp_path / "h.sqlite3", mail=_mail(port))
    nightly.finish_run(make_run("r1", 0, {"web1": {"a": F}}), opts)
    out = nightly.finish_run(make_run("r2", 1, {"web1": {"a": F}}), opts)
    assert out.changes is not None and not out.changes.changed
    assert not out.mail_sent and len(sink.messages) == 1  # only the first night's


def test_mail_failure_is_reported_not_raised(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = nightly.NightlyOptions(history_path=tmp_path / "h.sqlite3", mail=_mail(port, always=True))
    out = nightly.finish_run(make_run("r1", 0, {"web1": {"a": F}}), opts)
    assert out.recorded and not out.mail_sent
    assert out.errors and "mail not sent" in out.errors[0]


def test_overlapping_runs_refused_by_guard(tmp_path: Path) -> None:
    opts = nightly.NightlyOptions(history_path=tmp_path / "h.sqlite3")
    with nightly.run_guard(opts), pytest.raises(RunLockedError, match="another fleetcheck run"), nightly.run_guard(opts):
        pass


def test_since_a_named_run(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    base = nightly.NightlyOptions(history_path=path)
    nightly.finish_run(make_run("r1", 0, {"web1": {"a": F}}), base)
    nightly.finish_run(make_run("r2", 1, {"web1": {"a": P}}), base)
    opts = nightly.NightlyOptions(history_path=path, since="r1")
    nightly.prepare(opts)
    out = nightly.finish_run(make_run("r3", 2, {"web1": {"a": F}}), opts)
    assert out.changes is not None and out.changes.previous_run_id == "r1"
    assert [c.host for c in out.changes.still_failing] == ["web1"]
    with pytest.raises(nightly.HistoryError, match="no run matches"):
        nightly.prepare(nightly.NightlyOptions(history_path=path, since="nope"))


@pytest.mark.parametrize(
    ("mail_to", "smtp", "message"),
    [
        ("ops@x.test", None, "needs --smtp"),
        (None, "relay:25", "without --mail-to"),
        ("ops@x.test", "relay:port", "HOST:PORT"),
        ("nobody", "relay", "not an e-mail address"),
    ],
)
def test_mail_option_errors(mail_to: Any, smtp: Any, message: str) -> None:
    with pytest.raises(nightly.NightlyConfigError, match=message):
        nightly.mail_settings(mail_to, smtp)


def test_bad_waivers_file_fails_before_the_run(tmp_path: Path) -> None:
    bad = tmp_path / "w.yml"
    bad.write_text("waivers:\n  - check: a\n    hosts: [x]\n    expires: 2026-01-01\n")
    with pytest.raises(nightly.NightlyConfigError, match=r"w.yml:2: waiver #1: `justification`"):
        nightly.prepare(nightly.NightlyOptions(waivers_path=bad))


def test_list_runs_text(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    assert "no history yet" in nightly.list_runs_text(path)
    nightly.finish_run(make_run("r1", 0, {"web1": {"a": F}, "web2": {"a": P}}), nightly.NightlyOptions(history_path=path))
    assert nightly.list_runs_text(path) == "r1  2026-11-01 02:00  prod.yml  1/2 compliant, 1 failing, 0 waived, 0 not checked"
