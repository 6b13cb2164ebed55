"""The scenario mix: which scenario each host of a fleet runs, exactly and reproducibly.

`--mix healthy-2019=80,wsb-missing=5` is split over the hosts by largest remainder (so 100
hosts at 80:5 give exactly 94 and 6), then shuffled with the seed so the broken hosts are
spread over the fleet, as they would be in a real one, yet the same seed gives the same fleet.
"""

from __future__ import annotations

import math
import random

from fleetcheck.lab.fleetmodel import DEFAULT_SCENARIO, FleetConfigError
from fleetcheck.lab.machine import MachineState
from fleetcheck.lab.scenarios import list_scenarios, load_scenario


def parse_mix(text: str) -> dict[str, int]:
    """`healthy-2019=80,wsb-missing=5` -> {"healthy-2019": 80, "wsb-missing": 5}."""
    mix: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = item.partition("=")
        if not sep:
            weight = "1"
        try:
            value = int(weight)
        except ValueError:
            raise FleetConfigError(f"--mix: weight of {name!r} must be a whole number, got {weight!r}") from None
        if value < 0:
            raise FleetConfigError(f"--mix: weight of {name!r} must not be negative")
        mix[name.strip()] = mix.get(name.strip(), 0) + value
    if not mix or sum(mix.values()) == 0:
        raise FleetConfigError(
            "--mix: give at least one scenario with a positive weight, e.g. healthy-2019=9,wsb-missing=1"
        )
    return mix


def apportion(total: int, weights: dict[str, int]) -> dict[str, int]:
    """Split `total` hosts by weight (largest remainder, ties by name): exact and deterministic."""
    weight_sum = sum(weights.values())
    quotas = {k: total * w / weight_sum for k, w in weights.items()}
    counts = {k: math.floor(q) for k, q in quotas.items()}
    left = total - sum(counts.values())
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - counts[k]), k))[:left]:
        counts[k] += 1
    return counts


def plan_scenarios(hosts: int, mix: dict[str, int] | None, seed: int) -> list[str]:
    """The scenario of each host, in host order; shuffled by `seed` so failures are spread."""
    if not mix:
        return [DEFAULT_SCENARIO] * hosts
    names: list[str] = []
    for name, count in sorted(apportion(hosts, mix).items()):
        names += [name] * count
    random.Random(seed).shuffle(names)
    return names


def _library() -> list[str]:
    names: list[str] = list_scenarios()
    return names


def available_scenarios() -> list[str]:
    """Scenario names usable in a mix (the default one is always usable)."""
    names = _library()
    return names if DEFAULT_SCENARIO in names else [DEFAULT_SCENARIO, *names]


def resolve_scenario_names(mix: dict[str, int]) -> dict[str, int]:
    """Exact names, a unique prefix (`wsb` -> `wsb-missing`), or `healthy` for healthy-2019."""
    known = available_scenarios()
    out: dict[str, int] = {}
    for name, weight in mix.items():
        resolved = _resolve(name, known)
        out[resolved] = out.get(resolved, 0) + weight
    return out


def _resolve(name: str, known: list[str]) -> str:
    if name in known:
        return name
    if name == "healthy" and DEFAULT_SCENARIO in known:
        return DEFAULT_SCENARIO
    hits = [k for k in known if k.startswith(name)]
    if len(hits) != 1:
        why = "is ambiguous" if hits else "is not a known scenario"
        raise FleetConfigError(f"--mix: {name!r} {why}; scenarios: {', '.join(known)}")
    return hits[0]


def load_machine(scenario: str) -> MachineState:
    """The scenario's machine; the default scenario falls back to `MachineState()` defaults
    when the scenario library does not ship it."""
    if scenario == DEFAULT_SCENARIO and scenario not in _library():
        return MachineState()
    try:
        machine: MachineState = load_scenario(scenario)
    except Exception as exc:  # the library's own error names the file and field
        raise FleetConfigError(f"scenario {scenario!r}: {exc}") from None
    return machine
