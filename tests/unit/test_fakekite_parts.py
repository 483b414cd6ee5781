"""The fake's small pure parts: the arrival-window count tests use to judge pacing, the optional rate
limiter (judged by the same arrivals), switch matching and latency precedence, candles and their limits."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ticker_service.fakekite import max_in_window
from ticker_service.fakekite.errors import KiteError
from ticker_service.fakekite.faults import FAIL, Faults
from ticker_service.fakekite.historical import INTERVALS, candles
from ticker_service.fakekite.instruments import BUILTIN_INSTRUMENTS, InstrumentTable
from ticker_service.fakekite.ratelimits import RateLimiter
from ticker_service.timeutil import IST


def test_max_in_window_counts_the_busiest_half_open_window() -> None:
    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.5], 1.0) == 3  # [0.5, 1.5) holds 0.5, 0.99, 1.0
    assert max_in_window([0.1 * i for i in range(11)], 1.0) == 10  # 0.0 and 1.0 are a full window apart
    assert max_in_window([5.0] * 4, 1.0) == 4


def test_rate_limiter_allows_ten_orders_in_any_second_and_counts_only_what_it_allowed() -> None:
    limiter = RateLimiter()
    allowed = [limiter.allow("order.place", now=0.01 * i) for i in range(12)]
    assert allowed == [True] * 10 + [False] * 2
    assert limiter.allow("order.modify", now=1.0)  # the first arrival (t=0) has left the window
    assert not limiter.allow("order.cancel", now=1.0)  # orders share one budget
    assert limiter.allow("orders", now=1.0)  # reads have their own
    assert limiter.allow("market.quote", now=1.0)
    assert not limiter.allow("market.quote.ltp", now=1.5)  # quotes: 1 per second
    assert limiter.allow("api.token", now=1.5)  # login is not limited


def test_switches_fire_on_matching_routes_only_and_disarm_after_n() -> None:
    faults = Faults()
    faults.arm(FAIL, 2, "order.*", error_type="OrderException")
    assert faults.take(FAIL, "orders") is None
    assert faults.take(FAIL, "order.place") is not None
    assert faults.take(FAIL, "order.modify") is not None
    assert faults.take(FAIL, "order.place") is None


def test_the_most_specific_latency_wins() -> None:
    faults = Faults()
    faults.set_latency(500)
    faults.set_latency(100, "market.*")
    faults.set_latency(0, "market.quote")  # 0 removes: market.* applies again
    faults.set_latency(20, "market.quote.ltp")
    assert faults.latency("orders") == 0.5
    assert faults.latency("market.quote") == 0.1
    assert faults.latency("market.quote.ltp") == 0.02


def test_candles_are_a_function_of_their_time_whatever_range_is_asked() -> None:
    infy = InstrumentTable(BUILTIN_INSTRUMENTS).lookup("NSE:INFY")
    assert infy is not None
    day = datetime(2025, 11, 3, tzinfo=IST)  # a Monday
    whole = candles(infy, "minute", day.replace(hour=9), day.replace(hour=16), oi=False)
    assert len(whole) == 375  # 09:15 to 15:29
    assert whole[0][0] == "2025-11-03T09:15:00+0530"
    part = candles(infy, "minute", day.replace(hour=10), day.replace(hour=10, minute=4), oi=True)
    assert [c[:6] for c in part] == whole[45:50]  # 10:00 to 10:04, the same candles
    assert all(len(c) == 7 for c in part)
    for _, o, h, lo, c, v in whole:
        assert lo <= min(o, c) <= max(o, c) <= h and v > 0
    weekend = candles(infy, "day", datetime(2025, 11, 8, tzinfo=IST), datetime(2025, 11, 9, tzinfo=IST), oi=False)
    assert weekend == []


@pytest.mark.parametrize("interval", sorted(INTERVALS))
def test_ranges_longer_than_kites_maximum_are_refused(interval: str) -> None:
    infy = InstrumentTable(BUILTIN_INSTRUMENTS).lookup("NSE:INFY")
    assert infy is not None
    _, max_days = INTERVALS[interval]
    start = datetime(2020, 1, 1, tzinfo=IST)
    candles(infy, interval, start, start + timedelta(days=max_days), oi=False)
    with pytest.raises(KiteError) as refused:
        candles(infy, interval, start, start + timedelta(days=max_days, seconds=1), oi=False)
    assert refused.value.error_type == "InputException"
    assert f"{max_days} days" in refused.value.message
