"""The CLI without a network: help, exit codes, one-paragraph errors, inventory, checks, report."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from report_samples import sample_result
from typer.testing import CliRunner

from fleetcheck.cli import app, main
from fleetcheck.reports import json as json_report
from fleetcheck.results import HostStatus, exit_code

runner = CliRunner()
SECRET = "Inline-Pw-7c2e"


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env=env)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "prod.yml"
    path.write_text(
        textwrap.dedent(
            f"""\
            vars: {{username: ops, password_env: FC_CLI_PW, scheme: http}}
            groups:
              web:
                hosts:
                  WEB01: {{address: 127.0.0.1, port: 9}}
                  WEB02: {{address: 127.0.0.1, port: 9, password: '{SECRET}'}}
            hosts:
              DB01: {{address: 127.0.0.1, port: 9}}
            """
        ),
        encoding="utf-8",
    )
    return path


def test_help_teaches_with_examples_and_exit_codes() -> None:
    code, out = invoke("--help")
    assert code == 0
    assert "fleetcheck run prod.yml" in out and "Exit codes:" in out
    for line in ("0  every host", "1  at least one check failed", "2  usage", "3  at least one host", "4  interrupted"):
        assert line in out
    code, out = invoke("run", "--help")
    assert code == 0 and "--limit PATTERN" in out and "--report FORMAT:PATH" in out and "Exit codes:" in out


def test_version() -> None:
    from fleetcheck import __version__

    assert invoke("--version") == (0, f"fleetcheck {__version__}\n")


def test_bad_inventory_exit_2_names_file_line_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("hosts:\n  A:\n    adress: 127.0.0.1\n", encoding="utf-8")
    code, out = invoke("run", str(bad))
    assert code == 2
    assert f"{bad}, line 3: 'hosts.A.adress': unknown key" in out
    code, out = invoke("inventory", str(bad))
    assert code == 2 and "line 3" in out


def test_missing_inventory_exit_2(tmp_path: Path) -> None:
    code, out = invoke("run", str(tmp_path / "nope.yml"))
    assert code == 2 and "inventory file not found" in out


def test_inventory_command_redacts_and_limits(inventory: Path) -> None:
    code, out = invoke("inventory", str(inventory))
    assert code == 0
    assert SECRET not in out
    assert "inline (redacted)" in out and "env:FC_CLI_PW" in out
    assert "password written in the inventory" in out  # the warning
    assert "3 of 3 hosts, native format" in out
    code, out = invoke("inventory", str(inventory), "--limit", "web:!WEB02")
    assert code == 0 and "WEB01" in out and "DB01" not in out and "1 of 3 hosts" in out


def test_limit_matching_nothing_exit_2(inventory: Path) -> None:
    code, out = invoke("run", str(inventory), "--limit", "nosuch", "--no-history")
    assert code == 2 and "matches no host" in out


def test_bad_report_spec_and_view_exit_2_before_connecting(inventory: Path) -> None:
    code, out = invoke("run", str(inventory), "--report", "pdf:x.pdf", "--no-history")
    assert code == 2 and "unknown format 'pdf'" in out
    code, out = invoke("run", str(inventory), "--view", "fancy", "--no-history")
    assert code == 2 and "--view 'fancy'" in out


def test_unknown_playbook_exit_2(inventory: Path) -> None:
    code, out = invoke("run", str(inventory), "-p", "no-such-playbook", "--no-history")
    assert code == 2 and "no such built-in playbook" in out


def test_missing_password_env_exit_2(inventory: Path) -> None:
    code, out = invoke("run", str(inventory), "--no-history", env={"FC_CLI_PW": ""})
    assert code == 2
    assert "FC_CLI_PW is not set for WEB01, DB01" in out and "--ask-pass" in out
    assert SECRET not in out


def test_since_with_no_history_is_a_usage_error(inventory: Path) -> None:
    code, out = invoke("run", str(inventory), "--no-history", "--since", "last", env={"FC_CLI_PW": "x"})
    assert code == 2 and "--since" in out


def test_checks_and_explain() -> None:
    code, out = invoke("checks")
    assert code == 0 and "wsb-feature" in out and "system-state-backup" in out
    code, out = invoke("explain", "wsb-feature")
    assert code == 0 and out.startswith("wsb-feature:") and "How to fix:" in out
    code, out = invoke("explain", "wsb-featur")
    assert code == 2 and "unknown check id 'wsb-featur'" in out and "wsb-feature" in out


def test_report_renders_saved_results(tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    saved.write_text(json_report.render(sample_result()), encoding="utf-8")
    code, out = invoke("report", str(saved), "--format", "table", "--view", "summary")
    assert code == 0 and out.startswith("5 hosts: 2 compliant, 1 noncompliant")
    code, out = invoke("report", str(saved), "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("run_id,host,")
    target = tmp_path / "out" / "junit.xml"
    code, _ = invoke("report", str(saved), "--format", "junit", "-o", str(target))
    assert code == 0 and target.read_text().startswith("<?xml")
    code, out = invoke("report", str(saved), "--format", "yaml")
    assert code == 2 and "unknown format 'yaml'" in out
    code, out = invoke("report", str(tmp_path / "missing.json"), "--format", "csv")
    assert code == 2 and "cannot read" in out
    (tmp_path / "junk.json").write_text(json.dumps({"hello": 1}))
    code, out = invoke("report", str(tmp_path / "junk.json"), "--format", "csv")
    assert code == 2 and "not a fleetcheck json report" in out


def test_evaluate_rejects_a_missing_folder(tmp_path: Path) -> None:
    code, out = invoke("evaluate", str(tmp_path / "nothing"))
    assert code == 2 and "not a folder of saved facts" in out
    code, out = invoke("evaluate", str(tmp_path))
    assert code == 2 and "no *.json facts files" in out
    (tmp_path / "H1.json").write_text("{not json")
    code, out = invoke("evaluate", str(tmp_path))
    assert code == 2 and "H1.json: not a fleetcheck facts document" in out


def test_exit_code_precedence() -> None:
    result = sample_result()
    assert exit_code(result) == 3  # unreachable beats noncompliant
    result.hosts = [h for h in result.hosts if h.status not in (HostStatus.UNREACHABLE, HostStatus.AUTH_FAILED)]
    assert exit_code(result) == 1
    result.hosts = [h for h in result.hosts if h.status == HostStatus.COMPLIANT]
    assert exit_code(result) == 0
    result.interrupted = True
    assert exit_code(result) == 4


def test_main_maps_click_errors_and_crashes(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["run"]) == 2  # missing argument
    assert main(["--bogus"]) == 2
    assert main(["--version"]) == 0

    def boom(*_: object) -> None:
        raise RuntimeError(f"kaboom {SECRET}")

    monkeypatch.setattr("fleetcheck.inventory.find_inventory", boom)
    assert main(["inventory", "x.yml"]) == 4
    err = capsys.readouterr().err
    assert "internal error (RuntimeError)" in err and SECRET not in err and "Traceback" not in err



def test_a_bare_typer_exception_is_a_usage_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Typer's usage errors render themselves (`show()`); a plain `TyperException` (raised by a
    plug-in command, say) has only its message, and is still a usage error, not a crash."""
    import typer

    def refuse(*_: object) -> None:
        raise typer.TyperException("no such thing")

    monkeypatch.setattr("fleetcheck.inventory.find_inventory", refuse)
    assert main(["inventory", "x.yml"]) == 2
    assert "Error: no such thing" in capsys.readouterr().err

