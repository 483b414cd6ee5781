"""NSE's monthly expiry days for index derivatives.

Since September 2025 (NSE circular on the change of expiry days) monthly NIFTY and BANKNIFTY
contracts expire on the last Tuesday of the month; before that on the last Thursday. An expiry that
falls on a trading holiday moves to the previous trading day. The project has no exchange calendar:
the fixed-date holidays NSE observes every year are built in, and operators add the moveable ones
(Holi, Diwali, ...) from NSE's yearly circular with `TICKER_MARKET_HOLIDAYS`.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, timedelta

TUESDAY = 1
THURSDAY = 3
TUESDAY_EXPIRIES_FROM = date(2025, 9, 1)

# (month, day) holidays NSE closes on every year: Republic Day, Maharashtra Day, Independence Day,
# Gandhi Jayanti, Christmas
FIXED_HOLIDAYS: frozenset[tuple[int, int]] = frozenset({(1, 26), (5, 1), (8, 15), (10, 2), (12, 25)})


class Holidays:
    """Trading holidays: the fixed-date ones of every year plus the dates an operator configured."""

    def __init__(self, extra: Iterable[date] = ()) -> None:
        self.extra = frozenset(extra)

    def is_trading_day(self, day: date) -> bool:
        return day.weekday() < 5 and (day.month, day.day) not in FIXED_HOLIDAYS and day not in self.extra


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def monthly_expiry(year: int, month: int, holidays: Holidays) -> date:
    """The monthly expiry of (year, month): its last Tuesday (last Thursday before September 2025),
    moved back to the previous trading day when that is a holiday."""
    weekday = TUESDAY if date(year, month, 1) >= TUESDAY_EXPIRIES_FROM else THURSDAY
    day = _last_weekday(year, month, weekday)
    while not holidays.is_trading_day(day):
        day -= timedelta(days=1)
    return day


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def monthly_expiries(on: date, count: int, holidays: Holidays) -> list[date]:
    """The `count` monthly expiries still trading on `on` (a contract trades on its expiry day)."""
    out: list[date] = []
    year, month = on.year, on.month
    while len(out) < count:
        expiry = monthly_expiry(year, month, holidays)
        if expiry >= on:
            out.append(expiry)
        year, month = _next_month(year, month)
    return out
