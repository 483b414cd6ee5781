"""The account's stored subscriptions (`market_subscriptions`): what a client gets by default."""

from __future__ import annotations

import asyncpg

from ticker_service.marketdata.packets import Mode
from ticker_service.marketdata.ticks.channel import WANTS_CHANNEL

STORED = "stored"  # the wants notification's kind when the stored list changed

_LIST = """
SELECT instrument_token, mode FROM market_subscriptions WHERE account_id = $1 ORDER BY created_at, instrument_token
"""
_ADD = """
INSERT INTO market_subscriptions (account_id, instrument_token, mode)
SELECT $1, t, m FROM unnest($2::bigint[], $3::text[]) AS u(t, m)
ON CONFLICT (account_id, instrument_token) DO UPDATE SET mode = EXCLUDED.mode
"""
_REMOVE = "DELETE FROM market_subscriptions WHERE account_id = $1 AND instrument_token = $2"
_NOTIFY = f"SELECT pg_notify('{WANTS_CHANNEL}', $1)"


async def stored(conn: asyncpg.Pool | asyncpg.Connection, account_id: str) -> dict[int, Mode]:
    return {r["instrument_token"]: r["mode"] for r in await conn.fetch(_LIST, account_id)}


async def add(pool: asyncpg.Pool, account_id: str, modes: dict[int, Mode]) -> None:
    """Store (or change the mode of) these subscriptions and wake the holder, in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_ADD, account_id, list(modes), list(modes.values()))
        await conn.execute(_NOTIFY, f"{account_id} {STORED}")


async def remove(pool: asyncpg.Pool, account_id: str, token: int) -> bool:
    """False when the account had no such subscription."""
    async with pool.acquire() as conn, conn.transaction():
        status: str = await conn.execute(_REMOVE, account_id, token)
        gone = status.endswith(" 1")
        if gone:
            await conn.execute(_NOTIFY, f"{account_id} {STORED}")
    return gone
