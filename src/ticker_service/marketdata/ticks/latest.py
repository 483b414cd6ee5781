"""The latest tick of every instrument an account's feed carried (`market_ticks`, unlogged).

Written by the feed's holder with each batch it publishes; read when a client subscribes to an
instrument its instance has not seen a tick of yet (after a restart, or on an instance that just
began serving the account). Unlogged: a crash loses it, and the next ticks rebuild it.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

_UPSERT = """
INSERT INTO market_ticks (account_id, instrument_token, packet, updated_at)
SELECT $1, t, p, now() FROM unnest($2::bigint[], $3::bytea[]) AS u(t, p)
ON CONFLICT (account_id, instrument_token) DO UPDATE SET packet = EXCLUDED.packet, updated_at = now()
"""
_READ = "SELECT packet FROM market_ticks WHERE account_id = $1 AND instrument_token = ANY($2::bigint[])"


async def write(conn: asyncpg.Connection, account_id: str, packets: dict[int, bytes]) -> None:
    await conn.execute(_UPSERT, account_id, list(packets), list(packets.values()))


async def read(pool: asyncpg.Pool, account_id: str, tokens: Iterable[int]) -> list[bytes]:
    return [bytes(r["packet"]) for r in await pool.fetch(_READ, account_id, list(tokens))]
