"""Appending outbox events with a gap-free per-account `seq` in commit order (invariant 4).

The counter row of the account is bumped by the same statement that inserts the events, and that
statement must be the transaction's last: the row lock is then held only until commit, and a later
transaction of the same account cannot take its seq before this one has committed. So `seq` order
is commit order, and a reader that sees seq N knows every seq below N is already visible.

Three statements append events: intake (a task and its first event), the executor's claim (the
`running` event) and every other writer (`append_events`, the finish among them). All three are
built here (`append_one_ctes` for the two single-event hot statements, `append_ctes` for lists),
so the seq arithmetic lives in this module only.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

import asyncpg
import msgspec

from ticker_service.outbox.channels import EVENTS_CHANNEL, TASK_DONE_CHANNEL, notify_sql
from ticker_service.outbox.event import NewEvent

# The columns a source of events must yield, in this order, for `append_ctes`.
SOURCE_COLUMNS = ("i", "account_id", "event_id", "event", "task_id", "order_id", "data")


def append_ctes(source: str) -> str:
    """Common table expressions that append the rows of `source` to the outbox.

    `source` is a SELECT yielding `SOURCE_COLUMNS` for ONE account, `i` numbering its rows 1..n in
    the order they get their seqs. An empty source writes nothing and leaves the counter alone.
    Defines `events_seq` and `events_out` (RETURNING account_id, seq); follow with
    `appended_notify()`.
    """
    return f"""events_src AS (
    {source}
), events_seq AS (
    INSERT INTO account_seq AS a (account_id, last_seq)
    SELECT account_id, count(*) FROM events_src GROUP BY account_id
    ON CONFLICT (account_id) DO UPDATE SET last_seq = a.last_seq + EXCLUDED.last_seq
    RETURNING account_id, last_seq
), events_out AS (
    INSERT INTO outbox_events (event_id, account_id, seq, event, task_id, order_id, data)
    SELECT src.event_id, src.account_id, q.last_seq - n.total + src.i, src.event, src.task_id, src.order_id, src.data
    FROM events_src AS src
    JOIN events_seq AS q ON q.account_id = src.account_id
    CROSS JOIN (SELECT count(*) AS total FROM events_src) AS n
    RETURNING account_id, seq
)"""


def append_one_ctes(
    *, row: str, account: str, event_id: str, event: str, task_id: str, order_id: str, data: str
) -> str:
    """The same for at most one event, about the task row `row` (a data-modifying CTE before it).

    The hot statements (intake, claim) append one event each; this form skips the counting of the
    general one, which cost about a tenth of the statement's server time. The values are SQL
    expressions over `row`; no row, no event and no seq.
    """
    return f"""events_seq AS (
    INSERT INTO account_seq AS a (account_id, last_seq)
    SELECT {account}, 1 FROM {row}
    ON CONFLICT (account_id) DO UPDATE SET last_seq = a.last_seq + 1
    RETURNING account_id, last_seq
), events_out AS (
    INSERT INTO outbox_events (event_id, account_id, seq, event, task_id, order_id, data)
    SELECT {event_id}, q.account_id, q.last_seq, {event}, {task_id}, {order_id}, {data}
    FROM {row} CROSS JOIN events_seq AS q
    RETURNING account_id, seq
)"""


def appended_notify(*, one: bool = False) -> str:
    """A scalar SQL expression: NOTIFY `account:last seq` of what was appended (NULL if nothing);
    `one` after `append_one_ctes`."""
    if one:
        single = "account_id || ':' || seq"
        return f"(SELECT {notify_sql(EVENTS_CHANNEL, single)} FROM events_out)"
    payload = "account_id || ':' || max(seq)"
    return f"(SELECT {notify_sql(EVENTS_CHANNEL, payload)} FROM events_out GROUP BY account_id)"


# A list of events as one JSON parameter ($2), for one account ($1)
_RECORDSET = (
    "SELECT r.i, $1::text AS account_id, r.event_id, r.event, r.task_id, r.order_id, r.data "
    "FROM jsonb_to_recordset($2::text::jsonb) "
    "AS r(i int, event_id text, event text, task_id text, order_id text, data jsonb)"
)
APPEND = f"""
WITH {append_ctes(_RECORDSET)}
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
    last: int | None = await conn.fetchval(APPEND, account_id, encode_events(events))
    return last


_PLACEHOLDER = re.compile(r"\$([12])\b")


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
    the account id and the events JSON are dollar-quoted.
    """
    if not events:
        await conn.execute("COMMIT")
        return
    values = {"1": _literal(account_id), "2": _literal(encode_events(events))}
    statement = _PLACEHOLDER.sub(lambda m: values[m.group(1)], APPEND)  # one pass: inserted text is not rescanned
    await conn.execute(statement + ";\nCOMMIT")


_TASK_DONE = f"SELECT {notify_sql(TASK_DONE_CHANNEL, '$1')}"


async def notify_task_done(conn: asyncpg.Connection, task_id: str) -> None:
    await conn.execute(_TASK_DONE, task_id)
