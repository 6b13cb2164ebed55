"""`fleetcheck merge`: the json reports of shard runs as one run.

Parts must come from the same scope (inventory and --limit), the same shard count and the
same playbooks; every shard must be present (the missing ones are named) and no host may
appear twice (a part run twice, or two shard counts mixed): refusing beats a table that
counts a host twice or silently drops a fifth of the fleet.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fleetcheck.dispatch.shard import Shard, split_scope
from fleetcheck.errors import UserError
from fleetcheck.results import HostResult, RunResult


class MergeError(UserError):
    """Parts that do not make one run."""


@dataclass
class Part:
    path: Path
    result: RunResult
    base: str
    shard: Shard | None


def as_part(path: Path, result: RunResult) -> Part:
    base, shard = split_scope(result.inventory)
    return Part(path, result, base, shard)


def merge_results(parts: Sequence[Part]) -> RunResult:
    """One `RunResult` from the parts; `MergeError` names what does not fit."""
    if not parts:
        raise MergeError("nothing to merge: give the json reports of the shard runs")
    first = parts[0]
    for part in parts[1:]:
        if part.base != first.base:
            raise MergeError(f"{part.path}: scope '{part.base}' differs from {first.path}'s '{first.base}'")
        if part.result.playbooks != first.result.playbooks:
            raise MergeError(f"{part.path}: playbooks {part.result.playbooks} differ from {first.path}'s {first.result.playbooks}")
    _check_shards(parts)
    seen: dict[str, Path] = {}
    hosts: list[HostResult] = []
    check_ids: list[str] = []
    ordered = sorted(parts, key=lambda p: p.shard.index if p.shard else 0)
    for part in ordered:
        for host in part.result.hosts:
            key = host.host.casefold()
            if key in seen:
                raise MergeError(f"host {host.host} is in both {seen[key]} and {part.path}; each host must be in one part")
            seen[key] = part.path
            hosts.append(host)
        check_ids.extend(c for c in part.result.check_ids if c not in check_ids)
    ends = [p.result.finished_at for p in parts if p.result.finished_at is not None]
    return RunResult(
        run_id=uuid.uuid4().hex[:12],
        started_at=min(p.result.started_at for p in parts),
        finished_at=max(ends) if ends else None,
        inventory=first.base,
        playbooks=list(first.result.playbooks),
        check_ids=check_ids,
        hosts=hosts,
        interrupted=any(p.result.interrupted for p in parts),
        fleetcheck_version=first.result.fleetcheck_version,
    )


def _check_shards(parts: Sequence[Part]) -> None:
    sharded = [p for p in parts if p.shard is not None]
    if not sharded:
        return
    if len(sharded) != len(parts):
        plain = next(p for p in parts if p.shard is None)
        raise MergeError(f"{plain.path}: not a shard run (no --shard in its scope); merge only the parts of one sharded run")
    counts = {p.shard.count for p in sharded if p.shard is not None}
    if len(counts) > 1:
        raise MergeError(f"parts of different shard counts ({', '.join(f'/{n}' for n in sorted(counts))}); merge one set")
    count = counts.pop()
    have: dict[int, Path] = {}
    for p in sharded:
        assert p.shard is not None
        if p.shard.index in have:
            raise MergeError(f"shard {p.shard} is in both {have[p.shard.index]} and {p.path}")
        have[p.shard.index] = p.path
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in have]
    if missing:
        raise MergeError(f"missing shard{'s' if len(missing) > 1 else ''} {', '.join(missing)}: give every part's json report")
