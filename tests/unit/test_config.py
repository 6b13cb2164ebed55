"""fleetcheck.toml: layered lookup, validation with file and line, path anchoring, `describe`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fleetcheck import config


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    system, user, cwd = tmp_path / "etc", tmp_path / "user", tmp_path / "work"
    for d in (system, user, cwd):
        d.mkdir()
    monkeypatch.setattr(config, "SYSTEM_DIR", system)
    monkeypatch.setattr(config, "user_config_dir", lambda: user)
    return {"system": system, "user": user, "cwd": cwd}


def test_layers_later_files_win_key_by_key(dirs: dict[str, Path]) -> None:
    (dirs["system"] / "fleetcheck.toml").write_text('[run]\nforks = 20\ntimeout = 60\nfail_on = "any"\n')
    (dirs["user"] / "fleetcheck.toml").write_text("[run]\nforks = 30\n")
    (dirs["cwd"] / "fleetcheck.toml").write_text(
        '# nightly\n[run]\n\nreports = ["html:out/report.html"]\nhistory = "state/h.sqlite3"\n'
    )
    eff = config.load(cwd=dirs["cwd"])
    assert eff.value("forks") == 30 and eff.run["forks"].source == f"{dirs['user'] / 'fleetcheck.toml'}:2"
    assert eff.value("timeout") == 60 and eff.value("fail_on") == "any"
    assert eff.value("history") == dirs["cwd"] / "state" / "h.sqlite3"  # relative to the file
    assert eff.value("reports") == [f"html:{dirs['cwd'] / 'out' / 'report.html'}"]
    assert eff.run["reports"].source.endswith("fleetcheck.toml:4")
    config.merge_cli(eff, {"forks": 5, "timeout": None})
    assert eff.value("forks") == 5 and eff.run["forks"].source == "command line" and eff.value("timeout") == 60


def test_explicit_file_replaces_the_search(dirs: dict[str, Path], tmp_path: Path) -> None:
    (dirs["cwd"] / "fleetcheck.toml").write_text("[run]\nforks = 30\n")
    other = tmp_path / "other.toml"
    other.write_text("[run]\nview = 'summary'\n")
    eff = config.load(other, cwd=dirs["cwd"])
    assert eff.files == [other] and eff.value("forks") is None and eff.value("view") == "summary"
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[run]\nforks = 10\nforcks = 3\n", r"fleetcheck.toml:3: run.forcks: unknown option; did you mean 'forks'\?"),
        ("[run]\n\nforks = 0\n", r"fleetcheck.toml:3: run.forks: Input should be greater than or equal to 1 \(got 0\)"),
        ('[run]\nfail_on = "sometimes"\n', r"fleetcheck.toml:2: run.fail_on: Input should be 'noncompliant', 'unreachable' or 'any'"),
        ('[run]\nreports = ["pdf:x.pdf"]\n', r"fleetcheck.toml:2: run.reports: .*unknown format 'pdf'"),
        ("[runn]\nforks = 3\n", r"fleetcheck.toml:1: unknown section or key 'runn'; options of `fleetcheck run` go under \[run\]"),
        ("[run]\nforks = \n", r"fleetcheck.toml: not valid TOML"),
    ],
)
def test_mistakes_name_file_line_and_fix(dirs: dict[str, Path], text: str, message: str) -> None:
    (dirs["cwd"] / "fleetcheck.toml").write_text(text)
    with pytest.raises(config.ConfigError, match=message):
        config.load(cwd=dirs["cwd"])


def test_describe_prints_values_and_sources_as_toml(dirs: dict[str, Path]) -> None:
    (dirs["cwd"] / "fleetcheck.toml").write_text('[run]\nforks = 25\nmail_to = "ops@example.com"\nwide = true\n')
    eff = config.merge_cli(config.load(cwd=dirs["cwd"]), {"limit": "dc-*"})
    text = config.describe(eff)
    lines = {line.split("=")[0].strip(): line.split("=", 1)[1].strip() for line in text.splitlines() if " = " in line}
    assert lines["forks"] == f"25    # {dirs['cwd'] / 'fleetcheck.toml'}:2"
    assert lines["limit"] == '"dc-*"    # command line'
    assert lines["timeout"] == "(default)"
    body = "\n".join(line.split("    #")[0] for line in text.split("[run]\n")[1].splitlines() if "(default)" not in line)
    assert tomllib.loads(body) == {"forks": 25, "mail_to": "ops@example.com", "wide": True, "limit": "dc-*"}


def test_every_config_key_is_a_run_option() -> None:
    from fleetcheck.cli_options import CONFIGURABLE, PARAM_OF

    assert {PARAM_OF.get(k, k) for k in config.RunConfig.model_fields} == CONFIGURABLE
