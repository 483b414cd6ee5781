"""The rate limiter's rules, without a database: when a ring allows its next grant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ticker_service.brokers.limits import IST_DAY, KITE_ORDER_LIMITS, Limit, Refused, RingView, plan
from ticker_service.timeutil import IST

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 11:30 IST
SECOND = Limit("per_second", 10, 1.0, margin=0.1)
DAY = Limit("per_day", 5, IST_DAY, margin=0.1)


def ring(limit: Limit, seq: int, *, last: datetime | None = None, predecessor: datetime | None = None,
         trimmed: datetime | None = None) -> RingView:  # fmt: skip
    return RingView(limit=limit, seq=seq, last_at=last, trimmed_at=trimmed, predecessor_at=predecessor)


def test_a_sliding_window_waits_for_the_grant_count_places_back_plus_the_margin() -> None:
    assert SECOND.next_allowed(NOW) == NOW + timedelta(seconds=1.1)


def test_a_calendar_day_waits_for_the_next_ist_midnight() -> None:
    midnight = datetime(2026, 3, 3, 0, 0, tzinfo=IST)
    assert DAY.next_allowed(NOW) == midnight


def test_a_grant_just_before_midnight_counts_against_the_next_day_too() -> None:
    """It may arrive at Kite after midnight: the day it bounds is the one after the margin."""
    late = datetime(2026, 3, 2, 23, 59, 59, 950000, tzinfo=IST)
    assert DAY.next_allowed(late) == datetime(2026, 3, 4, 0, 0, tzinfo=IST)
    assert DAY.next_allowed(late - timedelta(seconds=1)) == datetime(2026, 3, 3, 0, 0, tzinfo=IST)


def test_a_ring_not_yet_full_allows_a_grant_now() -> None:
    assert plan(NOW, [ring(SECOND, 9, last=NOW - timedelta(seconds=0.5))]) == (NOW, None)


def test_a_full_ring_is_bound_by_its_predecessor() -> None:
    full = ring(SECOND, 10, last=NOW, predecessor=NOW - timedelta(seconds=0.5))
    assert plan(NOW, [full]) == (NOW + timedelta(seconds=0.6), full)


def test_no_grant_comes_before_the_latest_reservation() -> None:
    queued = ring(SECOND, 3, last=NOW + timedelta(seconds=2))
    assert plan(NOW, [queued]) == (NOW + timedelta(seconds=2), queued)


def test_a_trimmed_predecessor_is_replaced_by_the_newest_trimmed_grant() -> None:
    trimmed = ring(SECOND, 10, last=NOW - timedelta(seconds=0.1), trimmed=NOW - timedelta(seconds=0.2))
    assert plan(NOW, [trimmed])[0] == NOW + timedelta(seconds=0.9)


def test_the_latest_bound_of_all_rings_wins_and_is_named() -> None:
    second = ring(SECOND, 10, last=NOW, predecessor=NOW - timedelta(seconds=0.5))
    day = ring(DAY, 5, last=NOW, predecessor=NOW - timedelta(hours=1))
    at, binding = plan(NOW, [second, day])
    assert binding is day
    assert at == datetime(2026, 3, 3, 0, 0, tzinfo=IST)
    refusal = Refused(key="k", limit=binding.limit, needed=(at - NOW).total_seconds(), allowed=30.0)
    assert "per_day" in refusal.message


def test_kites_order_limits() -> None:
    assert [(limit.count, limit.window) for limit in KITE_ORDER_LIMITS] == [(10, 1.0), (400, 60.0), (5000, IST_DAY)]


@pytest.mark.parametrize(("count", "window", "margin"), [(0, 1.0, 0.1), (1, 0.0, 0.1), (1, -1.0, 0.1), (1, 1.0, -0.1)])
def test_a_limit_that_means_nothing_is_refused(count: int, window: float, margin: float) -> None:
    with pytest.raises(ValueError, match="limit x"):
        Limit("x", count, window, margin=margin)
