"""--tags / --skip-tags / --checks narrow the playbook's enabled checks; mistakes are usage errors."""

from __future__ import annotations

import pytest

from fleetcheck.playbook import load_playbook, parse_playbook
from fleetcheck.selection import SelectionError, select


def enabled(pbs: list) -> list[str]:
    return [c.id for pb in pbs for c in pb.enabled_checks()]


def test_tags_skip_tags_and_checks() -> None:
    pb = load_playbook("system-state-backup")
    wsb = [c.id for c in pb.enabled_checks() if "wsb" in c.tags]
    assert wsb and enabled(select([pb], tags=["WSB"])) == wsb
    assert set(enabled(select([pb], skip_tags=["wsb"]))) == {c.id for c in pb.enabled_checks()} - set(wsb)
    assert enabled(select([pb], checks=["1", "CLOCK"])) == [pb.check_ids()[0], "clock"]
    assert enabled(select([pb], tags=["wsb"], checks=["clock,wsb-feature"])) == ["wsb-feature"]
    assert select([pb]) == [pb]


def test_filters_never_enable_what_the_playbook_disabled() -> None:
    pb = parse_playbook("name: x\nchecks:\n  clock: false\n  dotnet:\n", "x.yml")
    with pytest.raises(SelectionError, match="leave no enabled check"):
        select([pb], checks=["clock"])


def test_unknown_names_are_errors() -> None:
    pb = load_playbook("system-state-backup")
    with pytest.raises(SelectionError, match="tag 'wsbb' is on no check"):
        select([pb], tags=["wsbb"])
    with pytest.raises(SelectionError, match="did you mean dotnet"):
        select([pb], checks=["dotnett"])
