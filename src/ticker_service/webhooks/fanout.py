"""Turning outbox events into webhook deliveries, exactly one row per (event, endpoint).

Runs as a singleton job per database. For each account it reads the events after its cursor in seq
order and, in one transaction, inserts a delivery for every active endpoint subscribed to the event
(created before it: `seq > start_seq`) and moves the cursor. Seq is gap-free in commit order, so a
cursor never skips an event; the unique (event_id, webhook_id) constraint makes a repeated batch
(after a crash, or two fan-outs overlapping during a lock hand-over) a no-op.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import structlog

from ticker_service.outbox.channels import DELIVERIES_CHANNEL
from ticker_service.timeutil import rfc3339
from ticker_service.webhooks.service import delivery_body

log = structlog.get_logger("ticker.webhooks")

# Accounts with events past their cursor and at least one active endpoint. An account without
# endpoints is left alone (one cheap query per pass): an endpoint created later starts at the seq of
# its creation, so the events before it are not its to receive whatever the cursor says.
_ACCOUNTS = """
SELECT s.account_id
FROM account_seq AS s LEFT JOIN webhook_cursor AS c ON c.account_id = s.account_id
WHERE s.last_seq > COALESCE(c.last_seq, 0)
  AND EXISTS (SELECT 1 FROM webhooks AS w WHERE w.account_id = s.account_id AND w.active)
"""
_LOCK_CURSOR = """
INSERT INTO webhook_cursor (account_id, last_seq) VALUES ($1, 0) ON CONFLICT (account_id) DO NOTHING
"""
_CURSOR = "SELECT last_seq FROM webhook_cursor WHERE account_id = $1 FOR UPDATE"
_HOOKS = "SELECT webhook_id, events, start_seq FROM webhooks WHERE account_id = $1 AND active"
_EVENTS = """
SELECT seq, event_id, event, data, created_at FROM outbox_events
WHERE account_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4
"""
_INSERT = """
INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, event, account_id, seq, body, status)
SELECT d.delivery_id, d.webhook_id, d.event_id, d.event, $1, d.seq, d.body, 'pending'
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[])
    AS d(delivery_id, webhook_id, event_id, event, seq, body)
ON CONFLICT (event_id, webhook_id) DO NOTHING
"""
_ADVANCE = "UPDATE webhook_cursor SET last_seq = $2 WHERE account_id = $1"


async def fan_out(pool: asyncpg.Pool, batch: int = 500) -> int:
    """One pass over every account with new events; returns the deliveries created."""
    created = 0
    for account in await pool.fetch(_ACCOUNTS):
        while True:
            made, more = await _account_batch(pool, account["account_id"], batch)
            created += made
            if not more:
                break
    return created


async def _account_batch(pool: asyncpg.Pool, account_id: str, batch: int) -> tuple[int, bool]:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_LOCK_CURSOR, account_id)
        cursor = await conn.fetchval(_CURSOR, account_id)
        # The account's seq is read before its endpoints: an endpoint created after this read starts
        # at or after `last`, so the events up to `last` are exactly those of the endpoints read next
        last = await conn.fetchval("SELECT last_seq FROM account_seq WHERE account_id = $1", account_id) or 0
        hooks = await conn.fetch(_HOOKS, account_id)
        if not hooks:  # nobody listens: skip what is there now
            await conn.execute(_ADVANCE, account_id, max(cursor, last))
            return 0, False
        start = max(cursor, min(h["start_seq"] for h in hooks))
        events = await conn.fetch(_EVENTS, account_id, start, last, batch)
        if not events:
            if start > cursor:
                await conn.execute(_ADVANCE, account_id, start)
            return 0, False
        rows: list[tuple[str, str, str, str, int, str]] = []
        for event in events:
            body: str | None = None
            for hook in hooks:
                if event["seq"] <= hook["start_seq"] or event["event"] not in hook["events"]:
                    continue
                body = body or _body(account_id, event)
                rows.append(
                    (
                        f"dl_{uuid.uuid4().hex}",
                        hook["webhook_id"],
                        event["event_id"],
                        event["event"],
                        event["seq"],
                        body,
                    )
                )
        if rows:
            columns = list(zip(*rows, strict=True))
            await conn.execute(_INSERT, account_id, *(list(c) for c in columns))
            await conn.execute("SELECT pg_notify($1, '')", DELIVERIES_CHANNEL)
        await conn.execute(_ADVANCE, account_id, events[-1]["seq"])
    return len(rows), len(events) == batch


def _body(account_id: str, event: Any) -> str:
    return delivery_body(
        event=event["event"],
        event_id=event["event_id"],
        account_id=account_id,
        data=event["data"],
        timestamp=rfc3339(event["created_at"]),
        seq=event["seq"],
    )
