"""Kite's candle intervals, NSE's session, and which candles a time range holds.

Sessions are 09:15 to 15:30 IST on weekdays (the paper exchange and the project's fake Kite have no
holiday calendar); an intraday candle starts on the session's grid and the last one of a day ends at
the close (a 60minute day is six hours and a quarter: seven candles). A day candle is labelled with
the day's midnight IST, as Kite labels it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from ticker_service.timeutil import IST

SESSION_OPEN = time(9, 15)
SESSION_CLOSE = time(15, 30)
SESSION_MINUTES = 375
# a candle fetched within seconds of its close can still change (KITE.md): only candles closed this
# long are kept
SETTLE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Interval:
    name: str
    minutes: int  # 0: a day candle
    max_days: int  # the longest range Kite serves in one request (KITE.md)

    @property
    def is_day(self) -> bool:
        return self.minutes == 0

    def per_session(self) -> int:
        return 1 if self.is_day else math.ceil(SESSION_MINUTES / self.minutes)


INTERVALS: dict[str, Interval] = {
    i.name: i
    for i in (
        Interval("minute", 1, 60),
        Interval("3minute", 3, 100),
        Interval("5minute", 5, 100),
        Interval("10minute", 10, 100),
        Interval("15minute", 15, 200),
        Interval("30minute", 30, 200),
        Interval("60minute", 60, 400),
        Interval("day", 0, 2000),
    )
}


@dataclass(frozen=True, slots=True)
class Period:
    """One candle: its label (Kite's timestamp) and the stretch of trading it covers."""

    label: datetime
    opens: datetime
    closes: datetime


def _days(start: datetime, end: datetime) -> Iterator[datetime]:
    """Midnight IST of every weekday that may hold a candle starting in [start, end)."""
    day = datetime.combine(start.astimezone(IST).date(), time(0), IST)
    while day < end:
        if day.weekday() < 5:
            yield day
        day = datetime.combine(day.date() + timedelta(days=1), time(0), IST)


def periods(interval: Interval, start: datetime, end: datetime) -> Iterator[Period]:
    """The candles whose label lies in [start, end), in time order."""
    for day in _days(start, end):
        opens = day.replace(hour=SESSION_OPEN.hour, minute=SESSION_OPEN.minute)
        closes = day.replace(hour=SESSION_CLOSE.hour, minute=SESSION_CLOSE.minute)
        if interval.is_day:
            if start <= day < end:
                yield Period(day, opens, closes)
            continue
        step = timedelta(minutes=interval.minutes)
        moment = opens
        while moment < closes:
            if start <= moment < end:
                yield Period(moment, moment, min(moment + step, closes))
            moment += step


def estimated_candles(interval: Interval, start: datetime, end: datetime) -> int:
    """At most this many candles in [start, end): weekdays times candles per session."""
    days = (end - start).days + 2
    return (days * 5 // 7 + 2) * interval.per_session()


def settled_before(interval: Interval, now: datetime) -> datetime:
    """Every candle labelled before this instant has closed (and settled): it may be kept."""
    if interval.is_day:
        return datetime.combine(now.astimezone(IST).date(), time(0), IST)  # today's day candle is still forming
    return now - timedelta(minutes=interval.minutes) - SETTLE


def label_of(interval: Interval, moment: datetime) -> datetime:
    """The label of the period holding `moment`: the session's grid (anchored at the open); past the
    close a grid anchored at the close, so ticks outside NSE's session (MCX, simulated exchanges)
    never fold into the session's last candle; a day candle is the day's midnight IST."""
    local = moment.astimezone(IST)
    day = datetime.combine(local.date(), time(0), IST)
    if interval.is_day:
        return day
    opens = day.replace(hour=SESSION_OPEN.hour, minute=SESSION_OPEN.minute)
    closes = day.replace(hour=SESSION_CLOSE.hour, minute=SESSION_CLOSE.minute)
    anchor = closes if local >= closes else opens
    offset = (local - anchor).total_seconds()
    return max(day, anchor + timedelta(seconds=offset - offset % (interval.minutes * 60)))


def period_end(interval: Interval, label: datetime) -> datetime:
    """When the period labelled `label` (a label of `label_of`) closes."""
    local = label.astimezone(IST)
    day = datetime.combine(local.date(), time(0), IST)
    if interval.is_day:
        return datetime.combine(day.date() + timedelta(days=1), time(0), IST)
    end = local + timedelta(minutes=interval.minutes)
    closes = day.replace(hour=SESSION_CLOSE.hour, minute=SESSION_CLOSE.minute)
    following = datetime.combine(day.date() + timedelta(days=1), time(0), IST)
    return min(closes, end) if local < closes else min(end, following)
