"""The command-line habits ops people bring: -h, -i, --list-hosts, -v, filters, --fail-on,
explain by number, case-insensitive --limit, --ask-pass without a terminal, fleetcheck.toml,
shell completion. Hosts point at a closed port on loopback, so runs end at once (unreachable).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetcheck.cli import app

runner = CliRunner()
ENV = {"FC_HAB_PW": "x", "COLUMNS": "120"}


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={**ENV, **(env or {})})
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


@pytest.fixture
def inv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three hosts nobody listens for; the current directory is a clean tmp folder (no config)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("fleetcheck.config.SYSTEM_DIR", tmp_path / "etc")
    monkeypatch.setattr("fleetcheck.config.user_config_dir", lambda: tmp_path / "user")
    path = tmp_path / "prod.yml"
    path.write_text(
        textwrap.dedent(
            """\
            vars: {username: ops, password_env: FC_HAB_PW, scheme: http, port: 9, timeout: 5}
            groups:
              web:
                hosts:
                  WEB01: {address: 127.0.0.1}
                  WEB02: {address: 127.0.0.1}
            hosts:
              DB01: {address: 127.0.0.1}
            """
        ),
        encoding="utf-8",
    )
    return path


def _run(inv: Path, *extra: str) -> tuple[int, str]:
    return invoke("run", str(inv), "--no-history", "--journal", str(inv.parent / "j.jsonl"), "--view", "summary", *extra)


def test_short_help_and_inventory_option(inv: Path) -> None:
    code, out = invoke("-h")
    assert code == 0 and "Exit codes:" in out
    code, out = invoke("run", "-h")
    assert code == 0 and "-i, --inventory" in out and "--fail-on" in out and "--tags" in out and "last~N" in out
    code, out = invoke("run", "-i", str(inv), "--list-hosts")
    assert code == 0 and out.split() == ["hosts", "(3):", "WEB01", "WEB02", "DB01"]
    code, out = invoke("run", "--list-hosts")
    assert code == 2 and "no inventory" in out


def test_limit_matches_host_names_in_any_case(inv: Path) -> None:
    code, out = invoke("run", str(inv), "--limit", "web0*:!Web02", "--list-hosts")
    assert code == 0 and out.split() == ["hosts", "(1):", "WEB01"]


def test_fail_on_chooses_which_hosts_fail_the_run(inv: Path) -> None:
    code, out = _run(inv)
    assert code == 3 and "3 hosts: 3 unreachable" in out
    assert _run(inv, "--fail-on", "noncompliant")[0] == 0  # nothing failed a check; down hosts do not count
    assert _run(inv, "--fail-on", "unreachable")[0] == 3
    code, out = _run(inv, "--fail-on", "sometimes")
    assert code == 2 and "--fail-on 'sometimes': expected any, noncompliant, unreachable" in out


def test_check_filters_are_validated_before_any_connection(inv: Path) -> None:
    code, out = _run(inv, "--tags", "nosuch")
    assert code == 2 and "tag 'nosuch' is on no check" in out
    code, out = _run(inv, "--checks", "dotnett")
    assert code == 2 and "did you mean dotnet" in out
    assert _run(inv, "--tags", "WSB", "--skip-tags", "mars", "--checks", "1,clock")[0] == 3  # valid filters run


def test_ask_pass_without_a_terminal_is_a_usage_error(inv: Path) -> None:
    code, out = _run(inv, "--ask-pass")
    assert code == 2 and "--ask-pass needs a terminal" in out


def test_verbose_logs_to_stderr(inv: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fleetcheck", "run", str(inv), "--no-history", "--journal", str(inv.parent / "j"),
         "--view", "summary", "-v"],
        capture_output=True, text=True, env={**os.environ, **ENV}, cwd=inv.parent, timeout=60,
    )
    assert "INFO    fleetcheck.api: checking 3 hosts with system-state-backup" in result.stderr
    assert "WEB01: unreachable in" in result.stderr
    quiet = subprocess.run(
        [sys.executable, "-m", "fleetcheck", "run", str(inv), "--no-history", "--journal", str(inv.parent / "j"),
         "--view", "summary"],
        capture_output=True, text=True, env={**os.environ, **ENV}, cwd=inv.parent, timeout=60,
    )
    assert "INFO" not in quiet.stderr


def test_explain_by_number_and_any_case() -> None:
    from fleetcheck.checks.registry import CHECK_ORDER

    code, out = invoke("explain", "11")
    assert code == 0 and out.startswith(f"{CHECK_ORDER[10]}: ")
    code, out = invoke("explain", "VSS-Writers")
    assert code == 0 and out.startswith("vss-writers: ")
    code, out = invoke("explain", "99")
    assert code == 2 and "numbers checks 1 to" in out


def test_config_file_supplies_options_and_the_command_line_wins(inv: Path) -> None:
    (inv.parent / "fleetcheck.toml").write_text('[run]\nfail_on = "noncompliant"\nlimit = "web"\n')
    code, out = _run(inv)
    assert code == 0 and "2 hosts: 2 unreachable" in out  # limit and fail_on from the file
    assert _run(inv, "--fail-on", "any")[0] == 3
    code, out = invoke("config")
    assert code == 0 and f'fail_on         = "noncompliant"    # {inv.parent / "fleetcheck.toml"}:2' in out
    (inv.parent / "fleetcheck.toml").write_text("[run]\nforks = 0\n")
    code, out = _run(inv)
    assert code == 2 and "fleetcheck.toml:2: run.forks: Input should be greater than or equal to 1" in out


def test_shell_completion_answers(tmp_path: Path) -> None:
    env = {**os.environ, "_FLEETCHECK_COMPLETE": "complete_bash", "COMP_WORDS": "fleetcheck explain vss-w", "COMP_CWORD": "2"}
    done = subprocess.run([sys.executable, "-m", "fleetcheck"], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["vss-writers"]
    env |= {"COMP_WORDS": "fleetcheck ru", "COMP_CWORD": "1"}
    done = subprocess.run([sys.executable, "-m", "fleetcheck"], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["run"]
    script = subprocess.run([sys.executable, "-m", "fleetcheck", "--show-completion", "bash"], capture_output=True,
                            text=True, timeout=60)
    assert "_FLEETCHECK_COMPLETE=complete_bash" in script.stdout
