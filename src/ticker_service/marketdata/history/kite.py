"""Candles from a broker that serves them (Kite), window by window under its historical limit.

Each window is one request, waiting for its turn under the 3-a-second historical limit that every
instance shares through PostgreSQL (`KiteTurns.historical`); windows go one after another.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ticker_service.marketdata.history.candles import Candle, from_kite
from ticker_service.marketdata.history.intervals import Interval
from ticker_service.marketdata.history.windows import Range, split

TURN_WAIT = 30.0  # seconds a window may wait for its rate-limit turn


@runtime_checkable
class CandleSource(Protocol):
    async def historical_candles(
        self,
        instrument_token: int,
        interval: str,
        start: datetime,
        end: datetime,
        *,
        continuous: bool,
        oi: bool,
        wait: float,
    ) -> list[dict[str, Any]]: ...


async def fetch_gap(
    source: CandleSource, instrument_token: int, interval: Interval, gap: Range, *, continuous: bool
) -> list[Candle]:
    """Every candle labelled in `gap`, in as many windows as the interval needs; open interest is
    always asked for (it costs nothing), so a stored candle serves requests with and without it."""
    out: list[Candle] = []
    for start, end in split(gap, interval.max_days):
        records = await source.historical_candles(
            instrument_token, interval.name, start, end, continuous=continuous, oi=True, wait=TURN_WAIT
        )
        out.extend(c for c in map(from_kite, records) if start <= c.date < end)
    return out
