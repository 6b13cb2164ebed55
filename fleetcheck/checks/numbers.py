"""Numbers in messages that never contradict the verdict.

A value is compared with its limit unrounded, then printed rounded: 4.99 % free fails against a
5 % limit, and "Only 5.0% free" would read as if it passed. `beside` prints the value with as
many extra decimals as it takes to stay on the same side of the limit as the real value
(4.99 -> "4.99", 9.996 -> "9.996"; 4.2 -> "4.2"), and never rounds onto or across the limit.
"""

from __future__ import annotations

import math

#: Decimals tried beyond the requested ones before falling back to rounding toward the value's side.
EXTRA_DIGITS = 3


def _side(value: float, limit: float) -> int:
    return (value > limit) - (value < limit)


def beside(value: float, limit: float, digits: int = 1) -> str:
    """`value` as text with at least `digits` decimals, on the same side of `limit` as `value` is."""
    side = _side(value, limit)
    for extra in range(EXTRA_DIGITS + 1):
        text = f"{value:.{digits + extra}f}"
        if _side(float(text), limit) == side:
            return text
    if side == 0:  # exactly on the limit: print it exactly
        return repr(float(value))
    places = digits + EXTRA_DIGITS
    scale = 10**places
    # Still equal to the limit when rounded: round away from the limit, toward the value's side.
    shown = math.floor(value * scale) / scale if side < 0 else math.ceil(value * scale) / scale
    if _side(shown, limit) != side:  # the value is closer to the limit than the precision shown
        shown = limit - 1 / scale if side < 0 else limit + 1 / scale
    return f"{shown:.{places}f}"


def signed_beside(value: float, limit: float, digits: int = 0) -> str:
    """Like `beside` for a signed offset compared by magnitude (clock skew `+301s` vs 300)."""
    text = beside(abs(value), limit, digits)
    return ("-" if value < 0 else "+") + text
