"""The outbox writer's one-round-trip append-and-commit inlines its values as SQL literals: whatever
the events hold must arrive exactly, committed, with the account's next seqs."""

from __future__ import annotations

import asyncpg

from tests.conftest import _asyncpg_dsn
from ticker_service.db.pool import create_pool
from ticker_service.outbox.event import new_event
from ticker_service.outbox.writer import append_events, append_events_and_commit

NASTY = [
    "it's a 'quote'",
    "$1 $2 $3 $3::text::jsonb",
    "$e0011aabb$ a dollar tag $$ and $$",
    "back\\slash \\' \\\\ and \\n",
    "'); DROP TABLE outbox_events; --",
    "unicode ₹ 🚀 \u2028",
]


async def test_append_and_commit_stores_exactly_what_it_was_given(database_url: str) -> None:
    pool = await create_pool(_asyncpg_dsn(database_url), 2)
    try:
        async with pool.acquire() as conn:
            async with conn.transaction():
                await append_events(conn, "2nd-acct", [new_event("task_status", {"n": 0}, task_id=None, order_id=None)])
            events = [
                new_event("task_status", {"text": t, "i": i}, task_id=t, order_id=None) for i, t in enumerate(NASTY)
            ]
            await conn.execute("BEGIN")
            await append_events_and_commit(conn, "2nd-acct", events)
            assert not conn.is_in_transaction()  # committed in the same round trip
            rows = await conn.fetch(
                "SELECT seq, event_id, task_id, data FROM outbox_events WHERE account_id = '2nd-acct' ORDER BY seq"
            )
            assert [r["seq"] for r in rows] == list(range(1, len(NASTY) + 2))
            assert [r["event_id"] for r in rows[1:]] == [e.event_id for e in events]
            assert [r["task_id"] for r in rows[1:]] == NASTY
            assert [r["data"]["text"] for r in rows[1:]] == NASTY
            assert await conn.fetchval("SELECT last_seq FROM account_seq WHERE account_id = '2nd-acct'") == 7
            assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 'outbox_events'") == 1
    finally:
        await pool.close()


async def test_a_failing_append_commits_nothing(database_url: str, db: asyncpg.Connection) -> None:
    pool = await create_pool(_asyncpg_dsn(database_url), 1)
    try:
        async with pool.acquire() as conn:
            event = new_event("task_status", {}, task_id=None, order_id=None)
            async with conn.transaction():
                await append_events(conn, "acct", [event])
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO account_seq (account_id, last_seq) VALUES ('other', 5)")
            try:
                await append_events_and_commit(conn, "acct", [event])  # the same event_id: unique violation
            except asyncpg.UniqueViolationError:
                pass
            else:
                raise AssertionError("the duplicate event id should have failed")
            assert conn.is_in_transaction()  # aborted, not committed: the caller rolls back
            await conn.execute("ROLLBACK")
    finally:
        await pool.close()
    assert await db.fetchval("SELECT count(*) FROM account_seq WHERE account_id = 'other'") == 0
    assert await db.fetchval("SELECT last_seq FROM account_seq WHERE account_id = 'acct'") == 1
