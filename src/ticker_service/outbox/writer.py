"""Appending outbox events with a gap-free per-account `seq` in commit order (invariant 4).

The counter row of the account is bumped by the same statement that inserts the events, and that
statement must be the transaction's last: the row lock is then held only until commit, and a later
transaction of the same account cannot take its seq before this one has committed. So `seq` order
is commit order, and a reader that sees seq N knows every seq below N is already visible.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

import asyncpg
import msgspec

from ticker_service.outbox.events import NewEvent

EVENTS_CHANNEL = "ticker_events"
TASKS_CHANNEL = "ticker_tasks"
TASK_DONE_CHANNEL = "ticker_task_done"

_APPEND = """
WITH s AS (
    INSERT INTO account_seq AS a (account_id, last_seq) VALUES ($1, $2)
    ON CONFLICT (account_id) DO UPDATE SET last_seq = a.last_seq + $2
    RETURNING last_seq
), ins AS (
    INSERT INTO outbox_events (event_id, account_id, seq, event, task_id, order_id, data)
    SELECT e.event_id, $1, s.last_seq - $2 + e.i, e.event, e.task_id, e.order_id, e.data
    FROM s CROSS JOIN jsonb_to_recordset($3::text::jsonb)
        AS e(i int, event_id text, event text, task_id text, order_id text, data jsonb)
    RETURNING seq
)
SELECT max(seq) AS last, pg_notify('ticker_events', $1 || ':' || max(seq)) FROM ins
"""

_encoder = msgspec.json.Encoder()


def encode_events(events: Sequence[NewEvent]) -> str:
    return _encoder.encode(
        [
            {
                "i": i,
                "event_id": e.event_id,
                "event": e.event,
                "task_id": e.task_id,
                "order_id": e.order_id,
                "data": e.data,
            }
            for i, e in enumerate(events, start=1)
        ]
    ).decode()


async def append_events(conn: asyncpg.Connection, account_id: str, events: Sequence[NewEvent]) -> int | None:
    """Append `events` for one account; call it as the last statement before commit.

    Returns the highest seq assigned (None when there was nothing to append).
    """
    if not events:
        return None
    last: int | None = await conn.fetchval(_APPEND, account_id, len(events), encode_events(events))
    return last


_PLACEHOLDER = re.compile(r"\$([123])\b")


def _literal(text: str) -> str:
    """A dollar-quoted SQL literal whose tag does not occur in `text` (so nothing in it is special)."""
    while True:
        tag = f"$e{secrets.token_hex(4)}$"
        if tag not in text:
            return f"{tag}{text}{tag}"


async def append_events_and_commit(conn: asyncpg.Connection, account_id: str, events: Sequence[NewEvent]) -> None:
    """Append `events` and COMMIT in one round trip, in a transaction begun with a plain `BEGIN`.

    The seq counter row stays locked from the append until the commit; sent as one simple-query
    message, the lock is released as soon as the server has committed instead of waiting for this
    process to get back to the connection and send COMMIT, which under load is the event loop's
    whole queue. The values are inlined as literals (the simple-query protocol takes no parameters):
    the count is an int, the account id and the events JSON are dollar-quoted.
    """
    if not events:
        await conn.execute("COMMIT")
        return
    values = {"1": _literal(account_id), "2": str(len(events)), "3": _literal(encode_events(events))}
    statement = _PLACEHOLDER.sub(lambda m: values[m.group(1)], _APPEND)  # one pass: inserted text is not rescanned
    await conn.execute(statement + ";\nCOMMIT")


async def notify_task_done(conn: asyncpg.Connection, task_id: str) -> None:
    await conn.execute("SELECT pg_notify('ticker_task_done', $1)", task_id)
