"""`--shard K/N` selection and `fleetcheck merge` rules, without a network."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetcheck.dispatch.merge import MergeError, as_part, merge_results
from fleetcheck.dispatch.shard import (
    Shard,
    ShardError,
    parse_shard,
    scope_with_shard,
    select,
    shard_of,
    split_scope,
)
from fleetcheck.inventory.model import Host
from fleetcheck.results import HostResult, HostStatus, RunResult

NAMES = [f"SRV{i:04d}" for i in range(500)]


def hosts(names: list[str]) -> list[Host]:
    return [Host(name=n, address=n.lower()) for n in names]


def test_every_host_falls_in_exactly_one_shard_whatever_the_inventory_order() -> None:
    shuffled = NAMES[:]
    random.Random(7).shuffle(shuffled)
    parts = [{h.name for h in select(hosts(NAMES), Shard(k, 5))} for k in range(1, 6)]
    again = [{h.name for h in select(hosts(shuffled), Shard(k, 5))} for k in range(1, 6)]
    assert parts == again
    assert sorted(n for p in parts for n in p) == sorted(NAMES)
    assert all(60 < len(p) < 140 for p in parts)  # roughly a fifth each


def test_a_hosts_shard_ignores_case_and_is_fixed() -> None:
    assert shard_of("srv0001", 5) == shard_of("SRV0001", 5)
    assert [shard_of(n, 7) for n in NAMES[:5]] == [shard_of(n, 7) for n in NAMES[:5]]


@pytest.mark.parametrize("bad", ["0/5", "6/5", "2", "a/b", "1/0", "2/20000"])
def test_bad_shard_values_are_user_errors(bad: str) -> None:
    with pytest.raises(ShardError, match="--shard"):
        parse_shard(bad)


def test_the_scope_records_the_shard() -> None:
    assert parse_shard(" 2 / 5 ") == Shard(2, 5)
    assert split_scope(scope_with_shard("/x/prod.yml --limit web*", Shard(2, 5))) == ("/x/prod.yml --limit web*", Shard(2, 5))
    assert split_scope("/x/prod.yml") == ("/x/prod.yml", None)


def part(k: int, n: int, names: list[str], *, scope: str = "/inv.yml") -> tuple[Path, RunResult]:
    run = RunResult(
        run_id=f"r{k}", started_at=datetime(2026, 1, 1, 1, k, tzinfo=UTC), finished_at=datetime(2026, 1, 1, 2, k, tzinfo=UTC),
        inventory=f"{scope} --shard {k}/{n}", playbooks=["system-state-backup"], check_ids=[f"c{k}"],
        hosts=[HostResult(host=h, status=HostStatus.COMPLIANT) for h in names],
    )
    return Path(f"part{k}.json"), run


def test_merge_combines_every_shard_into_one_run_of_the_whole_scope() -> None:
    merged = merge_results([as_part(*part(2, 2, ["B"])), as_part(*part(1, 2, ["A", "C"]))])
    assert [h.host for h in merged.hosts] == ["A", "C", "B"]
    assert merged.inventory == "/inv.yml"
    assert merged.check_ids == ["c1", "c2"]
    assert merged.started_at.minute == 1 and merged.finished_at is not None and merged.finished_at.minute == 2


def test_merge_names_the_missing_shards() -> None:
    with pytest.raises(MergeError, match=r"missing shards 2/4, 4/4"):
        merge_results([as_part(*part(1, 4, ["A"])), as_part(*part(3, 4, ["B"]))])


def test_merge_refuses_a_host_twice() -> None:
    with pytest.raises(MergeError, match=r"host b is in both part1.json and part2.json"):
        merge_results([as_part(*part(1, 2, ["A", "B"])), as_part(*part(2, 2, ["b"]))])


def test_merge_refuses_parts_of_other_scopes_or_counts() -> None:
    with pytest.raises(MergeError, match="scope"):
        merge_results([as_part(*part(1, 2, ["A"])), as_part(*part(2, 2, ["B"], scope="/other.yml"))])
    with pytest.raises(MergeError, match="different shard counts"):
        merge_results([as_part(*part(1, 2, ["A"])), as_part(*part(2, 3, ["B"]))])
    with pytest.raises(MergeError, match="shard 1/2 is in both"):
        merge_results([as_part(*part(1, 2, ["A"])), as_part(*part(1, 2, ["B"]))])
