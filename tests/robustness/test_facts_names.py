"""--save-facts: one file per host name, whatever the name; the name survives into `evaluate`."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from fleetcheck.facts import FactsDocument
from fleetcheck.factsfiles import facts_file_stem, save_facts

NAMES = ["a/b", "a:b", "a_b", "a%2Fb", "Ä", "A", "ä", "..", ".", "", "x" * 300, "x" * 299 + "y", "a\\b", "a b"]


def test_host_names_never_share_a_facts_file(tmp_path: Path) -> None:
    paths = {save_facts(tmp_path, name, FactsDocument()) for name in NAMES}
    assert len(paths) == len(NAMES)
    assert all(p.parent == tmp_path and p.is_file() for p in paths)
    for path in paths:
        doc = FactsDocument.model_validate_json(path.read_text(encoding="utf-8"))
        assert doc.inventory_name in NAMES


def test_short_names_are_reversible_from_the_file_name() -> None:
    for name in ["a/b", "a:b", "a_b", "Ä-web", "a%b"]:
        assert urllib.parse.unquote(facts_file_stem(name)) == name


def test_a_long_name_fits_a_file_system(tmp_path: Path) -> None:
    path = save_facts(tmp_path, "h" * 260, FactsDocument())
    assert len(path.name.encode()) < 255
