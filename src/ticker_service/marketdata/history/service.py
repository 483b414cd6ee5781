"""`/history`: which candles a request wants, and where each comes from.

* Paper accounts: computed from the price model (`paper`); nothing is stored.
* Kite accounts: the stored candles (`store`) for the ranges already complete; the rest (gaps) is
  fetched in Kite-sized windows (`kite`). Candles of closed periods are kept with the range they
  complete, so asking again reads no window twice; the part not yet settled (the current session)
  is fetched on every request and never kept. Candles built from live ticks (`forming`) replace the
  broker's for the unsettled part once the tick stream provides them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ticker_service.brokers.base import BrokerRejected, PriceModel
from ticker_service.instruments import Instrument
from ticker_service.marketdata.history import store
from ticker_service.marketdata.history.candles import Candle
from ticker_service.marketdata.history.forming import FormingCandles
from ticker_service.marketdata.history.intervals import INTERVALS, Interval, estimated_candles, settled_before
from ticker_service.marketdata.history.kite import CandleSource, fetch_gap
from ticker_service.marketdata.history.paper import paper_candles
from ticker_service.marketdata.history.windows import subtract
from ticker_service.marketdata.instruments.catalogue import InstrumentCatalogue
from ticker_service.system.errors import ApiError, FieldError
from ticker_service.timeutil import utcnow

MAX_CANDLES = 100_000  # one answer: about 266 sessions of minute candles
_THREAD_ABOVE = 2_000  # paper candles computed off the event loop past this many


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    instrument_token: int
    interval: str
    start: datetime
    end: datetime  # exclusive: the request's `to_ts` plus one second (Kite's `to` is inclusive)
    continuous: bool = False
    oi: bool = False


def interval_of(name: str) -> Interval:
    interval = INTERVALS.get(name)
    if interval is None:
        raise FieldError("interval", f"unknown interval {name[:40]!r}; one of {', '.join(INTERVALS)}")
    return interval


class HistoryService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        catalogue: InstrumentCatalogue,
        models: Mapping[str, PriceModel],
        sources: Mapping[str, CandleSource],
        forming: FormingCandles,
    ) -> None:
        self.pool = pool
        self.catalogue = catalogue
        self.models = dict(models)
        self.sources = dict(sources)
        self.forming = forming
        # one fetch at a time per series in this process, so two requests for the same range ask Kite
        # once (the second finds the first's candles stored); across instances they may both ask
        self._series_locks: dict[store.SeriesKey, asyncio.Lock] = {}

    def knows(self, account_id: str) -> bool:
        return account_id in self.models or account_id in self.sources

    async def candles(self, account_id: str, query: HistoryQuery) -> list[Candle]:
        interval = interval_of(query.interval)
        if query.end <= query.start:
            raise FieldError("to_ts", "to_ts is before from_ts")
        if estimated_candles(interval, query.start, query.end) > MAX_CANDLES:
            raise FieldError("to_ts", f"the range holds more than {MAX_CANDLES} {interval.name} candles; ask in parts")
        instrument = (await self.catalogue.by_tokens(account_id, [query.instrument_token])).get(query.instrument_token)
        if instrument is None:
            raise FieldError("instrument_token", f"unknown instrument_token {query.instrument_token}")
        now = utcnow()
        model = self.models.get(account_id)
        if model is not None:
            found = await self._paper(instrument, interval, query, model, now)
        else:
            found = await self._kite(account_id, interval, query, now)
        return await self._with_forming(account_id, query, interval, found, now)

    async def _paper(
        self, instrument: Instrument, interval: Interval, q: HistoryQuery, model: PriceModel, now: datetime
    ) -> list[Candle]:
        args = (instrument, interval, q.start, q.end, model, now)
        if estimated_candles(interval, q.start, q.end) > _THREAD_ABOVE:
            return await asyncio.to_thread(paper_candles, *args)
        return paper_candles(*args)

    async def _kite(self, account_id: str, interval: Interval, q: HistoryQuery, now: datetime) -> list[Candle]:
        source = self.sources[account_id]
        key = store.SeriesKey(account_id, q.instrument_token, interval.name, q.continuous)
        lock = self._series_locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                return await self._kite_locked(source, key, interval, q, now)
        finally:
            if not lock.locked() and self._series_locks.get(key) is lock:
                del self._series_locks[key]

    async def _kite_locked(
        self, source: CandleSource, key: store.SeriesKey, interval: Interval, q: HistoryQuery, now: datetime
    ) -> list[Candle]:
        want = (q.start, q.end)
        settled = settled_before(interval, now)
        fresh: dict[datetime, Candle] = {}
        for gap in subtract(want, await store.covered(self.pool, key, want)):
            try:
                fetched = await fetch_gap(source, q.instrument_token, interval, gap, continuous=q.continuous)
            except BrokerRejected as exc:
                raise ApiError(422, f"the broker refused the request: {exc}") from None
            unique = {c.date: c for c in fetched}
            closed = [c for c in unique.values() if c.date < settled]
            complete_to = min(gap[1], settled)
            if gap[0] < complete_to:
                await store.save(self.pool, key, closed, (gap[0], complete_to))
            fresh.update((d, c) for d, c in unique.items() if d >= settled)
        kept = await store.stored(self.pool, key, want)
        merged = {c.date: c for c in kept} | fresh
        return [merged[d] for d in sorted(merged)]

    async def _with_forming(
        self, account_id: str, q: HistoryQuery, interval: Interval, found: list[Candle], now: datetime
    ) -> list[Candle]:
        settled = settled_before(interval, now)
        if q.end <= settled:
            return found
        built = await self.forming.forming(account_id, q.instrument_token, interval.name, max(q.start, settled), q.end)
        if not built:
            return found
        merged = {c.date: c for c in found} | {c.date: c for c in built}
        return [merged[d] for d in sorted(merged)]
