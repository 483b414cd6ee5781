"""`/history`: which candles a request wants, and where each comes from.

* Paper accounts: computed from the price model (`paper`); nothing is stored.
* Kite accounts: the stored candles (`store`) for the ranges already complete; the rest (gaps) is
  fetched in Kite-sized windows (`kite`). Candles of closed periods are kept with the range they
  complete, so asking again reads no window twice; the part not yet settled (the current session)
  is fetched on every request and never kept.
* Today (`_live`): the broker's candles where they are final (paper: the model's, exact up to now;
  Kite: settled ones), the minute candles the account's feed holder built from ticks (`forming`)
  for the minutes the broker does not have yet or has not settled (Kite's historical API lags the
  live market; a simulated account ticks outside NSE's session too); higher intervals aggregated
  from that one minute series; the period holding now marked `forming`. Every label once, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import asyncpg

from ticker_service.brokers.base import BrokerRejected, PriceModel
from ticker_service.instruments import Instrument
from ticker_service.marketdata.history import store
from ticker_service.marketdata.history.candles import Candle, aggregate
from ticker_service.marketdata.history.forming import FormingCandles
from ticker_service.marketdata.history.intervals import (
    INTERVALS,
    Interval,
    estimated_candles,
    label_of,
    period_end,
    settled_before,
)
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
        return await self._live(account_id, instrument, interval, query, found, model, now)

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
            today = label_of(DAY, now)
            if complete_to > today:  # Kite's history lags the market: today is complete to its last candle only
                served = [c.date + timedelta(minutes=interval.minutes) for c in closed if c.date >= today]
                complete_to = min(complete_to, max([today, *served]))
            if gap[0] < complete_to:
                await store.save(self.pool, key, closed, (gap[0], complete_to))
            fresh.update((d, c) for d, c in unique.items() if d >= settled)
        kept = await store.stored(self.pool, key, want)
        merged = {c.date: c for c in kept} | fresh
        return [merged[d] for d in sorted(merged)]

    async def _live(
        self,
        account_id: str,
        instrument: Instrument,
        interval: Interval,
        q: HistoryQuery,
        found: list[Candle],
        model: PriceModel | None,
        now: datetime,
    ) -> list[Candle]:
        """Today's part of the answer: the broker's candles where they are final, the tick candles for
        the minutes the broker does not have yet (or has not settled), higher intervals aggregated
        from that one minute series, and the period holding now marked as forming."""
        today = label_of(DAY, now)
        if q.end <= today or q.start > now:
            return found
        # the periods asked for from today on, and the minutes they hold up to now
        first = label_of(interval, max(q.start, today))
        last_label = label_of(interval, min(q.end - _INSTANT, now))
        until = min(period_end(interval, last_label), label_of(MINUTE, now) + _MINUTE)
        if interval.minutes == 1:
            base = [c for c in found if c.date >= first]
        elif model is not None:
            base = []  # the model has every period of its session (final): ticks only fill the others
        else:
            base = await self._kite(account_id, MINUTE, _minutes_of(q, first, until), now)
        ticks = await self.forming.forming(account_id, instrument.instrument_token, MINUTE.name, first, until)
        # paper: the model's candle is exact up to now (final); Kite's is final once settled
        minutes = _overlay(base, ticks, None if model is not None else settled_before(MINUTE, now))
        built = minutes if interval.minutes == 1 else aggregate(minutes, lambda d: label_of(interval, d))
        wanted = [c for c in built if q.start <= c.date < q.end and c.date <= now]
        merged = _overlay(found, wanted, None if model is not None else settled_before(interval, now))
        forming_label = label_of(interval, now)
        return [
            replace(c, forming=True) if c.date == forming_label else c
            for c in merged
            if c.date <= now  # no candle starts in the future (Kite's answer may reach past now)
        ]


_INSTANT = timedelta(microseconds=1)
_MINUTE = timedelta(minutes=1)
MINUTE = INTERVALS["minute"]
DAY = INTERVALS["day"]


def _minutes_of(q: HistoryQuery, start: datetime, end: datetime) -> HistoryQuery:
    return HistoryQuery(q.instrument_token, MINUTE.name, start, end, q.continuous, q.oi)


def _overlay(base: list[Candle], built: Sequence[Candle], final_before: datetime | None) -> list[Candle]:
    """`base` (the broker's) with `built` (from ticks) for every label the broker lacks, and for every
    label from `final_before` on (a broker candle not final yet); `final_before` None: the broker's
    candles are all final. One candle per label, in time order: no gap the ticks can fill, no duplicate."""
    merged = {c.date: c for c in base}
    for candle in built:
        if candle.date not in merged or (final_before is not None and candle.date >= final_before):
            merged[candle.date] = candle
    return [merged[d] for d in sorted(merged)]
