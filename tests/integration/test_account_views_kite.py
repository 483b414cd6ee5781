"""The account views of a Kite account come from Kite (the real `kiteconnect` client against the fake
Kite) in Kite's own shapes; a Kite account cannot be reset like a paper one."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.conftest import eventually
from tests.fake_kite_thread import FakeKiteThread, start_threaded_fake, threaded_fakes
from tests.kite_setup import ACCOUNT, KITE_ORDER, kite_client

__all__ = ["threaded_fakes"]

HOLDING_FIELDS = {"tradingsymbol", "exchange", "instrument_token", "product", "quantity", "t1_quantity"}
HOLDING_FIELDS |= {"realised_quantity", "used_quantity", "average_price", "last_price", "close_price", "pnl"}


async def test_holdings_margins_and_trades_of_a_kite_account(
    database_url: str, db: asyncpg.Connection, threaded_fakes: list[FakeKiteThread]
) -> None:
    fake = await start_threaded_fake(threaded_fakes)
    token = await fake.do(fake.fake.issue_access_token)
    async with kite_client(database_url, fake, token=token) as c:
        q = f"?account_id={ACCOUNT}"
        holdings = (await c.get(f"/portfolio/holdings{q}")).json()
        assert {h["tradingsymbol"] for h in holdings} == {"INFY", "SBIN"}
        assert all(set(h) >= HOLDING_FIELDS for h in holdings)
        assert next(h for h in holdings if h["tradingsymbol"] == "SBIN")["t1_quantity"] == 5
        margins = (await c.get(f"/user/margins{q}")).json()
        assert set(margins) == {"equity", "commodity"} and {"net", "available", "utilised"} <= set(margins["equity"])
        equity = (await c.get(f"/user/margins/equity{q}")).json()
        assert equity["available"] == margins["equity"]["available"]
        placed = await c.post("/orders/place?wait=5", json=KITE_ORDER)
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["order_id"]

        async def trades() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = (await c.get(f"/orders/{order_id}/trades{q}")).json()
            return found

        found = await eventually(trades)
        assert isinstance(found, list) and len(found) == 1, found
        [trade] = found
        assert (trade["order_id"], trade["quantity"], trade["tradingsymbol"]) == (order_id, 1, "INFY")
        assert {"trade_id", "average_price", "fill_timestamp", "exchange_order_id"} <= set(trade)
        assert (await c.get(f"/orders/999999999999999/trades{q}")).status_code == 404
        refused = await c.post(f"/accounts/{ACCOUNT}/paper/reset")
        assert refused.status_code == 422 and refused.json()["field"] == "account_id", refused.text


async def test_the_trades_of_a_paper_order(database_url: str) -> None:
    from tests.conftest import SPEC_ORDER, make_client

    async with make_client(database_url) as c:
        placed = await c.post("/orders/place?wait=5", json=SPEC_ORDER)
        order_id = placed.json()["order_id"]
        [trade] = (await c.get(f"/orders/{order_id}/trades")).json()
        assert (trade["order_id"], trade["quantity"], trade["product"]) == (order_id, 50, "NRML")
        assert trade["average_price"] == placed.json()["order"]["average_price"]
        assert (await c.get("/orders/261207999999999/trades")).status_code == 404
