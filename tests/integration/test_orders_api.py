"""The orders API against the paper broker, on a real PostgreSQL, through the real app."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import SPEC_ORDER, eventually, make_client


async def test_spec_order_fills_and_shows_in_positions(client: AsyncTestClient[Any]) -> None:
    r = await client.post("/orders/place", json=SPEC_ORDER)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "completed"
    assert body["order_id"] and body["task_id"].startswith("task_")
    order_id = body["order_id"]

    r = await client.get(f"/orders/{order_id}")
    assert r.status_code == 200
    order = r.json()
    assert order["status"] == "COMPLETE"
    assert order["filled_quantity"] == 50
    assert 19_500 < order["average_price"] < 19_600
    assert order["task_id"] == body["task_id"]

    r = await client.get("/portfolio/positions")
    assert r.status_code == 200
    positions = r.json()
    assert set(positions) == {"net", "day"}
    (net,) = [p for p in positions["net"] if p["tradingsymbol"] == "NIFTY25NOVFUT"]
    assert net["quantity"] == 50 and net["product"] == "NRML" and net["exchange"] == "NFO"
    assert net["average_price"] == pytest.approx(order["average_price"])
    assert net["buy_quantity"] == 50 and net["sell_quantity"] == 0
    assert [p["quantity"] for p in positions["day"] if p["tradingsymbol"] == "NIFTY25NOVFUT"] == [50]


async def test_order_events_are_recorded_in_order(client: AsyncTestClient[Any], db: asyncpg.Connection) -> None:
    r = await client.post("/orders/place", json=SPEC_ORDER | {"tag": "mine"})
    assert r.status_code == 201
    task_id = r.json()["task_id"]
    rows = await db.fetch("SELECT seq, event, data FROM outbox_events WHERE task_id = $1 ORDER BY seq", task_id)
    events = [(row["event"], row["data"].get("status")) for row in rows]
    assert events == [
        ("task_status", "pending"),
        ("task_status", "running"),
        ("task_status", "completed"),
        ("order_placed", "COMPLETE"),
        ("order_completed", "COMPLETE"),
    ]
    completed = rows[-1]["data"]
    assert completed["tag"] == "mine"  # the client's tag comes back ...
    assert completed["broker_tag"].startswith("TS") and len(completed["broker_tag"]) <= 20  # ... the broker's too
    assert completed["filled_quantity"] == 50 and completed["average_price"] > 0


async def test_limit_rests_then_modify_then_cancel(client: AsyncTestClient[Any], db: asyncpg.Connection) -> None:
    far = SPEC_ORDER | {"order_type": "LIMIT", "price": 18000.0}
    r = await client.post("/orders/place", json=far)
    assert r.status_code == 201, r.text
    order_id = r.json()["order_id"]
    assert r.json()["order"]["status"] == "OPEN"

    r = await client.put(f"/orders/{order_id}", json={"price": 18100.5})
    assert r.status_code == 200, r.text
    assert r.json()["operation"] == "modify_order" and r.json()["status"] == "completed"
    r = await client.get(f"/orders/{order_id}")
    assert r.json()["price"] == 18100.5 and r.json()["status"] == "OPEN"

    r = await client.delete(f"/orders/{order_id}")
    assert r.status_code == 200, r.text
    r = await client.get(f"/orders/{order_id}")
    assert r.json()["status"] == "CANCELLED"
    assert r.json()["cancelled_quantity"] == 50

    events = [
        row["event"]
        for row in await db.fetch(
            "SELECT event FROM outbox_events WHERE order_id = $1 AND event <> 'task_status' ORDER BY seq", order_id
        )
    ]
    assert events == ["order_placed", "order_updated", "order_cancelled"]

    # a cancelled order cannot be cancelled or modified again: 422 naming the field, no task
    tasks_before = await db.fetchval("SELECT count(*) FROM order_tasks")
    r = await client.delete(f"/orders/{order_id}")
    assert r.status_code == 422 and r.json()["field"] == "order_id"
    r = await client.put(f"/orders/{order_id}", json={"price": 18000.0})
    assert r.status_code == 422 and r.json()["field"] == "order_id"
    assert await db.fetchval("SELECT count(*) FROM order_tasks") == tasks_before


async def order_events(db: asyncpg.Connection, order_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT event FROM outbox_events WHERE order_id = $1 AND event <> 'task_status' ORDER BY seq", order_id
    )
    return [row["event"] for row in rows]


async def test_ioc_limit_fills_at_once_or_is_cancelled(client: AsyncTestClient[Any], db: asyncpg.Connection) -> None:
    far = SPEC_ORDER | {"order_type": "LIMIT", "price": 18000.0, "validity": "IOC"}
    r = await client.post("/orders/place", json=far)
    assert r.status_code == 201, r.text  # the broker accepted it (an order id), then cancelled it
    order_id = r.json()["order_id"]
    assert r.json()["order_status"] == "CANCELLED"
    order = (await client.get(f"/orders/{order_id}")).json()
    assert order["status"] == "CANCELLED" and order["validity"] == "IOC"
    assert (order["filled_quantity"], order["cancelled_quantity"], order["pending_quantity"]) == (0, 50, 0)
    assert "IOC" in order["status_message"]
    assert await order_events(db, order_id) == ["order_placed", "order_cancelled"]
    assert [o["order_id"] for o in (await client.get("/orders")).json() if o["status"] == "OPEN"] == []

    marketable = SPEC_ORDER | {"order_type": "LIMIT", "price": 21000.0, "validity": "IOC"}
    r = await client.post("/orders/place", json=marketable)
    assert r.status_code == 201, r.text
    assert r.json()["order_status"] == "COMPLETE"
    assert r.json()["order"]["filled_quantity"] == 50
    assert await order_events(db, r.json()["order_id"]) == ["order_placed", "order_completed"]

    # a resting DAY order modified to IOC while not marketable is cancelled by the modification
    r = await client.post("/orders/place", json=far | {"validity": "DAY"})
    resting = r.json()["order_id"]
    assert r.json()["order_status"] == "OPEN"
    r = await client.put(f"/orders/{resting}", json={"validity": "IOC"})
    assert r.status_code == 200, r.text
    order = (await client.get(f"/orders/{resting}")).json()
    assert order["status"] == "CANCELLED" and order["cancelled_quantity"] == 50
    assert await order_events(db, resting) == ["order_placed", "order_cancelled"]


async def test_order_book_status_filter_refuses_unknown_statuses(client: AsyncTestClient[Any]) -> None:
    resting = await client.post("/orders/place", json=SPEC_ORDER | {"order_type": "LIMIT", "price": 18000.0})
    filled = await client.post("/orders/place", json=SPEC_ORDER)
    assert resting.json()["order_status"] == "OPEN" and filled.json()["order_status"] == "COMPLETE"

    for unknown in ("FILLED", "pending", "OPEN,COMPLETE", " "):
        r = await client.get("/orders", params={"status": unknown})
        assert r.status_code == 422, (unknown, r.text)
        body = r.json()
        assert body["field"] == "status"
        for accepted in ("OPEN", "TRIGGER PENDING", "COMPLETE", "CANCELLED", "REJECTED", "AMO REQ RECEIVED"):
            assert accepted in body["detail"], body

    # a valid status filters, whatever its case (Kite's words are upper case)
    for value, expected in (("OPEN", resting), ("open", resting), ("Complete", filled)):
        r = await client.get("/orders", params={"status": value})
        assert r.status_code == 200, r.text
        assert [o["order_id"] for o in r.json()] == [expected.json()["order_id"]]
        assert {o["status"] for o in r.json()} == {value.upper()}
    assert (await client.get("/orders", params={"status": "REJECTED"})).json() == []
    assert len((await client.get("/orders")).json()) == 2
    r = await client.get("/orders", params={"limit": 1, "offset": 1})
    assert [o["order_id"] for o in r.json()] == [filled.json()["order_id"]]


async def test_unknown_ids_are_404(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/orders/999999999999999")).status_code == 404
    assert (await client.get("/tasks/task_nope")).status_code == 404
    assert (await client.put("/orders/999999999999999", json={"price": 1.0})).status_code == 404
    assert (await client.delete("/orders/999999999999999")).status_code == 404
    assert (await client.post("/tasks/task_nope/retry")).status_code == 404


BAD_INPUTS = [
    ("limit without price", SPEC_ORDER | {"order_type": "LIMIT"}, 422, "price"),
    ("not a whole lot", SPEC_ORDER | {"quantity": 1}, 422, "quantity"),
    ("unknown symbol", SPEC_ORDER | {"tradingsymbol": "NOSUCHFUT"}, 422, "tradingsymbol"),
    ("tag over 20 characters", SPEC_ORDER | {"tag": "x" * 21}, 422, "tag"),
    ("unknown enum value", SPEC_ORDER | {"order_type": "STOP"}, 422, "order_type"),
    ("unknown product", SPEC_ORDER | {"product": "XYZ"}, 422, "product"),
    ("price off the tick", SPEC_ORDER | {"order_type": "LIMIT", "price": 19500.03}, 422, "price"),
    ("SL without trigger", SPEC_ORDER | {"order_type": "SL", "price": 19500.0}, 422, "trigger_price"),
    ("SL-M without trigger", SPEC_ORDER | {"order_type": "SL-M"}, 422, "trigger_price"),
    ("negative quantity", SPEC_ORDER | {"quantity": -50}, 422, "quantity"),
    ("quantity as words", SPEC_ORDER | {"quantity": "fifty"}, 422, "quantity"),
    ("missing field", {k: v for k, v in SPEC_ORDER.items() if k != "exchange"}, 422, "exchange"),
    ("unknown field", SPEC_ORDER | {"colour": "red"}, 422, "colour"),
    ("unknown account", SPEC_ORDER | {"account_id": "ghost"}, 422, "account_id"),
    ("market order with a price", SPEC_ORDER | {"price": 19500.0}, 422, "price"),
]


@pytest.mark.parametrize(("name", "body", "status", "field"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
async def test_bad_input_is_refused_before_any_task(
    client: AsyncTestClient[Any], db: asyncpg.Connection, name: str, body: dict[str, Any], status: int, field: str
) -> None:
    r = await client.post("/orders/place", json=body)
    assert r.status_code == status, r.text
    answer = r.json()
    assert answer["field"] == field
    assert field in answer["detail"]
    assert await db.fetchval("SELECT count(*) FROM order_tasks") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox_events") == 0
    assert await db.fetchval("SELECT count(*) FROM paper_orders") == 0  # no broker call


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"a string"'])
async def test_malformed_body_is_400(client: AsyncTestClient[Any], db: asyncpg.Connection, raw: bytes) -> None:
    r = await client.post("/orders/place", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM order_tasks") == 0


async def test_bad_query_parameter_names_it(client: AsyncTestClient[Any]) -> None:
    r = await client.post("/orders/place?wait=99", json=SPEC_ORDER)
    assert r.status_code == 422 and r.json()["field"] == "wait"
    r = await client.get("/tasks?status=bogus")
    assert r.status_code == 422 and r.json()["field"] == "status"


async def test_wait_zero_answers_202_with_the_task(client: AsyncTestClient[Any]) -> None:
    r = await client.post("/orders/place?wait=0", json=SPEC_ORDER)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "pending" and body["order_id"] is None and body["task_id"]

    async def done() -> dict[str, Any] | None:
        t = (await client.get(f"/tasks/{body['task_id']}")).json()
        return t if t["status"] == "completed" else None

    task = await eventually(done)
    assert task["order_id"] and task["order"]["status"] == "COMPLETE"


async def test_idempotency_key_replays_the_same_task(client: AsyncTestClient[Any], db: asyncpg.Connection) -> None:
    headers = {"Idempotency-Key": "order-123"}
    first = await client.post("/orders/place", json=SPEC_ORDER, headers=headers)
    second = await client.post("/orders/place", json=SPEC_ORDER, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["task_id"] == second.json()["task_id"]
    assert first.json()["order_id"] == second.json()["order_id"]
    conflict = await client.post("/orders/place", json=SPEC_ORDER | {"quantity": 100}, headers=headers)
    assert conflict.status_code == 409
    assert "Idempotency-Key" in conflict.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM order_tasks") == 1
    assert await db.fetchval("SELECT count(*) FROM paper_orders") == 1


async def test_concurrent_duplicates_create_one_task(client: AsyncTestClient[Any], db: asyncpg.Connection) -> None:
    headers = {"Idempotency-Key": "burst-key"}
    answers = await asyncio.gather(
        *(client.post("/orders/place?wait=0", json=SPEC_ORDER, headers=headers) for _ in range(25))
    )
    assert {a.status_code for a in answers} <= {201, 202}
    assert len({a.json()["task_id"] for a in answers}) == 1
    await eventually(lambda: db.fetchval("SELECT count(*) = 1 FROM order_tasks WHERE status = 'completed'"))
    assert await db.fetchval("SELECT count(*) FROM order_tasks") == 1
    assert await db.fetchval("SELECT count(*) FROM paper_orders") == 1


async def test_idempotency_keys_are_per_account(database_url: str, db: asyncpg.Connection) -> None:
    accounts = {"a": {"broker": "paper"}, "b": {"broker": "paper"}}
    async with make_client(database_url, accounts) as c:
        h = {"Idempotency-Key": "same"}
        ra = await c.post("/orders/place", json=SPEC_ORDER | {"account_id": "a"}, headers=h)
        rb = await c.post("/orders/place", json=SPEC_ORDER | {"account_id": "b"}, headers=h)
        assert ra.status_code == rb.status_code == 201
        assert ra.json()["task_id"] != rb.json()["task_id"]


async def test_insufficient_funds_is_a_broker_rejection(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url, {"poor": {"broker": "paper", "funds": 1000}}) as c:
        r = await c.post("/orders/place", json=SPEC_ORDER | {"account_id": "poor"})
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["task_id"] and body["order_id"]  # Kite gives an order id, then rejects it
        assert body["order_status"] == "REJECTED"
        assert "Insufficient funds" in body["message"]
        events = [
            row["event"]
            for row in await db.fetch(
                "SELECT event FROM outbox_events WHERE order_id = $1 AND event <> 'task_status' ORDER BY seq",
                body["order_id"],
            )
        ]
        assert events == ["order_rejected"]  # never placed successfully: no order_placed


async def test_an_order_rejected_at_once_is_never_announced_as_placed(
    database_url: str, db: asyncpg.Connection
) -> None:
    """`order_placed` means successfully placed: an order whose first known status is REJECTED gets
    `order_rejected` only; an accepted one still gets `order_placed`, then its outcome."""
    accounts = {"tiny": {"broker": "paper", "funds": 10}, "rich": {"broker": "paper"}}
    async with make_client(database_url, accounts) as c:
        refused = await c.post("/orders/place", json=SPEC_ORDER | {"account_id": "tiny"})
        assert refused.status_code == 422, refused.text
        placed = await c.post("/orders/place", json=SPEC_ORDER | {"account_id": "rich"})
        assert placed.status_code == 201, placed.text
    for answer, account, expected in (
        (refused, "tiny", ["order_rejected"]),
        (placed, "rich", ["order_placed", "order_completed"]),
    ):
        rows = await db.fetch(
            "SELECT event, data FROM outbox_events WHERE account_id = $1 AND event LIKE 'order_%' ORDER BY seq", account
        )
        assert [r["event"] for r in rows] == expected
        assert {r["data"]["order_id"] for r in rows} == {answer.json()["order_id"]}
        assert {r["data"]["task_id"] for r in rows} == {answer.json()["task_id"]}
    (rejected,) = await db.fetch(
        "SELECT data FROM outbox_events WHERE account_id = 'tiny' AND event = 'order_rejected'"
    )
    assert rejected["data"]["status"] == "REJECTED"
    assert rejected["data"]["status_message"].startswith("Insufficient funds")


async def test_health_and_metrics(client: AsyncTestClient[Any]) -> None:
    await client.post("/orders/place", json=SPEC_ORDER)
    r = await client.get("/health")
    assert r.status_code == 200
    health = r.json()
    assert health["status"] == "ok"
    assert health["ticker"]["running"] is True
    assert health["ticker"]["tasks_completed"] == 1 and health["ticker"]["tasks_pending"] == 0
    assert health["database"]["status"] == "ok"
    metrics = (await client.get("/metrics")).text
    assert 'http_requests_total{endpoint="/orders/place",method="POST",status="201"}' in metrics
    assert "order_requests_total" in metrics and "order_execution_duration_seconds" in metrics
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/orders/place" in schema["paths"] and "/tasks/{task_id}/retry" in schema["paths"]
