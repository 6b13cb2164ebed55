"""Compose the requested probes into ONE static PowerShell script plus ONE JSON argument.

The script text depends only on which probe ids are requested (so it is cached and never
carries an inventory or playbook value); every parameter travels in `args_json`, which the
script reads with ConvertFrom-Json. `parse_facts` is the inverse side: bounded, strict.

The bundle's contract is declared here, in Python, for whoever answers it without
PowerShell (the simulated fleet): the script opens with `BUNDLE_MARKER`, its second line
declares the probe ids it dispatches (`declared_probes` reads it back), and the JSON argument
has the shape of `BundleArgs` (`read_args` reads it back). Nobody needs to parse the
PowerShell text to know what a bundle asks for.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from fleetcheck.errors import UserError
from fleetcheck.facts import FACTS_SCHEMA, FactsDocument, ProbeError, ProbeOutcome
from fleetcheck.probes.schema import PROBES

#: First line of every bundle script: how a receiver recognises one (`is_bundle`).
BUNDLE_MARKER = "# fleetcheck:bundle=v1"
#: Second line: the probe ids the script's dispatch table holds, comma-separated, in order.
PROBES_DECLARATION = "# fleetcheck:probes="
PROBES_DIR = Path(__file__).resolve().parent
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class BundleError(UserError, ValueError):
    """A probe request that cannot be composed (unknown probe id, invalid parameters)."""


class BundleArgsError(ValueError):
    """A JSON argument that does not match `BundleArgs`; the real script stops in ConvertFrom-Json."""


class BundleArgs(BaseModel):
    """The bundle's one JSON argument: each requested probe id with its validated parameters."""

    probes: dict[str, dict[str, Any] | None]


class FactsParseError(ValueError):
    """The text a host printed is not a valid facts document."""


@dataclass(frozen=True)
class Bundle:
    """What the transport sends: `script` (static) with `-ArgsJson args_json`."""

    script: str
    args_json: str
    probe_ids: tuple[str, ...]


def read_ps1(name: str) -> str:
    """The text of one shipped .ps1 file (ASCII, LF line ends)."""
    return (PROBES_DIR / name).read_text(encoding="ascii").replace("\r\n", "\n")


def _canonical(ids: list[str]) -> tuple[str, ...]:
    order = list(PROBES)
    return tuple(sorted(set(ids), key=order.index))


@functools.lru_cache(maxsize=256)
def script_for(probe_ids: tuple[str, ...]) -> str:
    """The bundle script for a canonical tuple of probe ids (cached: it is pure text)."""
    parts = [BUNDLE_MARKER, PROBES_DECLARATION + ",".join(probe_ids), read_ps1("_preamble.ps1"), read_ps1("_common.ps1")]
    table = ["$fcTable = @{"]
    for pid in probe_ids:
        spec = PROBES[pid]
        if not _ID_RE.match(pid):  # our own constants; never user text
            raise BundleError(f"bad probe id {pid!r}")
        parts.append(read_ps1(spec.ps1))
        table.append(f"    '{pid}' = '{spec.function}'")
    table.append("}")
    parts.append("\n".join(table) + "\n")
    parts.append(read_ps1("_dispatch.ps1"))
    return compact("\n".join(p.rstrip("\n") for p in parts) + "\n")


def compact(script: str) -> str:
    """`script` without indentation, blank lines or whole-line comments (the contract lines kept).

    The bundle crosses the wire twice per host (psrpcore writes a command's text as `Cmd` and
    again as its `ToString`) and is sealed, encoded and parsed each time: a fifth of it was
    indentation and comments. The probe files hold no here-strings and no multi-line string
    literals, where this would change text; a grammar test checks the code tokens are the same.
    """
    kept = []
    for line in script.split("\n"):
        code = line.strip()
        if code and (not code.startswith("#") or code.startswith(("# fleetcheck:", "#requires"))):
            kept.append(code)
    return "\n".join(kept) + "\n"


