"""Relay behaviour: retries, dead letters, lost answers, deadlines and the ordering of seq."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import msgspec
from litestar.testing import AsyncTestClient

from tests.conftest import SPEC_ORDER, eventually, make_client
from ticker_service.runtime import Runtime


def runtime_of(client: AsyncTestClient[Any]) -> Runtime:
    runtime: Runtime = client.app.state.runtime
    return runtime


async def task_events(db: asyncpg.Connection, task_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT data FROM outbox_events WHERE task_id = $1 AND event = 'task_status' ORDER BY seq", task_id
    )
    return [r["data"] for r in rows]


async def test_failures_before_sending_retry_with_backoff_then_dead_letter_and_requeue(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with make_client(database_url, {"primary": {}, "flaky": {"broker": "paper", "fail_rate": 1.0}}) as c:
        r = await c.post("/orders/place?wait=0", json=SPEC_ORDER | {"account_id": "flaky"})
        assert r.status_code == 202
        task_id = r.json()["task_id"]

        task = await eventually(
            lambda: db.fetchrow("SELECT * FROM order_tasks WHERE task_id = $1 AND status = 'dead_letter'", task_id)
        )
        assert task["attempts"] == 5
        assert "never sent" in task["last_error"]
        statuses = [e["status"] for e in await task_events(db, task_id)]
        assert statuses == ["pending"] + ["running", "retrying"] * 4 + ["running", "dead_letter"]
        delays = [e["retry_in"] for e in await task_events(db, task_id) if e["status"] == "retrying"]
        # exponential backoff from the base (0.05 s here) with 50-150 % jitter: each step grows on average
        assert all(0.025 * 2**i <= d <= 0.075 * 2**i for i, d in enumerate(delays)), delays
        failed = await db.fetchval(
            "SELECT count(*) FROM outbox_events WHERE task_id = $1 AND event = 'order_failed'", task_id
        )
        assert failed == 1
        assert await db.fetchval("SELECT count(*) FROM paper_orders") == 0
        r = await c.get(f"/tasks/{task_id}")
        assert r.json()["status"] == "dead_letter"

        # only dead letters can be retried
        ok = await c.post("/orders/place", json=SPEC_ORDER)
        assert (await c.post(f"/tasks/{ok.json()['task_id']}/retry")).status_code == 409

        # the broker recovers; an operator requeues the dead letter and it completes
        broker = runtime_of(c).brokers["flaky"]
        broker.settings = msgspec.structs.replace(broker.settings, fail_rate=0.0)  # type: ignore[attr-defined]
        r = await c.post(f"/tasks/{task_id}/retry")
        assert r.status_code == 202, r.text
        assert r.json()["status"] in ("pending", "running", "completed")
        done = await eventually(
            lambda: db.fetchrow("SELECT * FROM order_tasks WHERE task_id = $1 AND status = 'completed'", task_id)
        )
        assert done["attempts"] == 1 and done["order_id"]
        assert await db.fetchval("SELECT count(*) FROM paper_orders WHERE tag = $1", done["broker_tag"]) == 1


async def test_lost_answers_are_reconciled_by_tag_never_placed_twice(database_url: str, db: asyncpg.Connection) -> None:
    accounts = {"lossy": {"broker": "paper", "lose_response_rate": 1.0}}
    async with make_client(database_url, accounts) as c:
        answers = await asyncio.gather(
            *(c.post("/orders/place?wait=0", json=SPEC_ORDER | {"account_id": "lossy"}) for _ in range(5))
        )
        ids = [a.json()["task_id"] for a in answers]
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) = 5 FROM order_tasks WHERE status = 'completed' AND task_id = ANY($1)", ids
            ),
            timeout=30,
        )
        for task_id in ids:
            statuses = [e["status"] for e in await task_events(db, task_id)]
            assert statuses == ["pending", "running", "unknown", "completed"]
        # one paper order per task tag: the unknown outcome was never resent
        per_tag = await db.fetch(
            "SELECT t.task_id, count(p.order_id) AS n FROM order_tasks t "
            "LEFT JOIN paper_orders p ON p.tag = t.broker_tag GROUP BY t.task_id"
        )
        assert {r["n"] for r in per_tag} == {1}
        placed = await db.fetchval("SELECT count(*) FROM outbox_events WHERE event = 'order_placed'")
        assert placed == 5


async def test_unknown_outcome_not_in_the_book_is_resent_after_the_grace_period(
    database_url: str, db: asyncpg.Connection
) -> None:
    """A call that timed out before reaching the paper book: reconciliation finds no order, resends."""
    async with make_client(database_url, {"slow": {"broker": "paper", "latency_ms": 1500}}) as c:
        runtime = runtime_of(c)
        r = await c.post("/orders/place?wait=0", json=SPEC_ORDER | {"account_id": "slow", "expires_in": 60})
        task_id = r.json()["task_id"]
        # the 1.5 s latency beats the 1 s broker timeout: ambiguous, although nothing reached the book
        await eventually(lambda: db.fetchval("SELECT status = 'unknown' FROM order_tasks WHERE task_id = $1", task_id))
        broker = runtime.brokers["slow"]
        broker.settings = msgspec.structs.replace(broker.settings, latency_ms=0)  # type: ignore[attr-defined]
        await eventually(
            lambda: db.fetchval("SELECT status = 'completed' FROM order_tasks WHERE task_id = $1", task_id), timeout=30
        )
        statuses = [e["status"] for e in await task_events(db, task_id)]
        assert statuses[:3] == ["pending", "running", "unknown"]
        assert statuses[-1] == "completed" and "retrying" in statuses
        tag = await db.fetchval("SELECT broker_tag FROM order_tasks WHERE task_id = $1", task_id)
        # the abandoned first call never reached the book (the paper broker's latency comes first),
        # so reconciliation proved it unplaced and the resend made the one and only order
        assert await db.fetchval("SELECT count(*) FROM paper_orders WHERE tag = $1", tag) == 1


async def test_a_task_past_its_deadline_fails_instead_of_reaching_the_market(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with make_client(
        database_url,
        {"down": {"broker": "paper", "fail_rate": 1.0}},
        TICKER_RETRY_BASE_SECONDS="0.6",
        TICKER_MAX_ATTEMPTS="50",
    ) as c:
        r = await c.post("/orders/place?wait=0", json=SPEC_ORDER | {"account_id": "down", "expires_in": 1.5})
        task_id = r.json()["task_id"]
        task = await eventually(
            lambda: db.fetchrow("SELECT * FROM order_tasks WHERE task_id = $1 AND status = 'failed'", task_id)
        )
        assert "deadline" in task["last_error"]
        assert task["attempts"] < 50
        events = await db.fetch(
            "SELECT event FROM outbox_events WHERE task_id = $1 AND event = 'order_failed'", task_id
        )
        assert len(events) == 1
        assert await db.fetchval("SELECT count(*) FROM paper_orders") == 0


async def test_seq_has_no_gaps_and_follows_commit_order(database_url: str, db: asyncpg.Connection) -> None:
    """Concurrent writers on two accounts; a tailer reading by seq must never see a hole fill in later."""
    # funds for all 60 orders of each account: each is accepted (and announced as placed)
    accounts = {"a": {"broker": "paper", "funds": 1e10}, "b": {"broker": "paper", "funds": 1e10}}
    stop = asyncio.Event()
    seen: dict[str, list[int]] = {"a": [], "b": []}
    violations: list[str] = []

    async def tail(account: str) -> None:
        conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        last = 0
        try:
            while not stop.is_set() or last < await conn.fetchval(
                "SELECT coalesce(max(seq), 0) FROM outbox_events WHERE account_id = $1", account
            ):
                rows = await conn.fetch(
                    "SELECT seq FROM outbox_events WHERE account_id = $1 AND seq > $2 ORDER BY seq", account, last
                )
                for row in rows:
                    if row["seq"] != last + 1:
                        violations.append(f"{account}: saw {row['seq']} after {last}")
                    last = row["seq"]
                    seen[account].append(last)
                await asyncio.sleep(0.001)
        finally:
            await conn.close()

    async with make_client(database_url, accounts, TICKER_RELAY_WORKERS="8") as c:
        tailers = [asyncio.create_task(tail("a")), asyncio.create_task(tail("b"))]
        bodies = [SPEC_ORDER | {"account_id": "ab"[i % 2]} for i in range(120)]
        answers = await asyncio.gather(*(c.post("/orders/place?wait=0", json=b) for b in bodies))
        assert {a.status_code for a in answers} == {202}
        await eventually(
            lambda: db.fetchval("SELECT count(*) = 120 FROM order_tasks WHERE status = 'completed'"), timeout=60
        )
        stop.set()
        await asyncio.gather(*tailers)
    assert not violations, violations[:5]
    for account in "ab":
        seqs = [
            r["seq"]
            for r in await db.fetch("SELECT seq FROM outbox_events WHERE account_id = $1 ORDER BY seq", account)
        ]
        assert seqs == list(range(1, len(seqs) + 1))
        assert seen[account] == seqs
        # 60 orders, each: pending, running, completed, order_placed, order_completed
        assert len(seqs) == 60 * 5
