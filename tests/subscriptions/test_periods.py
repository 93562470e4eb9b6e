from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscriptions.periods import add_intervals, period_bounds, prorate, round_half_up
from tests.subscriptions.conftest import utc


def test_month_end_anchor_clamps_and_comes_back():
    anchor = utc(2027, 1, 31, 10, 30)
    ends = [period_bounds(anchor, "month", i)[1] for i in range(4)]
    assert ends == [
        utc(2027, 2, 28, 10, 30),
        utc(2027, 3, 31, 10, 30),
        utc(2027, 4, 30, 10, 30),
        utc(2027, 5, 31, 10, 30),
    ]


def test_month_end_anchor_in_a_leap_year():
    anchor = utc(2028, 1, 31)
    assert [period_bounds(anchor, "month", i)[1] for i in range(3)] == [
        utc(2028, 2, 29),
        utc(2028, 3, 31),
        utc(2028, 4, 30),
    ]


def test_yearly_anchor_on_leap_day():
    anchor = utc(2028, 2, 29)
    assert [add_intervals(anchor, "year", i) for i in range(1, 5)] == [
        utc(2029, 2, 28),
        utc(2030, 2, 28),
        utc(2031, 2, 28),
        utc(2032, 2, 29),
    ]


@given(
    anchor=st.datetimes(
        min_value=utc(2000, 1, 1).replace(tzinfo=None),
        max_value=utc(2090, 1, 1).replace(tzinfo=None),
    ),
    interval=st.sampled_from(["month", "year"]),
    count=st.integers(min_value=1, max_value=60),
)
def test_periods_are_contiguous_and_positive(anchor, interval, count):
    anchor = anchor.replace(tzinfo=utc(2000, 1, 1).tzinfo)
    bounds = [period_bounds(anchor, interval, i) for i in range(count)]
    for (start, end), (next_start, _) in itertools.pairwise(bounds):
        assert end == next_start
        assert end > start


def test_proration_rounds_half_up_once():
    month = 31 * 86400
    assert prorate(1000, remaining_seconds=16 * 86400, period_seconds=month) == 516  # 516.129
    assert prorate(5000, remaining_seconds=16 * 86400, period_seconds=month) == 2581  # 2580.645
    assert prorate(1001, remaining_seconds=month // 2, period_seconds=month) == 501  # 500.5 -> up
    assert prorate(999, remaining_seconds=month // 2, period_seconds=month) == 500  # 499.5 -> up
    assert prorate(1000, remaining_seconds=0, period_seconds=month) == 0
    assert prorate(1000, remaining_seconds=month, period_seconds=month) == 1000
    assert round_half_up(-1001, 2) == -501
    with pytest.raises(ValueError):
        prorate(1000, remaining_seconds=month + 1, period_seconds=month)


@given(amount=st.integers(0, 10**9), period=st.integers(1, 10**8), data=st.data())
def test_proration_is_exact_integer_rounding(amount, period, data):
    remaining = data.draw(st.integers(0, period))
    result = prorate(amount, remaining_seconds=remaining, period_seconds=period)
    exact = amount * remaining / period
    assert isinstance(result, int)
    assert abs(result - exact) <= 0.5
    # half-up: never below the exact value when the fraction is exactly one half
    if (2 * amount * remaining) % (2 * period) == period:
        assert result > exact
