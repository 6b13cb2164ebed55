"""`--limit` patterns: names, globs, groups, regex, unions, intersections, exclusions."""

from __future__ import annotations

import pytest

from fleetcheck.inventory import Host, LimitError, apply_limit

HOSTS = [Host(name=n, address=f"127.0.1.{i}") for i, n in enumerate(["web01", "web02", "web07", "db1", "dc1"], 1)]
GROUPS = {"web": ["web01", "web02", "web07"], "prod": ["web01", "db1"], "dcs": ["dc1"]}


def names(pattern: str | None) -> list[str]:
    return [h.name for h in apply_limit(HOSTS, GROUPS, pattern)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, ["web01", "web02", "web07", "db1", "dc1"]),
        ("db1", ["db1"]),
        ("web0*", ["web01", "web02", "web07"]),
        ("web", ["web01", "web02", "web07"]),
        ("web:!web07", ["web01", "web02"]),
        ("web:&prod", ["web01"]),
        ("dcs:db1", ["db1", "dc1"]),
        ("dcs,db1", ["db1", "dc1"]),
        ("!web", ["db1", "dc1"]),
        ("all:!prod", ["web02", "web07", "dc1"]),
        ("~^d[bc]", ["db1", "dc1"]),
        ("127.0.1.4", ["db1"]),
        ("DB1", ["db1"]),  # Windows host names match in any case
        ("WEB0*:!Web07", ["web01", "web02"]),
        ("~^D[BC]", ["db1", "dc1"]),
    ],
)
def test_patterns(pattern: str | None, expected: list[str]) -> None:
    assert names(pattern) == expected


def test_nothing_selected_is_an_error() -> None:
    with pytest.raises(LimitError, match="matches no host"):
        names("nosuch*")
    with pytest.raises(LimitError, match="bad regular expression"):
        names("~[")


def test_group_names_stay_exact() -> None:
    with pytest.raises(LimitError, match="matches no host"):
        names("DCS")
