"""Synthetic candles for `GET /instruments/historical/{token}/{interval}`.

Each candle is a pure function of (token, candle start), so any range asked twice, or two
overlapping ranges, agree on every candle they share. Intraday candles cover NSE's session (09:15 to
15:30 IST, Monday to Friday) for every exchange; the fake has no holiday calendar.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ticker_service.fakekite.errors import input_error
from ticker_service.fakekite.instruments import FakeInstrument
from ticker_service.fakekite.market import round_to_tick
from ticker_service.fakekite.timefmt import candle_timestamp

# minutes per candle, and the longest range Kite serves per request in days (KITE.md)
INTERVALS: dict[str, tuple[int, int]] = {
    "minute": (1, 60),
    "3minute": (3, 100),
    "5minute": (5, 100),
    "10minute": (10, 100),
    "15minute": (15, 200),
    "30minute": (30, 200),
    "60minute": (60, 400),
    "day": (0, 2000),
}
SESSION_OPEN = time(9, 15)
SESSION_CLOSE = time(15, 30)


def _noise(token: int, moment: datetime, salt: str) -> float:
    """A number in [0, 1) fixed by the inputs."""
    digest = hashlib.blake2b(f"{token}:{int(moment.timestamp())}:{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _level(instrument: FakeInstrument, moment: datetime) -> float:
    t = moment.timestamp()
    base = float(instrument.price)
    wave = 0.03 * math.sin(2 * math.pi * t / (9 * 86400)) + 0.008 * math.sin(2 * math.pi * t / 5400)
    jitter = (_noise(instrument.instrument_token, moment, "level") - 0.5) * 0.004
    return base * (1 + wave + jitter)


def _candle(
    instrument: FakeInstrument, start: datetime, end: datetime, oi: bool, label: datetime | None = None
) -> list[Any]:
    tick = instrument.price_step
    o = _level(instrument, start)
    c = _level(instrument, end)
    spread = float(instrument.price) * 0.002
    h = max(o, c) + spread * _noise(instrument.instrument_token, start, "high")
    lo = min(o, c) - spread * _noise(instrument.instrument_token, start, "low")
    values = [float(round_to_tick(Decimal(str(v)), tick)) for v in (o, h, lo, c)]
    minutes = max(1, int((end - start).total_seconds() // 60))
    volume = 0 if instrument.is_index else int(minutes * (200 + 5000 * _noise(instrument.instrument_token, start, "v")))
    candle: list[Any] = [candle_timestamp(label or start), *values, volume]
    if oi:
        candle.append(
            int(1_000_000 + 50_000 * _noise(instrument.instrument_token, start, "oi"))
            if instrument.is_derivative
            else 0
        )
    return candle


def candles(
    instrument: FakeInstrument,
    interval: str,
    start: datetime,
    end: datetime,
    *,
    oi: bool,
    lag: float | None = None,
    all_day: bool = False,
    now: datetime | None = None,
) -> list[list[Any]]:
    """Candles whose start lies in [start, end], or Kite's InputException for a bad request.

    `lag` (seconds): like the real historical API, which lags the live market, serve only candles
    whose period ended at least `lag` seconds before `now` (None: every candle, the future's too).
    `all_day`: a session around the clock on every day (so a test at any hour has a "today").
    """
    if interval not in INTERVALS:
        raise input_error("invalid interval")
    minutes, max_days = INTERVALS[interval]
    if end < start:
        raise input_error("invalid from and to dates: `from` is after `to`")
    if end - start > timedelta(days=max_days):
        raise input_error(f"interval exceeds max limit: {max_days} days")
    out: list[list[Any]] = []
    served_until = None if lag is None else (now or datetime.now(start.tzinfo)) - timedelta(seconds=lag)
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= end:
        if day.weekday() < 5 or all_day:
            session_open = day if all_day else day.replace(hour=SESSION_OPEN.hour, minute=SESSION_OPEN.minute)
            session_close = (
                day + timedelta(days=1)
                if all_day
                else day.replace(hour=SESSION_CLOSE.hour, minute=SESSION_CLOSE.minute)
            )
            if minutes == 0:
                if start <= day and (served_until is None or session_close <= served_until):
                    out.append(_candle(instrument, session_open, session_close, oi, label=day))
            else:
                moment = session_open
                step = timedelta(minutes=minutes)
                while moment < session_close:
                    ends = min(moment + step, session_close)
                    if start <= moment <= end and (served_until is None or ends <= served_until):
                        out.append(_candle(instrument, moment, ends, oi))
                    moment += step
        day += timedelta(days=1)
    return out
