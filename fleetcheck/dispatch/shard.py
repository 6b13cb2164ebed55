"""`--shard K/N`: a deterministic share of the hosts, for runs without a broker.

A host's shard is a hash of its name (case-folded, as Windows names are), so a shard keeps
its hosts when the inventory is reordered and every host falls in exactly one shard. The
run's scope records the shard (`... --shard 2/5`), which `fleetcheck merge` reads back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fleetcheck.errors import UserError

MAX_SHARDS = 10_000
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_SCOPE_TAIL = re.compile(r" --shard (\d+)/(\d+)$")


class ShardError(UserError):
    """A `--shard` value that is not K/N with 1 <= K <= N."""


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    match = _SPEC.match(text)
    if not match:
        raise ShardError(f"--shard '{text}': expected K/N, e.g. 2/5 (the 2nd of 5 shards)")
    index, count = int(match[1]), int(match[2])
    if not 1 <= count <= MAX_SHARDS or not 1 <= index <= count:
        raise ShardError(f"--shard '{text}': K must be between 1 and N, N between 1 and {MAX_SHARDS}")
    return Shard(index, count)


def shard_of(name: str, count: int) -> int:
    """The 1-based shard of a host name."""
    digest = hashlib.sha256(name.casefold().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_H = TypeVar("_H", bound=_Named)


def select(hosts: Sequence[_H], shard: Shard) -> list[_H]:
    return [h for h in hosts if shard_of(h.name, shard.count) == shard.index]


def scope_with_shard(scope: str, shard: Shard | None) -> str:
    return f"{scope} --shard {shard}" if shard is not None else scope


def split_scope(scope: str) -> tuple[str, Shard | None]:
    """(the scope without its shard, the shard) of a recorded run."""
    match = _SCOPE_TAIL.search(scope)
    if not match:
        return scope, None
    return scope[: match.start()], Shard(int(match[1]), int(match[2]))
