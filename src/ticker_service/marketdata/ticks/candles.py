"""Minute candles from the feed's ticks, built where every tick is seen: in the account's feed holder.

Ticks are lossy latest-value data once they leave the holder (the publisher keeps only the newest
per instrument, clients conflate), so candles are built from the feed's own batches, before any
conflation, for every instrument the feed carries. A tick belongs to the minute (IST wall clock,
the same minute grid as Kite's candles) in which the holder received it: exchange timestamps are
missing in quote and LTP mode and name the last trade, not the tick, in full mode.

Per instrument and minute: OHLC from `last_price`; volume as the rise of the day's cumulative
volume (`volume_traded`) from the last tick before the minute (the minute's first tick when the
builder saw none earlier that day) to the minute's last tick, so a day's minutes add up to the
day's volume, for ticks that carry volume (0 for LTP and index ticks); open interest the last seen.

Candles are written in one statement at most once a second (`FLUSH_EVERY`), never per tick: the
minutes that changed since the last write, merged into what is stored (a holder that took over the
feed mid-minute extends the row its predecessor wrote, never restarts it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from ticker_service.marketdata.packets import Tick
from ticker_service.timeutil import IST

log = structlog.get_logger("ticker.marketdata")

FLUSH_EVERY = 1.0  # seconds: at most one write a second per account
KEEP_DAYS = 4  # tick candles older than this are purged (the broker's history has those minutes)
PURGE_EVERY = 3600.0

UPSERT_TICK_CANDLES = """
INSERT INTO tick_candles AS c (account_id, instrument_token, ts, open, high, low, close, volume_from, volume_to, oi)
SELECT $1, * FROM unnest($2::bigint[], $3::timestamptz[], $4::float8[], $5::float8[], $6::float8[], $7::float8[],
                         $8::bigint[], $9::bigint[], $10::bigint[])
ON CONFLICT (account_id, instrument_token, ts) DO UPDATE SET
    high = greatest(c.high, EXCLUDED.high),
    low = least(c.low, EXCLUDED.low),
    close = EXCLUDED.close,
    volume_from = coalesce(c.volume_from, EXCLUDED.volume_from),
    volume_to = coalesce(EXCLUDED.volume_to, c.volume_to),
    oi = coalesce(EXCLUDED.oi, c.oi),
    updated_at = now()
"""
PURGE_TICK_CANDLES = "DELETE FROM tick_candles WHERE account_id = $1 AND ts < now() - make_interval(days => $2)"


@dataclass(slots=True)
class MinuteBar:
    open: float
    high: float
    low: float
    close: float
    volume_from: int | None
    volume_to: int | None
    oi: int | None


def minute_of(moment: float) -> datetime:
    """The minute (an aware IST datetime) holding the epoch instant `moment`."""
    return datetime.fromtimestamp(moment - moment % 60, IST)


class TickCandleBuilder:
    def __init__(self, pool: asyncpg.Pool, account_id: str, flush_every: float = FLUSH_EVERY) -> None:
        self.pool = pool
        self.account_id = account_id
        self.flush_every = flush_every
        self._bars: dict[tuple[int, datetime], MinuteBar] = {}  # the current minute of each instrument
        self._dirty: set[tuple[int, datetime]] = set()
        self._last_volume: dict[int, tuple[datetime, int]] = {}  # token -> (day, cumulative volume)
        self._ready = asyncio.Event()

    def add(self, ticks: Iterable[Tick], received: float | None = None) -> None:
        """The feed's batch, as received (every tick, before any conflation)."""
        minute = minute_of(time.time() if received is None else received)
        day = minute.replace(hour=0, minute=0)
        for tick in ticks:
            key = (tick.instrument_token, minute)
            price = tick.last_price
            bar = self._bars.get(key)
            volume = tick.volume
            if bar is None:
                before = self._last_volume.get(tick.instrument_token)
                start = before[1] if before is not None and before[0] == day and volume is not None else volume
                bar = MinuteBar(price, price, price, price, start, volume, tick.oi)
                self._bars[key] = bar
            else:
                bar.high = max(bar.high, price)
                bar.low = min(bar.low, price)
                bar.close = price
                if volume is not None:
                    if bar.volume_from is None:
                        bar.volume_from = volume
                    bar.volume_to = volume
                if tick.oi is not None:
                    bar.oi = tick.oi
            if volume is not None:
                self._last_volume[tick.instrument_token] = (day, volume)
            self._dirty.add(key)
        if self._dirty:
            self._ready.set()

    def take(self) -> dict[tuple[int, datetime], MinuteBar]:
        """The bars changed since the last take; bars of minutes before the newest are let go."""
        out = {key: self._copy(self._bars[key]) for key in self._dirty}
        self._dirty.clear()
        if out:
            newest = max(minute for _, minute in self._bars)
            self._bars = {k: v for k, v in self._bars.items() if k[1] >= newest - timedelta(minutes=1)}
        return out

    @staticmethod
    def _copy(bar: MinuteBar) -> MinuteBar:
        return MinuteBar(bar.open, bar.high, bar.low, bar.close, bar.volume_from, bar.volume_to, bar.oi)

    async def run(self) -> None:
        """Write until cancelled; a failed write is retried with the bars merged into the next one."""
        loop = asyncio.get_running_loop()
        purged_at = -PURGE_EVERY
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch = self.take()
            if batch:
                try:
                    await self.write(batch)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("tick candles not written; retrying", account_id=self.account_id, error=str(exc))
                    for key, bar in batch.items():  # newer ticks of a minute went on into its live bar
                        self._bars.setdefault(key, bar)
                        self._dirty.add(key)
                    self._ready.set()
            if loop.time() - purged_at >= PURGE_EVERY:
                purged_at = loop.time()
                try:
                    await self.pool.execute(PURGE_TICK_CANDLES, self.account_id, KEEP_DAYS)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("old tick candles not purged", account_id=self.account_id, error=str(exc))
            await asyncio.sleep(self.flush_every)  # what arrives meanwhile goes out in the next write

    async def write(self, bars: dict[tuple[int, datetime], MinuteBar]) -> None:
        keys = sorted(bars)  # one order for every writer: no deadlock between two holders' last writes
        rows = [bars[k] for k in keys]
        await self.pool.execute(
            UPSERT_TICK_CANDLES,
            self.account_id,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [b.open for b in rows],
            [b.high for b in rows],
            [b.low for b in rows],
            [b.close for b in rows],
            [b.volume_from for b in rows],
            [b.volume_to for b in rows],
            [b.oi for b in rows],
        )
