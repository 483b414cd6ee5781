"""The paper exchange's deterministic prices, fill rules and instrument checks."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from ticker_service.brokers.paper.broker import fill_decision
from ticker_service.brokers.paper.prices import MAX_DEVIATION, price_at
from ticker_service.instruments import check_order, load_instruments, to_decimal
from ticker_service.jobs.maintenance import CleanupSchedule
from ticker_service.timeutil import IST, rfc3339

BOOK = load_instruments()
NIFTY = BOOK.get("NFO", "NIFTY25NOVFUT")
BANKNIFTY = BOOK.get("NFO", "BANKNIFTY25NOVFUT")


def test_instrument_file_has_what_the_spec_needs() -> None:
    assert NIFTY is not None and BANKNIFTY is not None
    assert (NIFTY.lot_size, BANKNIFTY.lot_size) == (50, 25)
    assert abs(NIFTY.last_price - 19_550) < 100 and abs(BANKNIFTY.last_price - 45_500) < 200
    infy = BOOK.get("NSE", "INFY")
    assert infy is not None and 1_400 < infy.last_price < 1_600
    for symbol in ("RELIANCE", "SBIN", "TCS", "HDFCBANK"):
        assert BOOK.get("NSE", symbol) is not None


def test_prices_are_deterministic_bounded_and_on_the_tick() -> None:
    assert NIFTY is not None
    t0 = 1_763_000_000.0
    series = [price_at(NIFTY, t0 + i * 0.25, seed=7) for i in range(2_000)]
    assert series == [price_at(NIFTY, t0 + i * 0.25, seed=7) for i in range(2_000)]
    assert series != [price_at(NIFTY, t0 + i * 0.25, seed=8) for i in range(2_000)]
    assert len(set(series)) > 50  # it moves
    for p in series:
        assert abs(p - NIFTY.last_price) <= NIFTY.last_price * Decimal(MAX_DEVIATION)
        assert p % NIFTY.tick_size == 0
        # the spec's batch example rests OPEN: a buy at 19500 and a sell at 19600 never cross
        assert Decimal(19_500) < p < Decimal(19_600)


@pytest.mark.parametrize(
    ("side", "kind", "status", "price", "trigger", "ltp", "expected", "validity"),
    [
        ("BUY", "MARKET", "OPEN", 0, 0, 100, ("COMPLETE", 100), "DAY"),
        ("BUY", "LIMIT", "OPEN", 99, 0, 100, ("OPEN", None), "DAY"),
        ("BUY", "LIMIT", "OPEN", 101, 0, 100, ("COMPLETE", 100), "DAY"),  # marketable: fills at the market
        ("SELL", "LIMIT", "OPEN", 101, 0, 100, ("OPEN", None), "DAY"),
        ("SELL", "LIMIT", "OPEN", 99, 0, 100, ("COMPLETE", 100), "DAY"),
        ("BUY", "SL", "TRIGGER PENDING", 106, 105, 100, ("TRIGGER PENDING", None), "DAY"),
        ("BUY", "SL", "TRIGGER PENDING", 106, 105, 105, ("COMPLETE", 105), "DAY"),
        ("SELL", "SL-M", "TRIGGER PENDING", 0, 95, 96, ("TRIGGER PENDING", None), "DAY"),
        ("SELL", "SL-M", "TRIGGER PENDING", 0, 95, 94, ("COMPLETE", 94), "DAY"),
        ("SELL", "SL", "TRIGGER PENDING", 96, 95, 94, ("OPEN", None), "DAY"),  # triggered, limit not reached
        # IOC: whatever is not marketable when it reaches the market is cancelled, never rests
        ("BUY", "LIMIT", "OPEN", 99, 0, 100, ("CANCELLED", None), "IOC"),
        ("BUY", "LIMIT", "OPEN", 101, 0, 100, ("COMPLETE", 100), "IOC"),
        ("BUY", "MARKET", "OPEN", 0, 0, 100, ("COMPLETE", 100), "IOC"),
        ("SELL", "SL", "TRIGGER PENDING", 96, 95, 96, ("TRIGGER PENDING", None), "IOC"),  # waits for its trigger
        ("SELL", "SL", "TRIGGER PENDING", 96, 95, 94, ("CANCELLED", None), "IOC"),
    ],
)
def test_fill_rules(
    side: str,
    kind: str,
    status: str,
    price: int,
    trigger: int,
    ltp: int,
    expected: tuple[str, int | None],
    validity: str,
) -> None:
    got = fill_decision(
        transaction_type=side,
        order_type=kind,
        status=status,
        price=Decimal(price),
        trigger=Decimal(trigger),
        ltp=Decimal(ltp),
        validity=validity,
    )
    assert got == (expected[0], None if expected[1] is None else Decimal(expected[1]))


def test_tick_checks_use_exact_decimals() -> None:
    assert NIFTY is not None
    ok = check_order(NIFTY, quantity=50, order_type="LIMIT", price=to_decimal(19500.05), trigger_price=None)
    assert ok == []
    off = check_order(NIFTY, quantity=50, order_type="LIMIT", price=to_decimal(19500.03), trigger_price=None)
    assert [f for f, _ in off] == ["price"]
    lots = check_order(
        NIFTY, quantity=75, order_type="MARKET", price=None, trigger_price=None, field_prefix="orders[1]."
    )
    assert lots[0][0] == "orders[1].quantity" and "lot size 50" in lots[0][1]


def test_cleanup_schedule_runs_in_kolkata_time() -> None:
    start = datetime(2025, 11, 3, 1, 0, tzinfo=IST)
    schedule = CleanupSchedule("0 2 * * *", now=start)
    assert schedule.next_fire == datetime(2025, 11, 3, 2, 0, tzinfo=IST)
    assert not schedule.due(datetime(2025, 11, 3, 1, 59, tzinfo=IST))
    assert schedule.due(datetime(2025, 11, 3, 2, 0, 5, tzinfo=IST))
    assert schedule.next_fire == datetime(2025, 11, 4, 2, 0, tzinfo=IST)


def test_timestamps_are_rfc3339_utc() -> None:
    assert rfc3339(datetime(2025, 10, 31, 14, 45, 30, 123456, tzinfo=IST)) == "2025-10-31T09:15:30.123Z"
    assert rfc3339(datetime(2025, 10, 31, 14, 45, 30)) == "2025-10-31T09:15:30.000Z"  # naive: Kite's IST
