"""The seam for candles built from live ticks (the current session): `FormingCandles`, and its
implementation over the minute candles the account's feed holder keeps in PostgreSQL (`tick_candles`,
written by `marketdata.ticks.candles`).

Kite advises building the current session's candles from ticks rather than asking for them (a
minute candle fetched within seconds of its close can still change, and the historical API lags the
live market; KITE.md). Every instance reads the same rows, whichever process holds the feed, so
every instance's `/history` shows the same forming candle. How they are merged with the broker's
history is `service.HistoryService`'s business.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg

from ticker_service.marketdata.history.candles import Candle, aggregate
from ticker_service.marketdata.history.intervals import INTERVALS, label_of, period_end

READ_TICK_CANDLES = (
    "SELECT ts, open, high, low, close, volume_from, volume_to, oi FROM tick_candles "
    "WHERE account_id = $1 AND instrument_token = $2 AND ts >= $3 AND ts < $4 ORDER BY ts"
)


class FormingCandles(Protocol):
    async def forming(
        self, account_id: str, instrument_token: int, interval: str, start: datetime, end: datetime
    ) -> Sequence[Candle]:
        """Candles labelled in [start, end) that this process built from the account's ticks."""
        ...


class TickCandles:
    """Candles from the minute candles the holder of the account's feed built from its ticks."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def minutes(self, account_id: str, instrument_token: int, start: datetime, end: datetime) -> list[Candle]:
        rows = await self.pool.fetch(READ_TICK_CANDLES, account_id, instrument_token, start, end)
        return [
            Candle(
                r["ts"],
                r["open"],
                r["high"],
                r["low"],
                r["close"],
                max(0, r["volume_to"] - r["volume_from"])
                if r["volume_to"] is not None and r["volume_from"] is not None
                else 0,
                r["oi"],
            )
            for r in rows
        ]

    async def forming(
        self, account_id: str, instrument_token: int, interval: str, start: datetime, end: datetime
    ) -> Sequence[Candle]:
        step = INTERVALS[interval]
        if step.minutes == 1:
            return await self.minutes(account_id, instrument_token, start, end)
        first = label_of(step, start)
        last = period_end(step, label_of(step, end - timedelta(microseconds=1)))
        minutes = await self.minutes(account_id, instrument_token, first, last)
        return [c for c in aggregate(minutes, lambda d: label_of(step, d)) if start <= c.date < end]
