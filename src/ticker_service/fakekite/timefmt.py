"""Kite's time formats: REST and postbacks use naive IST, candles an explicit +0530, ticks epoch seconds."""

from __future__ import annotations

from datetime import datetime

from ticker_service.timeutil import IST


def now_ist() -> datetime:
    return datetime.now(IST)


def kite_timestamp(value: datetime | None) -> str | None:
    """`2021-05-31 09:18:57`: IST without a zone, as every Kite REST answer and postback."""
    if value is None:
        return None
    return value.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def kite_clock(value: datetime) -> str:
    """`09:16:39`: the trade book's `order_timestamp` carries only the time of day."""
    return value.astimezone(IST).strftime("%H:%M:%S")


def candle_timestamp(value: datetime) -> str:
    """`2017-12-15T09:15:00+0530`: the historical API's candle time."""
    return value.astimezone(IST).strftime("%Y-%m-%dT%H:%M:%S%z")


def parse_kite_datetime(text: str) -> datetime:
    """`yyyy-mm-dd hh:mm:ss` or `yyyy-mm-dd`, read as IST (how the historical API reads `from` and `to`)."""
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=IST)
        except ValueError:
            continue
    raise ValueError(text)
