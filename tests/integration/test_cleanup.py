"""The clean-up job: old finished work goes, anything unresolved or still referenced stays."""

from __future__ import annotations

import asyncpg

from tests.conftest import SPEC_ORDER, make_client
from tests.integration.test_batches import INFY_ONE as INFY
from ticker_service.db.engine import create_engine
from ticker_service.jobs.maintenance import cleanup


async def test_cleanup_deletes_old_finished_work_and_keeps_the_rest(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url, {"primary": {"funds": 10_000}}) as c:
        done = (await c.post("/orders/place", json=INFY)).json()["task_id"]  # fills
        refused = (await c.post("/orders/place", json=SPEC_ORDER)).json()["task_id"]  # insufficient funds
        batch = (await c.post("/advanced/batch-orders?wait=10", json={"orders": [INFY, INFY]})).json()["batch_id"]
        fresh = (await c.post("/orders/place", json=INFY)).json()["task_id"]
    old = "now() - interval '10 days'"
    await db.execute(f"UPDATE order_tasks SET updated_at = {old} WHERE task_id <> $1", fresh)
    await db.execute(f"UPDATE outbox_events SET created_at = {old} WHERE task_id IS DISTINCT FROM $1", fresh)
    await db.execute(f"UPDATE orders SET updated_at = {old}")
    await db.execute(
        "INSERT INTO order_tasks (task_id, idempotency_key, request_hash, operation, params, status, "
        "account_id, broker_tag, expires_in, deadline_at, updated_at) VALUES ('task_dead', 'k', '', "
        f"'place_order', '{{}}', 'dead_letter', 'primary', 'TSDEAD', 30, now(), {old})"
    )
    # the batch is final but recent: its legs stay with it
    engine = create_engine(database_url)
    try:
        first = await cleanup(engine, retention_days=7)
        assert await db.fetchval("SELECT count(*) FROM order_tasks WHERE batch_id = $1", batch) == 2
        assert await db.fetchval("SELECT count(*) FROM batches") == 1
        await db.execute(f"UPDATE batches SET completed_at = {old}")
        second = await cleanup(engine, retention_days=7)
    finally:
        await engine.dispose()
    remaining = {r["task_id"] for r in await db.fetch("SELECT task_id FROM order_tasks")}
    assert remaining == {fresh, "task_dead"}  # unresolved work (a dead letter) is never deleted
    assert done not in remaining and refused not in remaining
    assert await db.fetchval("SELECT count(*) FROM batches") == 0
    assert first["tasks"] >= 2 and second["tasks"] == 2 and second["batches"] == 1
    assert await db.fetchval("SELECT count(*) FROM outbox_events WHERE task_id IS DISTINCT FROM $1", fresh) == 0
    assert await db.fetchval("SELECT count(*) FROM outbox_events WHERE task_id = $1", fresh) > 0
