"""Appending outbox events with a gap-free per-account `seq` in commit order (invariant 4).

The counter row of the account is bumped by the same statement that inserts the events, and that
statement must be the transaction's last: the row lock is then held only until commit, and a later
transaction of the same account cannot take its seq before this one has committed. So `seq` order
is commit order, and a reader that sees seq N knows every seq below N is already visible.

Three statements append events: intake (a task and its first event), the executor's claim (the
`running` event) and every other writer (`append_events`, the finish among them). All three are
built by `append_ctes`, so the seq arithmetic exists once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

import asyncpg
import msgspec

from ticker_service.outbox.channels import EVENTS_CHANNEL, TASK_DONE_CHANNEL, notify_sql
from ticker_service.outbox.event import NewEvent


def append_ctes(
    *,
    account: str,
    count: str,
    source: str,
    i: str,
    event_id: str,
    event: str,
    task_id: str,
    order_id: str,
    data: str,
    gate: str | None = None,
) -> str:
    """Common table expressions that append `count` events of one account to the outbox.

    Every argument is SQL. `source` is a FROM item whose rows are the events, described by the
    column expressions (`i` numbers them 1..count in seq order). With `gate` (a data-modifying CTE
    before these, such as the task row just written), nothing is appended, and the counter is not
    touched, when the gate has no row. Defines `events_seq` and `events_out` (RETURNING account_id,
    seq); follow with `appended_notify()`.
    """
    return f"""events_seq AS (
    INSERT INTO account_seq AS a (account_id, last_seq)
    SELECT {account}, {count}{f" FROM {gate}" if gate else ""}
    ON CONFLICT (account_id) DO UPDATE SET last_seq = a.last_seq + {count}
    RETURNING account_id, last_seq
), events_out AS (
    INSERT INTO outbox_events (event_id, account_id, seq, event, task_id, order_id, data)
    SELECT {event_id}, q.account_id, q.last_seq - {count} + {i}, {event}, {task_id}, {order_id}, {data}
    FROM {source} CROSS JOIN events_seq AS q
    RETURNING account_id, seq
)"""


def appended_notify() -> str:
    """A scalar SQL expression: NOTIFY `account:last seq` of what was appended (NULL if nothing)."""
    payload = "account_id || ':' || max(seq)"
    return f"(SELECT {notify_sql(EVENTS_CHANNEL, payload)} FROM events_out GROUP BY account_id)"


# A list of events ($3, JSON) for one account ($1), $2 of them
APPEND = f"""
WITH {
    append_ctes(
        account="$1::text",
        count="$2::int",
        source="jsonb_to_recordset($3::text::jsonb) "
        "AS e(i int, event_id text, event text, task_id text, order_id text, data jsonb)",
        i="e.i",
        event_id="e.event_id",
        event="e.event",
        task_id="e.task_id",
        order_id="e.order_id",
        data="e.data",
    )
}
SELECT (SELECT max(seq) FROM events_out) AS last, {appended_notify()} AS notified
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
    last: int | None = await conn.fetchval(APPEND, account_id, len(events), encode_events(events))
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
    statement = _PLACEHOLDER.sub(lambda m: values[m.group(1)], APPEND)  # one pass: inserted text is not rescanned
    await conn.execute(statement + ";\nCOMMIT")


_TASK_DONE = f"SELECT {notify_sql(TASK_DONE_CHANNEL, '$1')}"


async def notify_task_done(conn: asyncpg.Connection, task_id: str) -> None:
    await conn.execute(_TASK_DONE, task_id)
