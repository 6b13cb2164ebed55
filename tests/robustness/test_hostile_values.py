"""Host output that used to end the run or freeze the loop: huge integers, backtracking regexes."""

from __future__ import annotations

import time

from fleetcheck.checks.custom import MATCH_TIMEOUT_S, Expectation


def test_at_least_on_an_integer_longer_than_a_float_holds() -> None:
    huge = 10**400
    holds, _, reason = Expectation(path="n", at_least=5).check({"n": huge})
    assert holds and reason == ""
    holds, _, reason = Expectation(path="n", at_least=5).check({"n": -huge})
    assert not holds and "401 digits" in reason and len(reason) < 200


def test_at_least_on_a_numeric_string_beyond_float_range() -> None:
    holds, _, _ = Expectation(path="n", at_least=5).check({"n": "9" * 400})
    assert holds


def test_backtracking_regex_is_cut_off_with_a_clear_reason() -> None:
    exp = Expectation(path="s", matches=r"^(a|aa)+$")
    started = time.monotonic()
    holds, _, reason = exp.check({"s": "a" * 60 + "b"})
    assert time.monotonic() - started < MATCH_TIMEOUT_S + 1.5
    assert not holds and "took longer than" in reason and "simplify" in reason


def test_the_reported_redos_pattern_ends_quickly() -> None:
    started = time.monotonic()
    holds, _, _ = Expectation(path="s", matches=r"^(a+)+$").check({"s": "a" * 35 + "b"})
    assert not holds and time.monotonic() - started < MATCH_TIMEOUT_S + 1.5


def test_ordinary_regex_still_matches() -> None:
    assert Expectation(path="s", matches=r"^srv-\d+$").check({"s": "srv-12"})[0]
    assert not Expectation(path="s", matches=r"^srv-\d+$").check({"s": "web-12"})[0]
