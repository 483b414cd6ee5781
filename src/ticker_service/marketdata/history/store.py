"""Candles of closed periods in PostgreSQL (`candles`), and the ranges whose candles are all stored
(`candle_ranges`), per (account, token, interval, continuous).

A range is written in the same transaction as its candles, so a range on record always has its
candles. Two instances storing overlapping or touching ranges at once is harmless: ranges are only
ever read as a union; the writer merges the ones it touches to keep the table small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from ticker_service.marketdata.history.candles import Candle
from ticker_service.marketdata.history.windows import Range


@dataclass(frozen=True, slots=True)
class SeriesKey:
    account_id: str
    instrument_token: int
    interval: str
    continuous: bool

    def args(self) -> tuple[str, int, str, bool]:
        return (self.account_id, self.instrument_token, self.interval, self.continuous)


_KEY = "account_id = $1 AND instrument_token = $2 AND interval = $3 AND continuous = $4"
COVERED = f"SELECT from_ts, to_ts FROM candle_ranges WHERE {_KEY} AND from_ts < $6 AND to_ts > $5 ORDER BY from_ts"
STORED = f"SELECT ts, open, high, low, close, volume, oi FROM candles WHERE {_KEY} AND ts >= $5 AND ts < $6 ORDER BY ts"
TAKE_TOUCHING_RANGES = (
    f"DELETE FROM candle_ranges WHERE {_KEY} AND from_ts <= $6 AND to_ts >= $5 RETURNING from_ts, to_ts"
)


async def covered(pool: asyncpg.Pool, key: SeriesKey, want: Range) -> list[Range]:
    rows = await pool.fetch(
        COVERED,
        *key.args(),
        *want,
    )
    return [(r["from_ts"], r["to_ts"]) for r in rows]


async def stored(pool: asyncpg.Pool, key: SeriesKey, want: Range) -> list[Candle]:
    rows = await pool.fetch(
        STORED,
        *key.args(),
        *want,
    )
    return [Candle(r["ts"], r["open"], r["high"], r["low"], r["close"], r["volume"], r["oi"]) for r in rows]


async def save(pool: asyncpg.Pool, key: SeriesKey, candles: Sequence[Candle], complete: Range) -> None:
    """Store `candles` and record that every candle labelled in `complete` is stored."""
    async with pool.acquire() as conn, conn.transaction():
        if candles:
            await conn.execute(
                "INSERT INTO candles (account_id, instrument_token, interval, continuous, ts, open, high, low, close, "
                "volume, oi) SELECT $1, $2, $3, $4, * FROM unnest($5::timestamptz[], $6::float8[], $7::float8[], "
                "$8::float8[], $9::float8[], $10::bigint[], $11::bigint[]) "
                "ON CONFLICT (account_id, instrument_token, interval, continuous, ts) DO UPDATE SET "
                "open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, "
                "volume = EXCLUDED.volume, oi = EXCLUDED.oi",
                *key.args(),
                [c.date for c in candles],
                [c.open for c in candles],
                [c.high for c in candles],
                [c.low for c in candles],
                [c.close for c in candles],
                [c.volume for c in candles],
                [c.oi for c in candles],
            )
        touching = await conn.fetch(
            TAKE_TOUCHING_RANGES,
            *key.args(),
            *complete,
        )
        start = min([complete[0], *(r["from_ts"] for r in touching)])
        end = max([complete[1], *(r["to_ts"] for r in touching)])
        await conn.execute(
            "INSERT INTO candle_ranges (account_id, instrument_token, interval, continuous, from_ts, to_ts) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, instrument_token, interval, continuous, from_ts) "
            "DO UPDATE SET to_ts = greatest(candle_ranges.to_ts, EXCLUDED.to_ts)",
            *key.args(),
            start,
            end,
        )
