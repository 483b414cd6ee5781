"""The executor with the scripted broker, on real PostgreSQL: the seam every broker plugs into.

The executor takes its brokers as a function of the account, so a test broker needs no registry
entry, no settings and no HTTP: intake, claim, call, finish, reconciliation and hooks run for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import asyncpg
import pytest

from tests.conftest import eventually, make_settings
from tests.scripted_broker import ScriptedBroker
from ticker_service.db.engine import asyncpg_dsn
from ticker_service.db.pool import create_pool
from ticker_service.orders.lifecycle.executor import Executor
from ticker_service.orders.lifecycle.tasks import submit_task
from ticker_service.outbox.event import NewEvent

PARAMS = {
    "exchange": "NFO",
    "tradingsymbol": "NIFTY25NOVFUT",
    "transaction_type": "BUY",
    "quantity": 50,
    "product": "NRML",
    "order_type": "MARKET",
    "tag": "mine",
}


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    made = await create_pool(asyncpg_dsn(database_url), 4)
    yield made
    await made.close()


async def place(pool: asyncpg.Pool) -> str:
    task, created = await submit_task(
        pool,
        account_id="primary",
        operation="place_order",
        params=PARAMS,
        idempotency_key=None,
        expires_in=60,
        max_attempts=5,
    )
    assert created
    return str(task["task_id"])


async def completed(db: asyncpg.Connection, task_id: str) -> bool:
    return bool(await db.fetchval("SELECT status = 'completed' FROM order_tasks WHERE task_id = $1", task_id))


async def statuses(db: asyncpg.Connection, task_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT event, data->>'status' AS status FROM outbox_events WHERE task_id = $1 ORDER BY seq", task_id
    )
    return [r["status"] if r["event"] == "task_status" else r["event"] for r in rows]


async def test_a_lost_answer_is_reconciled_by_tag_and_placed_once(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    broker = ScriptedBroker(account_id="primary").then("lose_answer")
    executor = Executor(pool, lambda _account: broker, make_settings(TICKER_RELAY_WORKERS="1"))
    task_id = await place(pool)
    await executor.start()
    try:
        await eventually(lambda: completed(db, task_id))
    finally:
        await executor.stop()
    assert broker.calls == ["place"] and len(broker.book) == 1
    expected = ["pending", "running", "unknown", "completed", "order_placed", "order_completed"]
    assert await statuses(db, task_id) == expected
    order = await db.fetchrow("SELECT task_id, client_tag, status FROM orders")
    assert dict(order) == {"task_id": task_id, "client_tag": "mine", "status": "COMPLETE"}


async def test_refused_before_sending_is_retried_then_placed(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    broker = ScriptedBroker(account_id="primary").then("unavailable").then("unavailable").then("fill")
    executor = Executor(pool, lambda _account: broker, make_settings(TICKER_RELAY_WORKERS="2"))
    task_id = await place(pool)
    await executor.start()
    try:
        await eventually(lambda: completed(db, task_id))
    finally:
        await executor.stop()
    assert broker.calls == ["place"] * 3 and len(broker.book) == 1
    assert (await statuses(db, task_id))[:6] == ["pending", "running", "retrying", "running", "retrying", "running"]


class BlockingHook:
    """A finish hook that holds the finish transaction open until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    def concerns(self, task: Mapping[str, Any]) -> bool:
        return True

    async def on_task_final(
        self,
        conn: asyncpg.Connection,
        task: Mapping[str, Any],
        status: str,
        result: Mapping[str, Any] | None,
        error: str | None,
    ) -> list[NewEvent]:
        self.entered.set()
        await self.release.wait()
        return []


async def test_a_cancelled_worker_still_records_the_brokers_answer(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    """Shutdown cancels workers; one that already has the broker's answer must not throw it away."""
    broker = ScriptedBroker(account_id="primary").then("fill")
    hook = BlockingHook()
    executor = Executor(pool, lambda _account: broker, make_settings(TICKER_RELAY_WORKERS="1"), hooks=[hook])
    task_id = await place(pool)
    await executor.start()
    await asyncio.wait_for(hook.entered.wait(), 10)  # the broker answered; the finish is under way
    workers = list(executor._workers)
    for worker in workers:
        worker.cancel()
    asyncio.get_running_loop().call_later(0.2, hook.release.set)
    await asyncio.gather(*workers, return_exceptions=True)
    assert all(w.cancelled() for w in workers)
    row = await db.fetchrow("SELECT status, order_id, lease_owner FROM order_tasks WHERE task_id = $1", task_id)
    assert (row["status"], row["lease_owner"]) == ("completed", None) and row["order_id"] in broker.book
    assert await statuses(db, task_id) == ["pending", "running", "completed", "order_placed", "order_completed"]
    await executor.stop()


async def test_idle_workers_leave_the_polling_to_one_and_a_task_nobody_announced_is_still_taken(
    pool: asyncpg.Pool, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight idle workers used to poll eight times per interval; one holds the poll now. A task written
    with no notification (another instance's, its NOTIFY lost) is found by that poll."""
    from ticker_service.orders.lifecycle import executor as executor_module

    claims = 0
    real_claim = executor_module.claim

    async def counting_claim(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(executor_module, "claim", counting_claim)
    broker = ScriptedBroker(account_id="primary").then("fill")
    settings = make_settings(TICKER_RELAY_WORKERS="8", TICKER_POLL_INTERVAL="0.1")
    executor = Executor(pool, lambda _account: broker, settings)
    await executor.start()
    try:
        await asyncio.sleep(0.3)  # every worker has looked once and gone idle
        loop = asyncio.get_running_loop()
        before, started = claims, loop.time()
        await asyncio.sleep(2.0)
        intervals = (loop.time() - started) / settings.execution.poll_interval
        polls = claims - before
        assert polls <= 1.5 * intervals + 2, (polls, intervals)  # eight pollers would make about 8 x intervals
        assert polls >= 0.5 * intervals, (polls, intervals)  # and someone does poll

        task_id = await place(pool)  # no notify(): only a poll can find it
        await eventually(lambda: completed(db, task_id))
    finally:
        await executor.stop()
    assert broker.calls == ["place"]
