"""Billing periods: whole intervals from a subscription's own anchor, month ends clamped.

Every period boundary is computed from the anchor (never from the previous boundary), so a
subscription anchored on Jan 31 renews on Feb 28 (Feb 29 in a leap year), then Mar 31 again.
"""

from __future__ import annotations

from datetime import datetime

from dateutil.relativedelta import relativedelta

MONTHS_PER_INTERVAL = {"month": 1, "year": 12}


def add_intervals(anchor: datetime, interval: str, count: int) -> datetime:
    return anchor + relativedelta(months=MONTHS_PER_INTERVAL[interval] * count)


def period_bounds(anchor: datetime, interval: str, index: int) -> tuple[datetime, datetime]:
    """The ``index``-th period (0-based) after ``anchor``: [start, end)."""
    return add_intervals(anchor, interval, index), add_intervals(anchor, interval, index + 1)


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero, in integers only."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    return sign * ((2 * abs(numerator) + denominator) // (2 * denominator))


def prorate(amount: int, *, remaining_seconds: int, period_seconds: int) -> int:
    """``amount`` minor units for ``remaining`` of ``period`` seconds, rounded once, half-up."""
    if not 0 <= remaining_seconds <= period_seconds:
        raise ValueError("remaining time must lie within the period")
    return round_half_up(amount * remaining_seconds, period_seconds)


def seconds_between(start: datetime, end: datetime) -> int:
    """Whole seconds from ``start`` to ``end`` (proration is computed to the second)."""
    return int((end - start).total_seconds())
