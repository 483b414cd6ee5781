"""Reconciliation leaves out of the broker's book the orders final in the mirror (they cannot change;
a day's book of thousands need not be mapped at every pass), and still records what did change."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.scripted_broker import ScriptedBroker
from ticker_service.brokers.base import BrokerOrder
from ticker_service.db.engine import asyncpg_dsn
from ticker_service.db.pool import create_pool
from ticker_service.jobs.maintenance import reconcile_orders
from ticker_service.orders.mirror import record_orders

ACCOUNT = "scripted"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(asyncpg_dsn(database_url), 2)
    yield p
    await p.close()


def order(order_id: str, status: str, filled: int = 0) -> BrokerOrder:
    return BrokerOrder(
        order_id=order_id,
        status=status,
        exchange="NSE",
        tradingsymbol="INFY",
        transaction_type="BUY",
        product="CNC",
        order_type="LIMIT",
        quantity=10,
        filled_quantity=filled,
        price=1500.0,
    )


async def test_final_orders_are_left_out_and_changes_are_still_recorded(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    await record_orders(pool, ACCOUNT, [order("DONE1", "COMPLETE", 10), order("OPEN1", "OPEN")])
    broker = ScriptedBroker(account_id=ACCOUNT)
    # the book: the finished order, the open one now filled, and one the mirror never saw
    for o in (order("DONE1", "COMPLETE", 10), order("OPEN1", "COMPLETE", 10), order("NEW1", "OPEN")):
        broker.book[o.order_id] = o
    written = await reconcile_orders(pool, {ACCOUNT: broker})
    assert broker.skipped == [{"DONE1"}]
    statuses = dict(await db.fetch("SELECT order_id, status FROM orders WHERE account_id = $1", ACCOUNT))
    assert statuses == {"DONE1": "COMPLETE", "OPEN1": "COMPLETE", "NEW1": "OPEN"}
    assert written >= 2
    assert await reconcile_orders(pool, {ACCOUNT: broker}) == 0  # nothing changed since
    assert broker.skipped[-1] == {"DONE1", "OPEN1"}
