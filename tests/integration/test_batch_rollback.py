"""Batches keep the spec's all-or-nothing promise by default: a filled MARKET leg of a failed batch is
squared off (an opposite order), `rollback_mode: cancel` keeps the old behaviour on request; and the
list of batches with its filters and pages."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.conftest import make_client
from tests.integration.test_batches import BANKNIFTY_MARKET, INFY_ONE, NIFTY_MARKET, NIFTY_RESTING, SMALL, batch


async def test_the_spec_rollback_example_squares_off_filled_legs_by_default(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with make_client(database_url, SMALL) as c:
        body = await batch(
            c, [NIFTY_MARKET, INFY_ONE, BANKNIFTY_MARKET], account_id="primary", rollback_on_failure=True
        )
        # the spec: {"success": false, "total_orders": 3, "succeeded": 0, "failed": 3,
        #            "error": "Order 2 failed: Insufficient funds. Rolled back 2 orders."}
        assert (body["success"], body["total_orders"], body["succeeded"], body["failed"]) == (False, 3, 0, 3)
        assert body["error"].startswith("Order 2 failed: Insufficient funds")
        assert body["error"].endswith("Rolled back 2 orders.")
        assert body["rollback_mode"] == "square_off"
        assert [leg["rollback"]["outcome"] for leg in body["legs"][:2]] == ["squared_off", "squared_off"]
        net = {(p["tradingsymbol"], p["product"]): p for p in (await c.get("/portfolio/positions")).json()["net"]}
        assert net[("NIFTY25NOVFUT", "NRML")]["quantity"] == 0 and net[("INFY", "CNC")]["quantity"] == 0
        assert net[("NIFTY25NOVFUT", "NRML")]["sell_quantity"] == 50
    squares = await db.fetch("SELECT transaction_type, order_type FROM paper_orders WHERE transaction_type = 'SELL'")
    assert sorted((r["transaction_type"], r["order_type"]) for r in squares) == [("SELL", "MARKET")] * 2


async def test_cancel_mode_still_leaves_a_filled_leg_on_request(database_url: str) -> None:
    async with make_client(database_url, SMALL) as c:
        body = await batch(c, [NIFTY_MARKET, BANKNIFTY_MARKET], rollback_mode="cancel")
        assert body["legs"][0]["rollback"]["outcome"] == "not_rolled_back"
        net = (await c.get("/portfolio/positions")).json()["net"]
        assert next(p for p in net if p["tradingsymbol"] == "NIFTY25NOVFUT")["quantity"] == 50


async def test_the_list_of_batches_filters_and_pages(database_url: str) -> None:
    accounts = SMALL | {"other": {}}
    async with make_client(database_url, accounts) as c:
        done = await batch(c, [NIFTY_RESTING])
        failed = await batch(c, [NIFTY_MARKET, BANKNIFTY_MARKET])
        third = await batch(c, [INFY_ONE])
        elsewhere = await batch(c, [INFY_ONE], account_id="other")

        async def ids(query: str = "") -> list[str]:
            r = await c.get(f"/advanced/batch-orders{query}")
            assert r.status_code == 200, r.text
            return [b["batch_id"] for b in r.json()]

        newest_first = [third["batch_id"], failed["batch_id"], done["batch_id"]]
        assert await ids("?account_id=primary") == newest_first
        assert await ids() == [elsewhere["batch_id"], *newest_first]  # every account the caller may use
        assert await ids("?account_id=primary&status=failed") == [failed["batch_id"]]
        assert await ids("?account_id=primary&status=completed") == [third["batch_id"], done["batch_id"]]
        assert await ids("?account_id=primary&limit=1&offset=1") == [failed["batch_id"]]
        listed: dict[str, Any] = (await c.get("/advanced/batch-orders?account_id=primary&limit=1")).json()[0]
        assert listed == (await c.get(f"/advanced/batch-orders/{third['batch_id']}")).json()
        bad = await c.get("/advanced/batch-orders?status=finished")
        assert bad.status_code == 422 and bad.json()["field"] == "status"
