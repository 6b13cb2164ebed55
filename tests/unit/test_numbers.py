"""Messages never round a value onto or across the limit it was judged against."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_checks import run, scratch

from fleetcheck.checks.numbers import beside, signed_beside
from fleetcheck.results import CheckStatus


@pytest.mark.parametrize(
    ("value", "limit", "text"),
    [(4.99, 5, "4.99"), (4.2, 5, "4.2"), (9.996, 10, "9.996"), (5.0, 5, "5.0"), (10.04, 10, "10.04"), (50, 10, "50.0")],
)
def test_beside_keeps_the_side(value: float, limit: float, text: str) -> None:
    assert beside(value, limit) == text


@given(
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.floats(min_value=0, max_value=1e6, allow_nan=False),
    st.integers(min_value=0, max_value=2),
)
def test_printed_value_is_on_the_same_side_as_the_value(value: float, limit: float, digits: int) -> None:
    shown = float(beside(value, limit, digits))
    assert (shown > limit) == (value > limit) and (shown < limit) == (value < limit)


def test_signed_offsets() -> None:
    assert signed_beside(300.4, 300) == "+300.4"
    assert signed_beside(-301.2, 300) == "-301"


@pytest.mark.parametrize(
    ("free", "status", "phrase"),
    [(4.99, CheckStatus.FAIL, "Only 4.99% free"), (9.99, CheckStatus.WARN, "9.99% free"), (4.2, CheckStatus.FAIL, "Only 4.2% free")],
)
def test_scratch_messages_agree_with_the_verdict(free: float, status: CheckStatus, phrase: str) -> None:
    result = run("scratch-space", scratch(free))
    assert result.status == status and phrase in result.message
    number = float(re.search(r"([\d.]+)% free", result.message).group(1))  # type: ignore[union-attr]
    limit = 5 if status == CheckStatus.FAIL else 10
    assert number < limit
