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

Both halves run on the tick path of a process that also fans ticks out, so both are lean: the
builder reads the three fields it needs straight from the packets (no parsed `Tick`), and the write
sends the bars as ONE JSON document that PostgreSQL unpacks (`jsonb_to_recordset`): nine 500-long
typed arrays (timestamps among them) cost the holder about four times the CPU to encode.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Iterable
from datetime import datetime

import asyncpg
import msgspec
import structlog

from ticker_service.marketdata.packets import FULL_SIZE, QUOTE_SIZE, price_divisor
from ticker_service.timeutil import IST

log = structlog.get_logger("ticker.marketdata")

FLUSH_EVERY = 1.0  # seconds: at most one write a second per account
KEEP_DAYS = 4  # tick candles older than this are purged (the broker's history has those minutes)
PURGE_EVERY = 3600.0

UPSERT_TICK_CANDLES = """
INSERT INTO tick_candles AS c (account_id, instrument_token, ts, open, high, low, close, volume_from, volume_to, oi)
SELECT $1, r.instrument_token, to_timestamp(r.minute), r.open, r.high, r.low, r.close, r.volume_from, r.volume_to, r.oi
FROM jsonb_to_recordset($2::jsonb) AS r(instrument_token bigint, minute bigint, open float8, high float8, low float8,
                                        close float8, volume_from bigint, volume_to bigint, oi bigint)
ORDER BY r.instrument_token, r.minute
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

_HEAD = struct.Struct(">Ii")  # every packet: token, last price
_U32 = struct.Struct(">I")
_VOLUME_AT = 16  # quote and full packets: token, last price, last quantity, average price, volume
_OI_AT = 48  # full packets: after the quote's 44 bytes and the last trade time
_encoder = msgspec.json.Encoder()


class MinuteBar(msgspec.Struct):
    """One instrument's minute; also the row the write sends (its fields are the record's columns)."""

    instrument_token: int
    minute: int  # epoch seconds of the minute's start
    open: float
    high: float
    low: float
    close: float
    volume_from: int | None
    volume_to: int | None
    oi: int | None

    @property
    def ts(self) -> datetime:
        return datetime.fromtimestamp(self.minute, IST)


def minute_of(moment: float) -> int:
    """The start (epoch seconds) of the minute holding the epoch instant `moment`: Kite's candles sit
    on whole minutes of IST, whose offset is whole minutes from UTC."""
    return int(moment - moment % 60)


class TickCandleBuilder:
    def __init__(self, pool: asyncpg.Pool, account_id: str, flush_every: float = FLUSH_EVERY) -> None:
        self.pool = pool
        self.account_id = account_id
        self.flush_every = flush_every
        self._bars: dict[int, MinuteBar] = {}  # the current minute of each instrument
        self._dirty: dict[tuple[int, int], MinuteBar] = {}  # (token, minute) -> bar, changed since the last take
        self._day: int | None = None  # the IST day of `_last_volume`'s figures
        self._last_volume: dict[int, int] = {}  # token -> the day's cumulative volume at its last tick
        self._ready = asyncio.Event()

    def add(self, packets: Iterable[bytes], received: float | None = None) -> None:
        """The feed's batch of packets, as received (every tick, before any conflation)."""
        now = time.time() if received is None else received
        minute = minute_of(now)
        day = minute_of(now + 19_800) // 86_400  # the IST calendar day (+05:30)
        if day != self._day:
            self._day, self._last_volume = day, {}
        bars, dirty, last_volume = self._bars, self._dirty, self._last_volume
        for packet in packets:
            token, last = _HEAD.unpack_from(packet)
            price = last / price_divisor(token)
            size = len(packet)
            volume: int | None = _U32.unpack_from(packet, _VOLUME_AT)[0] if size >= QUOTE_SIZE else None
            oi: int | None = _U32.unpack_from(packet, _OI_AT)[0] if size == FULL_SIZE else None
            bar = bars.get(token)
            if bar is None or bar.minute != minute:
                start = last_volume.get(token, volume) if volume is not None else None
                bar = bars[token] = MinuteBar(token, minute, price, price, price, price, start, volume, oi)
            else:
                if price > bar.high:
                    bar.high = price
                elif price < bar.low:
                    bar.low = price
                bar.close = price
                if volume is not None:
                    if bar.volume_from is None:
                        bar.volume_from = volume
                    bar.volume_to = volume
                if oi is not None:
                    bar.oi = oi
            if volume is not None:
                last_volume[token] = volume
            dirty[(token, minute)] = bar
        if dirty:
            self._ready.set()

    def take(self) -> list[MinuteBar]:
        """The bars changed since the last take (the live ones: encode them before the next `add`)."""
        taken = list(self._dirty.values())
        self._dirty = {}
        return taken

    async def run(self) -> None:
        """Write until cancelled; a failed write is retried with the bars merged into the next one."""
        loop = asyncio.get_running_loop()
        purged_at = -PURGE_EVERY
        while True:
            await self._ready.wait()
            self._ready.clear()
            bars = self.take()
            if bars:
                try:
                    await self.write(_encoder.encode(bars).decode())  # encoded now: a snapshot of live bars
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("tick candles not written; retrying", account_id=self.account_id, error=str(exc))
                    for bar in bars:  # a bar still live has gone on taking ticks: its newest state is sent
                        self._dirty.setdefault((bar.instrument_token, bar.minute), bar)
                    self._ready.set()
            if loop.time() - purged_at >= PURGE_EVERY:
                purged_at = loop.time()
                try:
                    await self.pool.execute(PURGE_TICK_CANDLES, self.account_id, KEEP_DAYS)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("old tick candles not purged", account_id=self.account_id, error=str(exc))
            await asyncio.sleep(self.flush_every)  # what arrives meanwhile goes out in the next write

    async def write(self, bars_json: str) -> None:
        """The bars as one JSON array of `MinuteBar` objects; rows taken in one order by every writer,
        so two holders' last writes cannot deadlock."""
        await self.pool.execute(UPSERT_TICK_CANDLES, self.account_id, bars_json)
