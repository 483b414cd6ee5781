"""Each account's broker feed (its ticker connection) as the instance following it last saw it.

One instance follows an account's feed and writes its state here; every instance's `/health` and
`GET /accounts` read it, so the answer does not depend on which instance was asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg

_RECORD = """
INSERT INTO account_feeds (account_id, state, detail, instance_id, reconnects, last_frame_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (account_id) DO UPDATE SET state = EXCLUDED.state, detail = EXCLUDED.detail,
    instance_id = EXCLUDED.instance_id, reconnects = EXCLUDED.reconnects, last_frame_at = EXCLUDED.last_frame_at,
    updated_at = now()
"""
_READ = "SELECT * FROM account_feeds WHERE account_id = ANY($1::text[])"


async def record(
    pool: asyncpg.Pool,
    account_id: str,
    state: str,
    detail: str | None,
    *,
    instance_id: str,
    reconnects: int,
    last_frame_at: datetime | None,
) -> None:
    await pool.execute(_RECORD, account_id, state, detail, instance_id, reconnects, last_frame_at)


async def of_accounts(pool: asyncpg.Pool, account_ids: Iterable[str]) -> dict[str, asyncpg.Record]:
    """The feeds of these accounts, by account; an account whose feed was never followed is absent."""
    return {r["account_id"]: r for r in await pool.fetch(_READ, list(account_ids))}
