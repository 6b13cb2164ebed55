"""Bad files get exit 2 with the file (and line when there is one), never exit 4 or unbounded reads."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from robustness.cli_helpers import cli

INVENTORY = "hosts:\n  h1: {address: 127.0.0.1, port: 9, scheme: http, username: u, password_env: FC_ROB_PW}\n"
ENV = {"FC_ROB_PW": "Sentinel-Pw1"}


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("null\n", "line 1"),
        ('{"record": "run", "run_id": "x", "started_at": "2026-01-01T00:00:00+00:00"}\n[1, 2]\n', "line 2"),
        ('{"record": "run", "run_id": "x", "started_at": "2026-01-01T00:00:00+00:00"}\n'
         '{"record": "host", "run_id": "x"}\n', "line 2"),
        ('{"record": "run", "run_id": "x"}\n', "line 1"),
        ('{"record": "run", "run_id": "x", "started_at": "2026-01-01T00:00:00+00:00"}\n'
         '{"record": "host", "run_id": "x", "result": {"status": 7}}\n', "line 2"),
    ],
)
def test_bad_journal_is_a_clear_error(tmp_path: Path, text: str, expected: str) -> None:
    journal = tmp_path / "run.jsonl"
    journal.write_text(text, encoding="utf-8")
    code, out = cli("report", str(journal), "-f", "table")
    assert code == 2 and "run.jsonl" in out and expected in out, out


def test_journal_option_naming_a_folder(inventory: Path, tmp_path: Path) -> None:
    code, out = cli("run", str(inventory), "--journal", str(tmp_path), env=ENV)
    assert code == 2 and "is a folder" in out, out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("what", ["playbook", "waivers", "report", "journal", "inventory"])
def test_dev_zero_as_input_is_bounded(inventory: Path, what: str) -> None:
    args = {
        "playbook": ["run", str(inventory), "-p", "/dev/zero"],
        "waivers": ["run", str(inventory), "--waivers", "/dev/zero"],
        "report": ["report", "/dev/zero", "-f", "table"],
        "journal": ["report", "/dev/zero", "-f", "json"],
        "inventory": ["inventory", "/dev/zero"],
    }[what]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    code, out = cli(*args, env=ENV)
    assert code == 2 and "/dev/zero" in out, out
    assert time.monotonic() - started < 10
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 400


def test_service_name_too_long_for_the_probe_is_refused_at_load(inventory: Path, tmp_path: Path) -> None:
    playbook = tmp_path / "pb.yml"
    playbook.write_text(f"name: t\nchecks:\n  service-vss:\n    params:\n      service: {'s' * 300}\n", encoding="utf-8")
    for args in (["checks", "-p", str(playbook)], ["run", str(inventory), "-p", str(playbook)]):
        code, out = cli(*args, env=ENV)
        assert code == 2 and "pb.yml, line 4" in out and "256" in out, out


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",  # recursive alias
        "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
                                                     for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "a: " + "{b: " * 1200 + "c" + "}" * 1200 + "\n",
        "name: t\x00\nchecks: {}\n",
        "base: &b {severity: low}\nchecks:\n  wsb-cmdlets:\n    <<: *b\n    severity: high\n",
    ],
)
@pytest.mark.parametrize("kind", ["inventory", "playbook", "waivers"])
def test_hostile_yaml_gets_a_clear_error(inventory: Path, tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / f"{kind}.yml"
    path.write_text(text, encoding="utf-8")
    args = {
        "inventory": ["inventory", str(path)],
        "playbook": ["checks", "-p", str(path)],
        "waivers": ["run", str(inventory), "--waivers", str(path), "--timeout", "1"],
    }[kind]
    code, out = cli(*args, env=ENV)
    assert code in (0, 1, 2, 3) and out.strip(), out
    if "<<" not in text:
        assert code == 2 and f"{kind}.yml" in out, out
