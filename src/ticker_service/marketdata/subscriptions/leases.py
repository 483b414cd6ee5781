"""Each instance's lease row of what its connected clients want (`market_tick_wants`, unlogged).

An instance writes one row per account it has clients of: the union of their wants, renewed while
they stay connected. A crashed instance stops renewing and its row stops counting once the lease
runs out, so a dead instance cannot keep an upstream subscription alive for long; nothing needs to
clean up after it (rows are replaced on the next write, or deleted when the last client leaves).
"""

from __future__ import annotations

import asyncpg

from ticker_service.marketdata.packets import Mode
from ticker_service.marketdata.ticks.channel import WANTS_CHANNEL
from ticker_service.marketdata.ticks.wire import highest

CLIENTS = "clients"  # the wants notification's kind when some instance's clients changed theirs

_WRITE = """
INSERT INTO market_tick_wants (instance_id, account_id, tokens, modes, lease_until)
VALUES ($1, $2, $3::bigint[], $4::text[], now() + make_interval(secs => $5))
ON CONFLICT (instance_id, account_id) DO UPDATE
SET tokens = EXCLUDED.tokens, modes = EXCLUDED.modes, lease_until = EXCLUDED.lease_until
"""
_RENEW = """
UPDATE market_tick_wants SET lease_until = now() + make_interval(secs => $2)
WHERE instance_id = $1 AND account_id = ANY($3::text[])
"""
_DROP = "DELETE FROM market_tick_wants WHERE instance_id = $1 AND account_id = $2"
_NOTIFY = f"SELECT pg_notify('{WANTS_CHANNEL}', $1)"
_DESIRED = """
SELECT instrument_token, mode FROM market_subscriptions WHERE account_id = $1
UNION ALL
SELECT u.t, u.m FROM market_tick_wants w, unnest(w.tokens, w.modes) AS u(t, m)
WHERE w.account_id = $1 AND w.lease_until > now()
"""


async def write(
    pool: asyncpg.Pool, instance_id: str, account_id: str, wants: dict[int, Mode], ttl: float, *, notify: bool
) -> None:
    """Replace this instance's row for the account (delete it when nothing is wanted)."""
    async with pool.acquire() as conn, conn.transaction():
        if wants:
            await conn.execute(_WRITE, instance_id, account_id, list(wants), list(wants.values()), ttl)
        else:
            await conn.execute(_DROP, instance_id, account_id)
        if notify:
            await conn.execute(_NOTIFY, f"{account_id} {CLIENTS}")


async def renew(pool: asyncpg.Pool, instance_id: str, account_ids: list[str], ttl: float) -> None:
    await pool.execute(_RENEW, instance_id, ttl, account_ids)


async def desired(conn: asyncpg.Pool | asyncpg.Connection, account_id: str) -> dict[int, Mode]:
    """What the account's upstream feed should carry: stored and leased wants, each at its highest mode."""
    out: dict[int, Mode] = {}
    for row in await conn.fetch(_DESIRED, account_id):
        token, mode = row["instrument_token"], row["mode"]
        out[token] = highest(out[token], mode) if token in out else mode
    return out
