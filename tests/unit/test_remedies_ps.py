"""Every remedy script file and every composed remedy script parses under a real PowerShell grammar,
passes the Windows PowerShell 5.1 lint the probes pass, is ASCII and carries no playbook value."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_ps_grammar import lint_ps51, syntax_errors  # the probes' grammar helpers

from fleetcheck.remedies.base import Change
from fleetcheck.remedies.bundle import ACTIONS, REMEDIES_DIR, REMEDY_MARKER, build_remedy_bundle

tslp = pytest.importorskip("tree_sitter_language_pack")
PS1_FILES = sorted(REMEDIES_DIR.glob("*.ps1"))
HOSTILE = "C:\\x'; Restart-Computer -Force; $(Remove-Item C:\\ -Recurse) \"`n"


@pytest.fixture(scope="module")
def parser():  # type: ignore[no-untyped-def]
    return tslp.get_parser("powershell")


def test_every_action_has_its_file() -> None:
    names = {p.name for p in PS1_FILES}
    assert {ps1 for ps1, _ in ACTIONS.values()} | {"_preamble.ps1", "_dispatch.ps1"} <= names


@pytest.mark.parametrize("path", PS1_FILES, ids=lambda p: p.name)
def test_remedy_file_parses_is_ascii_and_passes_the_lint(parser, path: Path) -> None:  # type: ignore[no-untyped-def]
    text = path.read_text(encoding="utf-8")
    assert text.isascii()
    assert syntax_errors(parser, text) == []
    assert lint_ps51(parser, text) == []
    assert not re.search(r"Restart-Computer|Stop-Computer|shutdown", text, re.I), "a remedy never restarts the host"


def test_full_remedy_script_parses_and_keeps_values_out(parser) -> None:  # type: ignore[no-untyped-def]
    changes = [Change("c", action, "s", "b", "a", {"path": HOSTILE, "name": HOSTILE}) for action in ACTIONS]
    bundle = build_remedy_bundle(changes)
    assert bundle.script.startswith(REMEDY_MARKER + "\n")
    assert syntax_errors(parser, bundle.script) == [] and lint_ps51(parser, bundle.script) == []
    assert HOSTILE not in bundle.script and "Restart-Computer" not in bundle.script
    for action, (_, function) in ACTIONS.items():
        assert re.search(rf"(?m)^function {function} \{{", bundle.script)
        assert f"    '{action}' = '{function}'" in bundle.script
    first_code = next(ln for ln in bundle.script.splitlines() if ln.strip() and not ln.lstrip().startswith("#"))
    assert first_code == "param([string]$ArgsJson)"
    sent = json.loads(bundle.args_json)["changes"]
    assert [c["params"]["path"] for c in sent] == [HOSTILE] * len(ACTIONS)


def test_script_depends_only_on_the_actions() -> None:
    a = build_remedy_bundle([Change("svi-permission", "acl", "s", "b", "a", {"path": "C:\\one"})])
    b = build_remedy_bundle([Change("svi-permission", "acl", "s", "b", "a", {"path": HOSTILE})])
    assert a.script == b.script and a.args_json != b.args_json
    with pytest.raises(ValueError, match="unknown remedy action"):
        build_remedy_bundle([Change("x", "format_disk", "s", "b", "a")])
