"""fleetcheck as a library: a whole fleet check through `fleetcheck.api`, no CLI and no network."""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fleetcheck import api
from fleetcheck.errors import UserError
from fleetcheck.history import History
from fleetcheck.journal import read_journal
from fleetcheck.results import HostResult, HostStatus, RunResult
from fleetcheck.transports.base import ScriptOutput
from fleetcheck.transports.mock import MockTransport
from fleetcheck.transports.target import Target

SCENARIOS = {"WEB01": "healthy-2019", "WEB02": "wsb-missing", "DB01": "healthy-2019"}


class LabAnswers(MockTransport):
    """A MockTransport answering the bundle in-process from a lab scenario per host, as Windows would."""

    def __init__(self) -> None:
        super().__init__(self.answer, name="psrp")
        self.seen: list[str] = []

    def answer(self, target: Target, script: str, args_json: str) -> ScriptOutput:
        from fleetcheck.lab.host import LabHost
        from fleetcheck.lab.scenarios import load_scenario
        from fleetcheck.lab.simprobes import answer_bundle

        self.seen.append(target.name)
        machine = load_scenario(SCENARIOS[target.name]).model_copy(update={"hostname": target.name})
        return ScriptOutput(stdout=answer_bundle(LabHost(target.name, machine), script, args_json))


class Recorder:
    """A ProgressSink that remembers what it was told."""

    def __init__(self) -> None:
        self.total = -1
        self.done: list[str] = []
        self.finished: RunResult | None = None

    def run_started(self, total: int) -> None:
        self.total = total

    def host_done(self, host: HostResult) -> None:
        self.done.append(host.host)

    def run_finished(self, result: RunResult, total: int) -> None:
        self.finished = result


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network used: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "prod.yml"
    path.write_text(
        textwrap.dedent(
            """\
            vars: {username: ops, password: not-a-real-one, scheme: http}
            groups:
              web:
                hosts:
                  WEB01: {address: 192.0.2.1}
                  WEB02: {address: 192.0.2.2}
            hosts:
              DB01: {address: 192.0.2.3}
            """
        ),
        encoding="utf-8",
    )
    return path


WAIVERS = """\
waivers:
  - check: "wsb-*"
    hosts: [WEB02]
    justification: "Replaced by Veeam until the migration (CHG-1234)"
    expires: 2099-12-31
"""


def test_a_fleet_check_from_python(tmp_path: Path, inventory: Path, no_network: None) -> None:
    transport = LabAnswers()
    progress = Recorder()
    options = api.RunOptions(
        limit="web",
        reports=[api.ReportSpec("json", tmp_path / "out" / "run.json")],
        journal=tmp_path / "journal.jsonl",
        history=tmp_path / "history.sqlite3",
        transports={"psrp": transport},
        progress=progress,
        handle_sigterm=False,
    )
    outcome = api.run(inventory, ["system-state-backup"], options)
    assert sorted(transport.seen) == ["WEB01", "WEB02"] and progress.total == 2
    assert sorted(progress.done) == ["WEB01", "WEB02"] and progress.finished is not None
    status = {h.host: h.status for h in outcome.run.hosts}
    assert status == {"WEB01": HostStatus.COMPLIANT, "WEB02": HostStatus.NONCOMPLIANT}
    assert outcome.exit_code == 1 and outcome.total_hosts == 2 and not outcome.errors
    assert outcome.run.counts()["failing_checks"] >= 1
    saved = json.loads((tmp_path / "out" / "run.json").read_text())
    assert {h["host"] for h in saved["hosts"]} == {"WEB01", "WEB02"}
    assert len(read_journal(tmp_path / "journal.jsonl").hosts) == 2
    with History(tmp_path / "history.sqlite3") as history:
        assert [r.run_id for r in history.list_runs()] == [outcome.run.run_id]
    assert outcome.changes is not None and outcome.changes.first_run


