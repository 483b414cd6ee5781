"""The rate limiter's definitions, without a database (the rules themselves are SQL: see
tests/integration/test_limit_rules_sql.py)."""

from __future__ import annotations

import pytest

from ticker_service.brokers.limits import IST_DAY, KITE_ORDER_LIMITS, Limit, Refused

SECOND = Limit("per_second", 10, 1.0, margin=0.1)
DAY = Limit("per_day", 5, IST_DAY, margin=0.1)


def test_kites_order_limits() -> None:
    assert [(limit.count, limit.window) for limit in KITE_ORDER_LIMITS] == [(10, 1.0), (400, 60.0), (5000, IST_DAY)]


def test_a_limit_reaches_sql_as_window_margin_and_zone() -> None:
    assert SECOND.sql_rule() == (1.0, 0.1, None)
    assert DAY.sql_rule() == (None, 0.1, "Asia/Kolkata")


def test_a_refusal_names_the_limit_that_set_the_slot() -> None:
    refusal = Refused(key="k", limit=DAY, needed=3600.0, allowed=30.0)
    assert "per_day" in refusal.message and "5 per day (Asia/Kolkata)" in refusal.message
    assert "deadline passed" in Refused(key="k", limit=None, needed=0.0, allowed=-1.5).message


@pytest.mark.parametrize(("count", "window", "margin"), [(0, 1.0, 0.1), (1, 0.0, 0.1), (1, -1.0, 0.1), (1, 1.0, -0.1)])
def test_a_limit_that_means_nothing_is_refused(count: int, window: float, margin: float) -> None:
    with pytest.raises(ValueError, match="limit x"):
        Limit("x", count, window, margin=margin)
