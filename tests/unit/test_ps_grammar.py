"""Every probe file and every composed bundle parses under a real PowerShell grammar, and a lint
rejects syntax that Windows PowerShell 5.1 (or the PS 2.0 parser that reads the preamble) lacks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetcheck.probes.bundle import PROBES_DIR, build_bundle
from fleetcheck.probes.schema import PROBES

tslp = pytest.importorskip("tree_sitter_language_pack")

PS1_FILES = sorted(PROBES_DIR.glob("*.ps1"))


@pytest.fixture(scope="module")
def parser():  # type: ignore[no-untyped-def]
    return tslp.get_parser("powershell")


def syntax_errors(parser, source: str) -> list[str]:  # type: ignore[no-untyped-def]
    """ERROR and MISSING nodes of the tree, as 'line:col text'."""
    tree = parser.parse(source.encode("utf-8"))
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            snippet = source.encode()[node.start_byte : node.end_byte][:40].decode(errors="replace")
            found.append(f"{node.start_point[0] + 1}:{node.start_point[1]} {node.type} {snippet!r}")
        stack.extend(node.children)
    return found


# --------------------------------------------------------------------------- the lint
#: (pattern, why) over code with strings and comments blanked out.
FORBIDDEN = [
    (re.compile(r"\?\?"), "null-coalescing ?? (PowerShell 7)"),
    (re.compile(r"\?\."), "null-conditional ?. (PowerShell 7)"),
    (re.compile(r"&&|\|\|"), "pipeline chain && / || (PowerShell 7)"),
    (re.compile(r"\)\s*\?\s*[^\s]|\$\w+\s+\?\s+\S+\s+:\s"), "ternary a ? b : c (PowerShell 7)"),
    (re.compile(r"::new\s*\(", re.I), "::new() (PowerShell 5; use New-Object)"),
    (re.compile(r"^\s*class\s+\w+", re.I | re.M), "class definitions (PowerShell 5)"),
    (re.compile(r"^\s*enum\s+\w+", re.I | re.M), "enum definitions (PowerShell 5)"),
    (re.compile(r"^\s*using\s+(namespace|module)\b", re.I | re.M), "using statements (PowerShell 5)"),
    (re.compile(r"-AsHashtable\b", re.I), "ConvertFrom-Json -AsHashtable (PowerShell 6)"),
    (re.compile(r"\s-(not)?in\s", re.I), "-in / -notin (PowerShell 3 syntax; the PS 2.0 parser must read the bundle)"),
    (re.compile(r"\s-sh[lr]\s", re.I), "-shl / -shr (PowerShell 3 syntax)"),
    (re.compile(r"\[ordered\]", re.I), "[ordered] (PowerShell 3)"),
    (re.compile(r"\$using:", re.I), "$using: (PowerShell 3)"),
    (re.compile(r"\bforeach\s+-parallel\b", re.I), "foreach -parallel (workflows)"),
]


def blank_strings_and_comments(parser, source: str) -> str:  # type: ignore[no-untyped-def]
    """The source with every string literal and comment replaced by spaces (positions kept)."""
    data = bytearray(source.encode("utf-8"))
    tree = parser.parse(bytes(data))
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type in ("comment", "string_literal", "expandable_string_literal", "verbatim_string_characters",
                         "expandable_here_string_literal", "verbatim_here_string_characters"):
            for i in range(node.start_byte, node.end_byte):
                if data[i] not in (10, 13):
                    data[i] = 32
            continue
        stack.extend(node.children)
    return data.decode("utf-8")


def lint_ps51(parser, source: str) -> list[str]:  # type: ignore[no-untyped-def]
    code = blank_strings_and_comments(parser, source)
    problems = []
    for pattern, why in FORBIDDEN:
        for m in pattern.finditer(code):
            line = code.count("\n", 0, m.start()) + 1
            problems.append(f"line {line}: {why}")
    return problems


# --------------------------------------------------------------------------- tests
def test_probe_files_exist_for_every_probe() -> None:
    names = {p.name for p in PS1_FILES}
    assert {spec.ps1 for spec in PROBES.values()} <= names
    assert {"_preamble.ps1", "_common.ps1", "_dispatch.ps1"} <= names


@pytest.mark.parametrize("path", PS1_FILES, ids=lambda p: p.name)
def test_probe_file_parses_and_is_ascii(parser, path: Path) -> None:  # type: ignore[no-untyped-def]
    text = path.read_text(encoding="utf-8")
    assert text.isascii(), f"{path.name} has non-ASCII characters"
    assert syntax_errors(parser, text) == []


@pytest.mark.parametrize("path", PS1_FILES, ids=lambda p: p.name)
def test_probe_file_passes_the_ps51_lint(parser, path: Path) -> None:  # type: ignore[no-untyped-def]
    assert lint_ps51(parser, path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("probe_id", sorted(PROBES))
def test_each_single_probe_bundle_parses(parser, probe_id: str) -> None:  # type: ignore[no-untyped-def]
    script = build_bundle({probe_id: {}}).script
    assert syntax_errors(parser, script) == []
    assert re.search(rf"(?m)^function {PROBES[probe_id].function} \{{", script)


def test_full_bundle_parses_and_passes_lint(parser) -> None:  # type: ignore[no-untyped-def]
    script = build_bundle({pid: {} for pid in PROBES}).script
    assert syntax_errors(parser, script) == []
    assert lint_ps51(parser, script) == []
    assert script.isascii()
    first_code = next(ln for ln in script.splitlines() if ln.strip() and not ln.lstrip().startswith("#"))
    assert first_code == "param([string]$ArgsJson)", "param() must be the first statement (PS 2.0 too)"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("$a = $b ?? 'x'\n", "??"),
        ("$a = $b?.Name\n", "?."),
        ("Get-Thing && Get-Other\n", "&&"),
        ("Get-Thing || Get-Other\n", "||"),
        ("$a = ($b -gt 1) ? 'x' : 'y'\n", "ternary"),
        ("$l = [System.Collections.ArrayList]::new()\n", "::new()"),
        ("class Foo {\n  [string]$Name\n}\n", "class"),
        ("$h = '{}' | ConvertFrom-Json -AsHashtable\n", "-AsHashtable"),
        ("if ($x -in @(1, 2)) { $y = 1 }\n", "-in"),
        ("$h = [ordered]@{ a = 1 }\n", "[ordered]"),
    ],
)
def test_lint_catches_bad_samples(parser, bad: str, why: str) -> None:  # type: ignore[no-untyped-def]
    assert lint_ps51(parser, bad), f"lint missed {why}"


def test_lint_ignores_forbidden_text_inside_strings_and_comments(parser) -> None:  # type: ignore[no-untyped-def]
    ok = "# a ?? b && c\n$s = 'x ?? y && z ::new('\n$t = \"-in $x\"\n"
    assert lint_ps51(parser, ok) == []


def duplicate_hash_keys(parser, source: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Keys repeated (case-insensitively) inside one @{...} literal: a PowerShell parse error."""
    data = source.encode("utf-8")
    found: list[str] = []
    stack = [parser.parse(data).root_node]
    while stack:
        node = stack.pop()
        if node.type == "hash_literal_body":
            keys = [
                data[k.start_byte : k.end_byte].decode().strip("'\"").lower()
                for entry in node.children
                if entry.type == "hash_entry"
                for k in entry.children
                if k.type == "key_expression"
            ]
            found += sorted({k for k in keys if keys.count(k) > 1})
        stack.extend(node.children)
    return found