def test_run_applies_waivers_to_the_exit_code(tmp_path: Path, inventory: Path, no_network: None) -> None:
    waivers = tmp_path / "waivers.yml"
    waivers.write_text(WAIVERS, encoding="utf-8")
    options = api.RunOptions(waivers=waivers, transports={"psrp": LabAnswers()}, handle_sigterm=False)
    outcome = api.run(inventory, [], options)
    assert outcome.exit_code == 0, [(h.host, h.message) for h in outcome.run.hosts]
    web02 = next(h for h in outcome.run.hosts if h.host == "WEB02")
    assert web02.status is HostStatus.COMPLIANT and "waived" in web02.message


def test_bad_input_is_a_user_error_before_any_host(tmp_path: Path, inventory: Path) -> None:
    transport = LabAnswers()
    with pytest.raises(UserError, match="no such built-in playbook"):
        api.run(inventory, ["no-such-playbook"], api.RunOptions(transports={"psrp": transport}))
    with pytest.raises(UserError, match="psrp-client"):
        api.run(inventory, [], api.RunOptions(psrp_client="bogus", transports={"psrp": transport}))
    assert transport.seen == []


@pytest.fixture
def facts_dir(tmp_path: Path, inventory: Path) -> Path:
    facts = tmp_path / "facts"
    options = api.RunOptions(save_facts=facts, transports={"psrp": LabAnswers()}, handle_sigterm=False)
    assert api.run(inventory, [], options).exit_code == 1
    return facts


def test_evaluate_saved_applies_waivers(tmp_path: Path, facts_dir: Path) -> None:
    waivers = tmp_path / "waivers.yml"
    waivers.write_text(WAIVERS, encoding="utf-8")
    assert api.evaluate_saved(facts_dir).exit_code == 1
    outcome = api.evaluate_saved(facts_dir, [], api.EvaluateOptions(waivers=waivers))
    assert outcome.exit_code == 0
    assert {h.host: h.status for h in outcome.run.hosts}["WEB02"] is HostStatus.COMPLIANT


def test_evaluate_command_takes_waivers(tmp_path: Path, facts_dir: Path) -> None:
    from fleetcheck.cli import app

    waivers = tmp_path / "waivers.yml"
    waivers.write_text(WAIVERS, encoding="utf-8")
    result = CliRunner().invoke(app, ["evaluate", str(facts_dir), "--waivers", str(waivers), "--view", "summary"])
    assert result.exit_code == 0, result.output
    assert "0 failed checks, 2 waived" in result.output


def test_a_json_report_is_rendered_while_the_run_waits_on_hosts(
    tmp_path: Path, inventory: Path, no_network: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each host's report text is rendered when its row is recorded, not after the last host;
    the file is the one `render` gives for the outcome, and the spool is gone afterwards."""
    from fleetcheck.reports import json as json_report

    phases: list[str] = []
    writing = False
    real_text, real_write = json_report._host_text, json_report.write

    def text(host: HostResult) -> str:
        phases.append("report" if writing else "run")
        return real_text(host)

    def write(result: RunResult, path: Path, context: Any) -> None:
        nonlocal writing
        writing = True
        real_write(result, path, context)

    monkeypatch.setattr(json_report, "_host_text", text)
    monkeypatch.setattr(json_report, "write", write)
    report = tmp_path / "run.json"
    options = api.RunOptions(reports=[api.ReportSpec("json", report)], transports={"psrp": LabAnswers()},
                             handle_sigterm=False)
    outcome = api.run(inventory, ["system-state-backup"], options)
    assert len(outcome.run.hosts) == 3
    assert phases == ["run", "run", "run"]  # none left for the end
    assert report.read_text(encoding="utf-8") == json_report.render(outcome.run)
    assert isinstance(outcome.context.prerendered, json_report.HostSpool)
    assert outcome.context.prerendered.text(outcome.run.hosts[0]) is None  # closed with the run
