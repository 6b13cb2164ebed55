"""Saved facts documents (`run --save-facts DIR`): one JSON file per host, named so no two collide.

`fleetcheck evaluate` reads them back; the host's inventory name is inside each file, so the
file name only has to be unique and safe, not pretty.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path

from fleetcheck.facts import FactsDocument

#: Longest escaped host name used as is in a facts file name (file systems allow 255 bytes).
_MAX_FILE_STEM = 180


def facts_file_stem(host_name: str) -> str:
    """A file name stem unique per host name: percent-escaped (reversible with `unquote`).

    `a/b`, `a:b`, `a_b` and non-ASCII names stay distinct; a name too long for a file system
    keeps a readable prefix plus a hash of the whole name (the name itself is in the file).
    """
    stem = urllib.parse.quote(host_name, safe="")
    if stem.startswith("."):
        stem = "%2E" + stem[1:]  # never `.`, `..` or a hidden file
    if not stem:
        stem = "%00empty"
    if len(stem) > _MAX_FILE_STEM:
        digest = hashlib.sha256(host_name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        stem = f"{stem[:_MAX_FILE_STEM - 30]}~{digest}"
    return stem


def save_facts(directory: Path, host_name: str, facts: FactsDocument) -> Path:
    """Write one host's facts document (exactly what the host printed, re-serialized) atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    facts = facts.model_copy(update={"inventory_name": host_name})
    path = directory / f"{facts_file_stem(host_name)}.json"
    tmp = path.with_suffix(f".json.tmp{os.getpid()}")
    tmp.write_text(facts.model_dump_json(by_alias=True, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path
