"""Batch orders on the paper broker: the spec's examples, legs strictly in order, rollback by cancel
or square-off, partial success without rollback, validation by leg index, idempotency, and two
batches on one account at once."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import msgspec
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY

from tests.conftest import SPEC_ORDER, eventually, make_client
from tests.integration.test_relay import runtime_of
from tests.integration.test_webhooks import WEBHOOK_ENV, register
from tests.webhook_receiver import Receiver, receivers, start_receiver

__all__ = ["receivers"]  # the fixture

NIFTY_MARKET = SPEC_ORDER
BANKNIFTY_MARKET = NIFTY_MARKET | {"tradingsymbol": "BANKNIFTY25NOVFUT", "quantity": 25}
NIFTY_RESTING = NIFTY_MARKET | {"order_type": "LIMIT", "price": 19000.0}  # far below the market: rests OPEN
INFY_ONE = {
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "transaction_type": "BUY",
    "quantity": 1,
    "product": "CNC",
    "order_type": "MARKET",
}
# NIFTY margin ~146,600 (15 % of 50 x 19,550) and BANKNIFTY ~170,600 (15 % of 25 x 45,500): with
# 200,000 the first fits and the second does not
SMALL = {"primary": {"funds": 200_000}}


async def batch(c: AsyncTestClient[Any], orders: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    r = await c.post("/advanced/batch-orders?wait=10", json={"orders": orders, **extra})
    assert r.status_code == 201, r.text
    body = dict(r.json())
    again = await c.get(f"/advanced/batch-orders/{body['batch_id']}")
    assert again.status_code == 200 and again.json() == body  # the same record at any time
    return body


async def paper(db: asyncpg.Connection, order_id: str) -> asyncpg.Record:
    return await db.fetchrow("SELECT * FROM paper_orders WHERE order_id = $1", order_id)


async def test_spec_example_market_legs(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url) as c:
        body = await batch(c, [NIFTY_MARKET | {"variety": "regular"}, BANKNIFTY_MARKET], account_id="primary")
    assert body["success"] is True and body["status"] == "completed"
    assert (body["total_orders"], body["succeeded"], body["failed"], body["error"]) == (2, 2, 0, None)
    assert body["created_at"].endswith("Z") and body["completed_at"].endswith("Z")
    assert [leg["order_status"] for leg in body["legs"]] == ["COMPLETE", "COMPLETE"]
    for leg in body["legs"]:
        assert (await paper(db, leg["order_id"]))["status"] == "COMPLETE"
    events = await db.fetch("SELECT data FROM outbox_events WHERE event = 'batch_completed'")
    assert [e["data"]["batch_id"] for e in events] == [body["batch_id"]]
    # strictly in order: leg 1 was claimed only after leg 0 was resolved
    seqs = {
        (r["task_id"], r["data"]["status"]): r["seq"]
        for r in await db.fetch("SELECT task_id, seq, data FROM outbox_events WHERE event = 'task_status'")
    }
    leg0, leg1 = (leg["task_id"] for leg in body["legs"])
    assert seqs[(leg0, "completed")] < seqs[(leg1, "pending")] < seqs[(leg1, "running")]


async def test_spec_example_limit_legs_rest_open(database_url: str, db: asyncpg.Connection) -> None:
    legs = [
        NIFTY_MARKET | {"order_type": "LIMIT", "price": 19500.0},
        NIFTY_MARKET | {"transaction_type": "SELL", "order_type": "LIMIT", "price": 19600.0},
    ]
    async with make_client(database_url) as c:
        body = await batch(c, legs, rollback_on_failure=True)
    assert body["success"] is True
    assert [leg["order_status"] for leg in body["legs"]] == ["OPEN", "OPEN"]
    assert [(await paper(db, leg["order_id"]))["status"] for leg in body["legs"]] == ["OPEN", "OPEN"]


async def test_a_refused_second_leg_cancels_an_open_first_and_skips_the_rest(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with make_client(database_url, SMALL) as c:
        body = await batch(c, [NIFTY_RESTING, BANKNIFTY_MARKET, INFY_ONE])
    assert body["success"] is False and body["status"] == "failed"
    assert body["error"].startswith("Order 1 failed: Insufficient funds")
    assert body["error"].endswith("Rolled back 1 orders.")
    assert (body["total_orders"], body["succeeded"], body["failed"]) == (3, 0, 3)
    first, second, third = body["legs"]
    assert first["rollback"]["outcome"] == "cancelled"
    assert (await paper(db, first["order_id"]))["status"] == "CANCELLED"
    assert second["order_status"] == "REJECTED" and "Insufficient funds" in second["error"]
    assert third["status"] == "skipped" and third["order_id"] is None
    assert await db.fetchval("SELECT count(*) FROM paper_orders WHERE tradingsymbol = 'INFY'") == 0  # never sent
    events = await db.fetch("SELECT data FROM outbox_events WHERE event = 'batch_failed'")
    assert [e["data"]["batch_id"] for e in events] == [body["batch_id"]]


async def test_a_filled_first_leg_is_squared_off_or_reported(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url, SMALL) as c:
        squared = await batch(c, [NIFTY_MARKET, BANKNIFTY_MARKET], rollback_mode="square_off")
        assert squared["success"] is False
        assert squared["legs"][0]["rollback"]["outcome"] == "squared_off"
        assert squared["error"].endswith("Rolled back 1 orders.")
        positions = (await c.get("/portfolio/positions")).json()["net"]
        nifty = next(p for p in positions if p["tradingsymbol"] == "NIFTY25NOVFUT")
        assert nifty["quantity"] == 0 and nifty["buy_quantity"] == 50 and nifty["sell_quantity"] == 50

        kept = await batch(c, [NIFTY_MARKET, BANKNIFTY_MARKET], rollback_mode="cancel")
        assert kept["success"] is False
        assert kept["legs"][0]["rollback"]["outcome"] == "not_rolled_back"  # never reported as rolled back
        assert "Rolled back 0 orders." in kept["error"] and "Order 0 not rolled back" in kept["error"]
        assert (kept["succeeded"], kept["failed"]) == (1, 1)
        assert (await paper(db, kept["legs"][0]["order_id"]))["status"] == "COMPLETE"
        positions = (await c.get("/portfolio/positions")).json()["net"]
        nifty = next(p for p in positions if p["tradingsymbol"] == "NIFTY25NOVFUT")
        assert nifty["quantity"] == 50


async def test_without_rollback_partial_success_is_reported_as_it_is(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url, SMALL) as c:
        body = await batch(c, [NIFTY_MARKET, BANKNIFTY_MARKET, INFY_ONE], rollback_on_failure=False)
    assert body["success"] is False and body["status"] == "failed"
    assert (body["succeeded"], body["failed"]) == (2, 1)
    assert [leg["order_status"] for leg in body["legs"]] == ["COMPLETE", "REJECTED", "COMPLETE"]
    assert body["error"].startswith("Order 1 failed: Insufficient funds")
    assert all(leg["rollback"] is None for leg in body["legs"])


async def test_a_bad_leg_is_refused_by_its_index_before_anything_is_written(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with make_client(database_url) as c:
        r = await c.post("/advanced/batch-orders", json={"orders": [NIFTY_MARKET, NIFTY_MARKET | {"quantity": 1}]})
        assert r.status_code == 422
        assert "orders[1].quantity" in r.text and "Order 1" in r.text
        r = await c.post("/advanced/batch-orders", json={"orders": [NIFTY_MARKET | {"order_type": "LIMIT"}]})
        assert r.status_code == 422 and "orders[0].price" in r.text
        r = await c.post("/advanced/batch-orders", json={"orders": [NIFTY_MARKET | {"product": "XYZ"}]})
        assert r.status_code in (400, 422) and "orders[0].product" in r.text
        r = await c.post("/advanced/batch-orders", json={"orders": []})
        assert r.status_code in (400, 422) and "orders" in r.text
        r = await c.post("/advanced/batch-orders", json={"orders": [INFY_ONE] * 21})
        assert r.status_code in (400, 422) and "orders" in r.text
        r = await c.post("/advanced/batch-orders", json={"orders": [INFY_ONE], "rollback_mode": "pray"})
        assert r.status_code in (400, 422) and "rollback_mode" in r.text
        assert (await c.get("/advanced/batch-orders/batch_nope")).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM batches") == 0
    assert await db.fetchval("SELECT count(*) FROM order_tasks") == 0
    assert await db.fetchval("SELECT count(*) FROM paper_orders") == 0


async def test_idempotency_key_never_places_legs_twice(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url) as c:
        body = {"orders": [INFY_ONE, INFY_ONE]}
        headers = {"Idempotency-Key": "batch-key-1"}
        answers = await asyncio.gather(
            *(c.post("/advanced/batch-orders?wait=10", json=body, headers=headers) for _ in range(5))
        )
        assert {a.status_code for a in answers} == {201}
        assert len({a.json()["batch_id"] for a in answers}) == 1
        r = await c.post("/advanced/batch-orders", json={"orders": [INFY_ONE]}, headers=headers)
        assert r.status_code == 409
    assert await db.fetchval("SELECT count(*) FROM paper_orders") == 2


async def test_two_batches_on_one_account_do_not_mix(database_url: str, db: asyncpg.Connection) -> None:
    infy = [INFY_ONE | {"tag": f"a{i}"} for i in range(5)]
    sbin = [INFY_ONE | {"tradingsymbol": "SBIN", "tag": f"b{i}"} for i in range(5)]
    async with make_client(database_url) as c:
        a, b = await asyncio.gather(batch(c, infy), batch(c, sbin))
    assert a["success"] and b["success"]
    for body, symbol, prefix in ((a, "INFY", "a"), (b, "SBIN", "b")):
        rows = [await paper(db, leg["order_id"]) for leg in body["legs"]]
        assert {r["tradingsymbol"] for r in rows} == {symbol}
        # each batch's legs reached the broker in their own order
        assert [r["order_id"] for r in rows] == sorted(r["order_id"] for r in rows)
        tags = await db.fetch(
            "SELECT params->>'tag' AS tag FROM order_tasks WHERE batch_id = $1 ORDER BY batch_index", body["batch_id"]
        )
        assert [t["tag"] for t in tags] == [f"{prefix}{i}" for i in range(5)]


async def test_a_rollback_that_fails_is_reported_and_its_event_reaches_webhooks(
    database_url: str, db: asyncpg.Connection, receivers: list[Receiver]
) -> None:
    """Every broker call takes 200 ms; once the first leg is placed the broker starts failing every
    request before sending: the second leg dead-letters, and so does the cancel that should undo the
    first. The batch says so (never "rolled back") and `batch_rollback_failed` goes out."""
    receiver = await start_receiver(receivers)
    accounts = {"primary": {"funds": 1e9, "latency_ms": 200}}
    async with make_client(database_url, accounts, **WEBHOOK_ENV) as c:
        await register(c, receiver.url, ["batch_rollback_failed", "batch_failed", "batch_completed"])
        r = await c.post("/advanced/batch-orders?wait=0", json={"orders": [NIFTY_RESTING, INFY_ONE]})
        assert r.status_code == 202
        batch_id = r.json()["batch_id"]
        await eventually(lambda: _leg_status(c, batch_id, 0, "completed"), interval=0.01)
        broker = runtime_of(c).brokers["primary"]
        broker.settings = msgspec.structs.replace(broker.settings, fail_rate=1.0)  # type: ignore[attr-defined]
        body = await eventually(lambda: _final(c, batch_id), timeout=30)
        assert body["status"] == "rollback_failed" and body["success"] is False
        assert body["legs"][1]["status"] == "dead_letter"
        assert body["legs"][0]["rollback"]["outcome"] == "failed"
        assert "Rolled back 0 orders." in body["error"] and "Rolling back order 0 failed" in body["error"]
        assert (await paper(db, body["legs"][0]["order_id"]))["status"] == "OPEN"  # really not undone
        await eventually(lambda: receiver.ok_bodies())
        events = [b["event"] for b in receiver.ok_bodies()]
        assert events == ["batch_rollback_failed"]
        assert receiver.ok_bodies()[0]["data"]["batch_id"] == batch_id


async def _leg_status(c: AsyncTestClient[Any], batch_id: str, index: int, status: str) -> bool:
    return bool((await c.get(f"/advanced/batch-orders/{batch_id}")).json()["legs"][index]["status"] == status)


async def _final(c: AsyncTestClient[Any], batch_id: str) -> dict[str, Any] | None:
    body = dict((await c.get(f"/advanced/batch-orders/{batch_id}")).json())
    return body if body["status"] in ("completed", "failed", "rollback_failed") else None


async def test_each_leg_counts_as_a_place_order_request(database_url: str, db: asyncpg.Connection) -> None:
    def placed() -> float:
        labels = {"operation": "place_order", "account": "metered"}
        return REGISTRY.get_sample_value("order_requests_total", labels) or 0.0

    async with make_client(database_url, {"metered": {"broker": "paper"}}) as c:
        before = placed()
        first = await batch(c, [INFY_ONE] * 3, account_id="metered")
        assert first["success"] is True
        assert placed() == before + 3
        headers = {"Idempotency-Key": "metered-1"}
        body = {"orders": [INFY_ONE, INFY_ONE], "account_id": "metered"}
        r = await c.post("/advanced/batch-orders?wait=10", json=body, headers=headers)
        assert r.status_code == 201, r.text
        assert placed() == before + 5
        # an idempotent replay creates nothing, and counts nothing
        again = await c.post("/advanced/batch-orders?wait=10", json=body, headers=headers)
        assert again.status_code == 201 and again.json()["batch_id"] == r.json()["batch_id"]
        assert placed() == before + 5
        # a single order counts once, as before
        assert (await c.post("/orders/place", json=INFY_ONE | {"account_id": "metered"})).status_code == 201
        assert placed() == before + 6
