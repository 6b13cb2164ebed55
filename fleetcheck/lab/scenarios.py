"""The lab's scenario library: named machines, each a small overlay on a healthy base.

A scenario file (`scenarios/<name>.yml`) holds:

    description: one line
    base: healthy-2019        # optional: another scenario (or a hidden `_name` base)
    breaks: [check-id, ...]   # the checks it is meant to fail (documentation)
    machine: {...}            # MachineState fields, deep-merged over the base

Merging: mappings merge key by key; lists and scalars replace. Inside keyed collections
(services, registry keys and values, files, acls, volumes, events, ...) a `null` value deletes
the entry (e.g. `registry: {HKLM\\...\\Setup: null}` uninstalls), elsewhere `null` is a value.
Files whose name starts with `_` are bases only and are not listed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fleetcheck.lab.machine import MachineState, MachineStateError, format_validation_error, read_yaml_mapping

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
_META_KEYS = {"description", "base", "breaks", "machine"}

#: Field paths (with "*" for any key) whose values are keyed collections: null deletes there.
_COLLECTIONS = {
    ("features",),
    ("services",),
    ("registry",),
    ("registry", "*"),
    ("files",),
    ("acls",),
    ("volumes",),
    ("scheduled_tasks",),
    ("hotfixes",),
    ("events",),
    ("execution_policy",),
    ("azure_powershell_modules",),
    ("probe_errors",),
    ("custom_probes",),
    ("vss", "writers"),
    ("shadow_storage", "associations"),
}


def _is_collection(path: tuple[str, ...]) -> bool:
    return any(
        len(c) == len(path) and all(a == "*" or a == b for a, b in zip(c, path, strict=True)) for c in _COLLECTIONS
    )


def merge_machine(base: dict[str, Any], overlay: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Deep-merge a machine overlay onto a (fully dumped) base machine."""
    out = dict(base)
    in_collection = _is_collection(path)
    for key, value in overlay.items():
        if value is None and in_collection:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_machine(out[key], value, (*path, str(key)))
        else:
            out[key] = value
    return out


def list_scenarios() -> list[str]:
    """Names of every scenario in the library, sorted (hidden `_bases` excluded)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yml") if not p.stem.startswith("_"))


def scenario_path(name: str) -> Path:
    path = SCENARIO_DIR / f"{name}.yml"
    if not path.is_file() or "/" in name or "\\" in name:
        known = ", ".join(list_scenarios())
        raise MachineStateError(f"unknown scenario {name!r}; known scenarios: {known}")
    return path


def scenario_meta(name: str) -> dict[str, Any]:
    """description / base / breaks of one scenario (without the machine)."""
    data, _ = read_yaml_mapping(scenario_path(name))
    return {k: data.get(k) for k in ("description", "base", "breaks")}


def _layer(path: Path, seen: tuple[str, ...]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The merged machine dict of a scenario file and its bases, plus (file, tree) for errors."""
    data, tree = read_yaml_mapping(path)
    unknown = set(data) - _META_KEYS
    if unknown:
        raise MachineStateError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(_META_KEYS))} (machine fields go under `machine:`)"
        )
    machine = data.get("machine") or {}
    if not isinstance(machine, dict):
        raise MachineStateError(f"{path}: `machine` must be a mapping of machine fields")
    base_name = data.get("base")
    if base_name:
        if base_name in seen:
            raise MachineStateError(f"{path}: base chain loops: {' -> '.join((*seen, base_name))}")
        base_dict, trees = _layer(_base_path(path, str(base_name)), (*seen, str(base_name)))
    else:
        base_dict, trees = MachineState().model_dump(mode="json"), []
    return merge_machine(base_dict, machine), [*trees, (str(path), tree)]


def _base_path(path: Path, base: str) -> Path:
    """A base next to the file first (users' own libraries), then in the built-in library."""
    for folder in (path.parent, SCENARIO_DIR):
        candidate = folder / f"{base}.yml"
        if candidate.is_file() and "/" not in base and "\\" not in base:
            return candidate
    raise MachineStateError(f"{path}: base {base!r} not found next to it nor in the scenario library")


def load_scenario_file(path: str | Path) -> MachineState:
    """Load a scenario file (any folder; its `base` is looked up next to it, then in the library)."""
    p = Path(path)
    merged, trees = _layer(p, (p.stem,))
    try:
        return MachineState.model_validate(merged)
    except Exception as exc:  # pydantic.ValidationError: name the top file, lines from its tree
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            source, tree = trees[-1]
            machine_node = _machine_node(tree)
            raise MachineStateError(format_validation_error(source + " (machine:)", exc, machine_node)) from None
        raise


def _machine_node(tree: Any) -> Any:
    return tree.get("machine") if isinstance(tree, dict) else None


@lru_cache(maxsize=64)
def _cached(name: str) -> MachineState:
    return load_scenario_file(scenario_path(name))


def load_scenario(name: str) -> MachineState:
    """A fresh copy of a named scenario's machine (safe to modify).

    A name ending in .yml/.yaml is a scenario file of the user's (its `base` may name a
    built-in scenario)."""
    if name.endswith((".yml", ".yaml")):
        return load_scenario_file(name)
    return _cached(name).model_copy(deep=True)