def build_bundle(requests: Mapping[str, Mapping[str, Any] | None]) -> Bundle:
    """Validate every probe's parameters and compose the bundle.

    `requests` maps probe id to its parameters (None or {} for defaults). Raises
    BundleError naming the probe and the field when something is wrong."""
    unknown = [pid for pid in requests if pid not in PROBES]
    if unknown:
        raise BundleError(f"unknown probe id(s) {', '.join(map(repr, unknown))}; known: {', '.join(PROBES)}")
    ids = _canonical(list(requests))
    params: dict[str, Any] = {}
    for pid in ids:
        try:
            model = PROBES[pid].params.model_validate(dict(requests[pid] or {}))
        except ValidationError as exc:
            raise BundleError(f"invalid parameters for probe {pid!r}: {_first_errors(exc)}") from None
        params[pid] = model.model_dump(mode="json")
    args_json = json.dumps(BundleArgs(probes=params).model_dump(), ensure_ascii=True, separators=(",", ":"))
    return Bundle(script=script_for(ids), args_json=args_json, probe_ids=ids)


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    out = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        out.append(f"{loc}: {err['msg']}")
    return "; ".join(out)


def is_bundle(script: str) -> bool:
    """True when a received script is a fleetcheck bundle (the lab uses this)."""
    return script.lstrip("\ufeff").startswith(BUNDLE_MARKER)


def declared_probes(script: str) -> tuple[str, ...]:
    """The probe ids a bundle script dispatches, from its declaration line (() if none)."""
    script = script.lstrip("\ufeff")
    first_end = script.find("\n")
    if first_end < 0 or script[:first_end].rstrip("\r") != BUNDLE_MARKER:
        return ()
    second_end = script.find("\n", first_end + 1)
    line = script[first_end + 1 : second_end if second_end >= 0 else len(script)].rstrip("\r")
    if not line.startswith(PROBES_DECLARATION):
        return ()
    return tuple(pid for pid in line[len(PROBES_DECLARATION) :].split(",") if pid)


def read_args(args_json: str) -> dict[str, dict[str, Any]]:
    """The probe requests a bundle's JSON argument carries (parameters not yet validated)."""
    try:
        args = BundleArgs.model_validate_json(args_json)
    except ValidationError as exc:
        raise BundleArgsError(f"Cannot bind the ArgsJson argument: {_first_errors(exc)}") from None
    return {pid: dict(params or {}) for pid, params in args.probes.items()}


def _extract_json(text: str) -> Any:
    text = text.lstrip("\ufeff").strip()
    if not text:
        raise FactsParseError("the host printed nothing (expected one JSON facts document)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        # Stray lines (warnings, banners) around the document: take the last line that is JSON.
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    break
        snippet = text[:80].replace("\n", "\\n")
        raise FactsParseError(f"output is not JSON ({first.msg} at char {first.pos}); starts with {snippet!r}") from None


def parse_facts(stdout: str, max_bytes: int = DEFAULT_MAX_BYTES, validate_data: bool = True) -> FactsDocument:
    """Parse what one host printed into a `FactsDocument`.

    Raises FactsParseError when the output is too large, not JSON, not the v1 envelope.
    With `validate_data`, a probe whose data does not match its model becomes that
    probe's error (type "SchemaError"): one bad probe never voids the others."""
    size = len(stdout.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise FactsParseError(f"facts output is {size} bytes, above the {max_bytes}-byte limit")
    raw = _extract_json(stdout)
    if not isinstance(raw, dict):
        raise FactsParseError(f"facts document must be a JSON object, got {type(raw).__name__}")
    schema = raw.get("schema")
    if schema != FACTS_SCHEMA:
        raise FactsParseError(f"unsupported facts schema {schema!r} (expected {FACTS_SCHEMA!r})")
    try:
        doc = FactsDocument.model_validate(raw)
    except ValidationError as exc:
        raise FactsParseError(f"facts document does not match {FACTS_SCHEMA}: {_first_errors(exc)}") from None
    if validate_data:
        for pid, outcome in doc.probes.items():
            _check_outcome(pid, outcome)
    return doc


def _check_outcome(pid: str, outcome: ProbeOutcome) -> None:
    if outcome.error is not None or pid not in PROBES:
        return
    if outcome.data is None:
        outcome.error = ProbeError(type="SchemaError", message=f"probe {pid!r} returned neither data nor error")
        return
    try:
        outcome.parsed = PROBES[pid].data.model_validate(outcome.data)
    except ValidationError as exc:
        outcome.data = None
        outcome.error = ProbeError(type="SchemaError", message=f"probe {pid!r} data invalid: {_first_errors(exc)}")