@pytest.mark.parametrize("path", PS1_FILES, ids=lambda p: p.name)
def test_no_duplicate_keys_in_hashtable_literals(parser, path: Path) -> None:  # type: ignore[no-untyped-def]
    assert duplicate_hash_keys(parser, path.read_text(encoding="utf-8")) == []


def test_duplicate_key_check_catches_case_variants(parser) -> None:  # type: ignore[no-untyped-def]
    assert duplicate_hash_keys(parser, "$h = @{ a = 1; b = @{ c = 2 }; A = 3 }\n") == ["a"]


def test_grammar_check_catches_a_broken_script(parser) -> None:  # type: ignore[no-untyped-def]
    assert syntax_errors(parser, "function f {\n    $x = @{ a = 1\n}\n")
    assert syntax_errors(parser, "if ($x { $y = 1 }\n")


def _code_tokens(parser, source: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every leaf of the tree but comments, as (type, text): what the script does, not its layout."""
    tree = parser.parse(source.encode("utf-8"))
    data = source.encode("utf-8")
    out: list[tuple[str, str]] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "comment":
            continue
        if not node.children:
            out.append((node.type, data[node.start_byte : node.end_byte].decode()))
        stack.extend(reversed(node.children))
    return out


def test_compacted_bundle_has_the_same_code_tokens(parser) -> None:  # type: ignore[no-untyped-def]
    """`compact` drops layout only: a multi-line string or here-string it would alter fails here."""
    from fleetcheck.probes.bundle import compact, script_for

    full = script_for.__wrapped__(tuple(PROBES))  # type: ignore[attr-defined]
    layout = "\n".join(PS1_FILE.read_text() for PS1_FILE in PS1_FILES)
    assert len(compact(full)) < 0.85 * len(layout)
    for path in PS1_FILES:
        text = path.read_text()
        assert _code_tokens(parser, compact(text)) == _code_tokens(parser, text), path.name
    assert full.splitlines()[:2] == [build_bundle({p: None for p in PROBES}).script.splitlines()[i] for i in (0, 1)]


def test_compact_would_be_caught_on_a_multiline_string(parser) -> None:  # type: ignore[no-untyped-def]
    text = '$a = "first\n    second"\n'
    from fleetcheck.probes.bundle import compact

    assert _code_tokens(parser, compact(text)) != _code_tokens(parser, text)