README = Path(__file__).resolve().parents[2] / "README.md"


def _code_blocks(text: str) -> list[tuple[str, str]]:
    blocks = []
    parts = text.split("```")
    for i in range(1, len(parts), 2):
        lang, _, body = parts[i].partition("\n")
        blocks.append((lang.strip(), body))
    return blocks


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    before = text[: text.index("```")]
    assert before.strip() == "# fleetcheck"
    _, first = _code_blocks(text)[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_readme_yaml_examples_are_valid(tmp_path: Path) -> None:
    from fleetcheck.inventory import load_inventory
    from fleetcheck.playbook import parse_playbook

    yaml_blocks = [body for lang, body in _code_blocks(README.read_text(encoding="utf-8")) if lang == "yaml"]
    inventory_text = next(b for b in yaml_blocks if "groups:" in b)
    path = tmp_path / "readme-inv.yml"
    path.write_text(inventory_text, encoding="utf-8")
    assert [h.name for h in load_inventory(path).hosts] == ["PAR-DC01", "PAR-FS01", "BER-DC01"]
    playbook = parse_playbook(next(b for b in yaml_blocks if "custom_checks:" in b), "README")
    assert playbook.name == "my-baseline" and [c.id for c in playbook.custom_checks] == ["custom-smb1-off"]


def test_report_command_renders_prometheus_to_stdout(tmp_path: Path) -> None:
    saved = tmp_path / "run.json"
    saved.write_text(json_report.render(sample_result()), encoding="utf-8")
    code, out = invoke("report", str(saved), "--format", "prometheus")
    assert code == 0 and "fleetcheck_check_failing_hosts" in out


def test_unwritable_report_path_is_refused_before_running(inventory: Path, tmp_path: Path) -> None:
    code, out = invoke("run", str(inventory), "--no-history", "--report", f"json:{tmp_path}")
    assert code == 2 and "is a folder" in out
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = invoke("run", str(inventory), "--no-history", "--report", f"csv:{blocker / 'sub' / 'r.csv'}")
    assert code == 2 and "cannot create" in out


def test_big_journal_is_moved_aside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcheck import api

    monkeypatch.setattr(api.inputs, "JOURNAL_ROTATE_BYTES", 10)
    journal = tmp_path / "j" / "journal.jsonl"
    assert api.prepare_journal(journal) == journal and journal.parent.is_dir()
    journal.write_text("x" * 11)
    api.prepare_journal(journal)
    assert not journal.exists() and (tmp_path / "j" / "journal.jsonl.1").read_text() == "x" * 11


def test_lab_is_mounted_but_loaded_only_when_used() -> None:
    import subprocess
    import sys

    probe = "import sys, fleetcheck.cli; print(any(m.startswith('fleetcheck.lab') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "False\n"
    code, out = invoke("lab", "scenarios")
    assert code == 0 and "healthy-2019" in out
    code, out = invoke("lab", "--help")
    assert code == 0 and "serve" in out and "scenarios" in out
    code, out = invoke("lab", "serve", "--bogus")
    assert code == 2 and "No such option" in out


def test_diff_without_history_is_a_clear_error(tmp_path: Path) -> None:
    code, out = invoke("diff", "--history", str(tmp_path / "none.sqlite3"))
    assert code == 2 and "no history yet" in out


def test_ask_pass_prompts_once_per_username_then_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = tmp_path / "ask.yml"
    inv.write_text(
        "vars: {auth: ntlm, scheme: http, port: 9, timeout: 5}\n"
        "hosts:\n  A: {address: 127.0.0.1, username: alice}\n  B: {address: 127.0.0.1, username: alice}\n"
        "  C: {address: 127.0.0.1, username: bob}\n",
        encoding="utf-8",
    )
    asked: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return SECRET

    monkeypatch.setattr("fleetcheck.cli.getpass.getpass", fake_getpass)
    monkeypatch.setattr("fleetcheck.cli_options.stdin_is_terminal", lambda: True)
    report = tmp_path / "r.json"
    code, out = invoke(
        "run", str(inv), "--ask-pass", "--no-history", "--journal", str(tmp_path / "j.jsonl"),
        "--report", f"json:{report}", "--view", "summary",
    )  # fmt: skip
    assert asked == ["Password for alice: ", "Password for bob: "]
    assert code == 3 and "3 hosts: 3 unreachable" in out  # nothing listens on port 9
    assert SECRET not in out and SECRET not in report.read_text()
    assert SECRET not in (tmp_path / "j.jsonl").read_text()


def test_run_scope_names_the_inventory_and_the_limit(tmp_path: Path) -> None:
    from fleetcheck.api import run_scope

    inv = tmp_path / "prod.yml"
    assert run_scope(inv, None) == str(inv.resolve())
    assert run_scope(inv, "web*") == f"{inv.resolve()} --limit web*"


def test_run_gc_tuning_is_undone_after_the_run() -> None:
    import gc

    from fleetcheck.api import RUN_GC_THRESHOLD0, tuned_gc

    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with tuned_gc():
        assert gc.get_threshold()[0] == max(before[0], RUN_GC_THRESHOLD0)
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_every_error_written_for_the_user_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleetcheck.errors import UserError
    from fleetcheck.history import HistoryError, RunLockedError
    from fleetcheck.inventory import InventoryError, LimitError
    from fleetcheck.nightly import NightlyConfigError
    from fleetcheck.playbook import PlaybookError
    from fleetcheck.probes.bundle import BundleError
    from fleetcheck.reports.base import ReportSpecError
    from fleetcheck.reports.json import ResultsFileError
    from fleetcheck.waivers import WaiverFileError

    for cls in (HistoryError, RunLockedError, InventoryError, LimitError, NightlyConfigError, PlaybookError,
                BundleError, ReportSpecError, ResultsFileError, WaiverFileError):  # fmt: skip
        assert issubclass(cls, UserError), cls

    class Brand(UserError):
        """A user error the CLI has never heard of."""

    def refuse(names: list[str], **_: object) -> None:
        raise Brand(f"{names[0]}: line 3: what is wrong; what to do")

    monkeypatch.setattr("fleetcheck.api.load_inventory", refuse)
    code, out = invoke("inventory", "x.yml")
    assert code == 2 and "fleetcheck: x.yml: line 3: what is wrong; what to do" in out
