"""The paper exchange refuses what Kite's RMS and NSE refuse, with Kite's messages, through the whole
service: each refused order is a 422 carrying the message (a REJECTED order where Kite rejects after
acceptance) and leaves every position as it was. Holdings settle T+1; margins follow orders; a paper
account can start over."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import SPEC_ORDER, eventually, make_client
from ticker_service.brokers.paper.views import next_trading_day
from ticker_service.market_rules import CIRCUIT, MARKET_CLOSED
from ticker_service.marketdata.instruments.expiry import Holidays
from ticker_service.timeutil import IST

FUNDS = 1e9
EQUITY = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 1, "product": "CNC"}
MARKET = {"order_type": "MARKET"}


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    accounts = {
        "primary": {"funds": FUNDS},
        "hours": {"funds": FUNDS, "enforce_market_hours": True},
        "expiry": {"funds": FUNDS, "enforce_expiry": True},
    }
    async with make_client(database_url, accounts) as c:
        yield c


def tick(value: Decimal) -> float:
    """`value` on the 0.05 grid (a price the intake takes)."""
    return float((value / Decimal("0.05")).to_integral_value() * Decimal("0.05"))


def paper(c: AsyncTestClient[Any], account: str = "primary") -> Any:
    return c.app.state.runtime.brokers[account]


async def place(c: AsyncTestClient[Any], order: dict[str, Any]) -> Any:
    return await c.post("/orders/place?wait=5", json=order)


async def positions(c: AsyncTestClient[Any], account: str = "primary") -> dict[tuple[str, str], int]:
    net = (await c.get(f"/portfolio/positions?account_id={account}")).json()["net"]
    return {(p["tradingsymbol"], p["product"]): p["quantity"] for p in net}


async def refused(c: AsyncTestClient[Any], order: dict[str, Any], message: str) -> dict[str, Any]:
    """Place `order`, expect a 422 whose message starts with Kite's `message`, and no position change."""
    before = await positions(c, order.get("account_id", "primary"))
    r = await place(c, order)
    assert r.status_code == 422, r.text
    body: dict[str, Any] = r.json()
    assert body["message"].startswith(message), body["message"]
    assert await positions(c, order.get("account_id", "primary")) == before
    return body


async def test_products_follow_the_segment(client: AsyncTestClient[Any]) -> None:
    await refused(
        client,
        SPEC_ORDER | {"product": "CNC"},
        "Trading in NFO is not allowed using CNC product type. Try placing an order in NRML/MIS.",
    )
    await refused(
        client,
        EQUITY | MARKET | {"product": "NRML"},
        "Trading in NSE is not allowed using NRML product type. Try placing an order in CNC/MIS/MTF.",
    )
    for ok in (SPEC_ORDER | {"product": "MIS"}, EQUITY | MARKET | {"product": "MIS"}, EQUITY | MARKET):
        r = await place(client, ok)
        assert r.status_code == 201 and r.json()["order"]["status"] == "COMPLETE", r.text


async def test_a_cnc_sell_needs_holdings_including_t1(client: AsyncTestClient[Any]) -> None:
    # no holdings at all: refused (a REJECTED order, as Kite's RMS rejects it after acceptance)
    body = await refused(
        client, EQUITY | MARKET | {"tradingsymbol": "HDFCBANK", "transaction_type": "SELL", "quantity": 5}, "RMS:Rule"
    )
    assert "Check holdings" in body["message"] and body["order_status"] == "REJECTED"
    # one bought today (T1): five cannot be sold, one can; then none is left
    assert (await place(client, EQUITY | MARKET)).status_code == 201
    await refused(client, EQUITY | MARKET | {"transaction_type": "SELL", "quantity": 5}, "RMS:Rule: Check holdings")
    assert await positions(client) == {("INFY", "CNC"): 1}
    sold = await place(client, EQUITY | MARKET | {"transaction_type": "SELL"})
    assert sold.status_code == 201 and sold.json()["order"]["status"] == "COMPLETE", sold.text
    await refused(client, EQUITY | MARKET | {"transaction_type": "SELL"}, "RMS:Rule: Check holdings")
    # an open CNC sell takes its shares: a second sell of the same shares is refused
    assert (await place(client, EQUITY | MARKET | {"quantity": 2})).status_code == 201
    far = EQUITY | {"transaction_type": "SELL", "quantity": 2, "order_type": "LIMIT", "price": 1750.0}
    assert (await place(client, far)).json()["order"]["status"] == "OPEN"
    await refused(client, EQUITY | MARKET | {"transaction_type": "SELL"}, "RMS:Rule: Check holdings")
    # intraday (MIS) short selling stays allowed
    short = await place(client, EQUITY | MARKET | {"transaction_type": "SELL", "product": "MIS", "quantity": 3})
    assert short.status_code == 201 and short.json()["order"]["status"] == "COMPLETE"


async def test_stop_loss_rules(client: AsyncTestClient[Any]) -> None:
    ltp = paper(client).ltp(paper(client).instruments.get("NSE", "INFY"))
    above, below = float(ltp + 10), float(ltp - 10)
    sl = EQUITY | {"product": "MIS", "order_type": "SL"}
    await refused(client, sl | {"trigger_price": above + 5, "price": above}, "Trigger price can't be higher than price")
    await refused(
        client,
        sl | {"trigger_price": below, "price": below + 5},
        "Trigger price for stoploss buy orders should be higher than the last traded price.",
    )
    await refused(
        client,
        sl | {"transaction_type": "SELL", "trigger_price": below - 5, "price": below},
        "Trigger price can't be lesser than price",
    )
    await refused(
        client,
        sl | {"transaction_type": "SELL", "trigger_price": above, "price": above - 5},
        "Trigger price for stoploss sell orders should be lower than the last traded price.",
    )
    slm = EQUITY | {"product": "MIS", "order_type": "SL-M"}
    await refused(
        client,
        slm | {"trigger_price": below},
        "Trigger price for stoploss buy orders should be higher than the last traded price.",
    )
    await refused(
        client,
        slm | {"transaction_type": "SELL", "trigger_price": above},
        "Trigger price for stoploss sell orders should be lower than the last traded price.",
    )
    for ok in (
        sl | {"trigger_price": above, "price": above + 5},
        slm | {"transaction_type": "SELL", "trigger_price": below},
    ):
        r = await place(client, ok)
        assert r.status_code == 201 and r.json()["order"]["status"] == "TRIGGER PENDING", r.text


async def test_freeze_quantity_and_autoslice(client: AsyncTestClient[Any], db: asyncpg.Connection) -> None:
    # NIFTY's freeze quantity is 1800 (36 lots of 50)
    await refused(
        client,
        SPEC_ORDER | {"quantity": 1850},
        "The order quantity 1850 (37 lots) is higher than the maximum quantity of 1800 (36 lots) allowed by the "
        "exchanges. Please reduce the order quantity or use iceberg orders.",
    )
    assert (await place(client, SPEC_ORDER | {"quantity": 1800})).status_code == 201
    # with autoslice, the same order goes as slices of at most 1800, one batch
    r = await client.post("/orders/place?wait=10", json=SPEC_ORDER | {"quantity": 3650, "autoslice": True})
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["success"] is True and batch["total_orders"] == 3
    assert [leg["order_status"] for leg in batch["legs"]] == ["COMPLETE"] * 3
    quantities = await db.fetch(
        "SELECT (params->>'quantity')::int AS q FROM order_tasks WHERE batch_id = $1 ORDER BY batch_index",
        batch["batch_id"],
    )
    assert [q["q"] for q in quantities] == [1800, 1800, 50]
    assert await positions(client) == {("NIFTY25NOVFUT", "NRML"): 1800 + 3650}
    # an order that needs no slicing is placed as itself; more than 10 slices is refused before anything
    single = await place(client, SPEC_ORDER | {"autoslice": True})
    assert single.status_code == 201 and single.json()["order"]["quantity"] == 50
    too_many = await place(client, SPEC_ORDER | {"quantity": 1800 * 10 + 50, "autoslice": True})
    assert too_many.status_code == 422 and too_many.json()["field"] == "quantity", too_many.text


async def test_price_bands_and_option_protection(client: AsyncTestClient[Any]) -> None:
    infy = paper(client).instruments.get("NSE", "INFY")
    limit = EQUITY | {"order_type": "LIMIT"}
    await refused(client, limit | {"price": tick(infy.last_price * Decimal("1.25"))}, CIRCUIT)
    await refused(client, limit | {"transaction_type": "SELL", "product": "MIS", "price": 1100.0}, CIRCUIT)
    await refused(client, SPEC_ORDER | {"order_type": "LIMIT", "price": 22000.0}, CIRCUIT)  # future: 10 % of 19550
    option = next(
        i for i in paper(client).instruments if i.instrument_type == "CE" and i.name == "NIFTY" and i.last_price > 100
    )
    ltp = paper(client).ltp(option)
    order = {
        "exchange": "NFO",
        "tradingsymbol": option.tradingsymbol,
        "transaction_type": "BUY",
        "quantity": option.lot_size,
        "product": "NRML",
        "order_type": "LIMIT",
    }
    await refused(client, order | {"price": tick(ltp * Decimal("1.6"))}, CIRCUIT)
    inside = await place(client, order | {"price": tick(ltp * Decimal("0.8"))})
    assert inside.status_code == 201 and inside.json()["order"]["status"] == "OPEN", inside.text


def ist(day: Any, at: time) -> float:
    return datetime.combine(day, at, IST).timestamp()


async def test_market_hours_holidays_and_amo(client: AsyncTestClient[Any]) -> None:
    broker = paper(client, "hours")
    saturday = datetime(2026, 12, 12, tzinfo=IST).date()
    order = EQUITY | MARKET | {"account_id": "hours"}
    broker.clock = lambda: ist(saturday, time(10, 0))
    await refused(client, order, MARKET_CLOSED)
    broker.clock = lambda: ist(datetime(2026, 12, 25).date(), time(10, 0))  # a Friday, Christmas
    await refused(client, order, MARKET_CLOSED)
    broker.clock = lambda: ist(datetime(2026, 12, 14).date(), time(16, 0))  # Monday, after the close
    await refused(client, order, MARKET_CLOSED)
    # an AMO waits for the next session, then trades
    amo = await place(client, order | {"variety": "amo"})
    assert amo.status_code == 201 and amo.json()["order"]["status"] == "AMO REQ RECEIVED", amo.text
    assert await positions(client, "hours") == {}
    broker.clock = lambda: ist(datetime(2026, 12, 15).date(), time(9, 20))
    order_id = amo.json()["order_id"]
    await eventually(lambda: _status(client, order_id, "COMPLETE"))
    assert await positions(client, "hours") == {("INFY", "CNC"): 1}
    # in the session an AMO is refused, a regular order trades
    await refused(client, order | {"variety": "amo"}, "AMO orders are not allowed during market hours")
    assert (await place(client, order)).status_code == 201


async def test_an_expired_contract_is_refused_when_expiry_is_enforced(client: AsyncTestClient[Any]) -> None:
    expired = SPEC_ORDER | {"tradingsymbol": "NIFTY25OCTFUT"}  # expired on 28 October 2025
    await refused(client, expired | {"account_id": "expiry"}, "NIFTY25OCTFUT has expired on 2025-10-28")
    today = datetime.now(IST).date()
    current = next(
        i
        for i in paper(client).instruments
        if i.name == "NIFTY" and i.instrument_type == "FUT" and i.expiry is not None and i.expiry >= today
    )
    live = SPEC_ORDER | {"tradingsymbol": current.tradingsymbol, "account_id": "expiry"}
    assert (await place(client, live)).status_code == 201  # a contract of the day's list
    assert (await place(client, expired)).status_code == 201  # off by default: the spec's examples work any day


async def _status(c: AsyncTestClient[Any], order_id: str, status: str) -> bool:
    return bool((await c.get(f"/orders/{order_id}")).json()["status"] == status)


async def test_a_cnc_buy_is_t1_today_and_settled_the_next_trading_day(client: AsyncTestClient[Any]) -> None:
    assert (await client.get("/portfolio/holdings")).json() == []
    assert (await place(client, EQUITY | MARKET | {"quantity": 3})).status_code == 201
    assert (await place(client, EQUITY | MARKET | {"product": "MIS", "quantity": 7})).status_code == 201
    [held] = (await client.get("/portfolio/holdings")).json()
    assert (held["tradingsymbol"], held["product"], held["quantity"], held["t1_quantity"]) == ("INFY", "CNC", 0, 3)
    assert held["realised_quantity"] == 0 and held["average_price"] > 0
    broker = paper(client)
    today = datetime.now(IST).date()
    settles = next_trading_day(today, Holidays())
    broker.clock = lambda: ist(settles, time(10, 0))
    [held] = (await client.get("/portfolio/holdings")).json()
    assert (held["quantity"], held["t1_quantity"], held["realised_quantity"]) == (3, 0, 3)
    assert settles > today and Holidays().is_trading_day(settles)
    # the day before the settlement (today, or a weekend or holiday after it) still shows T1
    broker.clock = lambda: ist(settles - timedelta(days=1), time(23, 0))
    [held] = (await client.get("/portfolio/holdings")).json()
    assert (held["quantity"], held["t1_quantity"]) == (0, 3)


async def test_margins_go_down_by_what_an_order_blocks_and_back_on_its_cancel(client: AsyncTestClient[Any]) -> None:
    start = (await client.get("/user/margins")).json()
    assert set(start) == {"equity", "commodity"}
    assert start["equity"]["net"] == FUNDS and start["equity"]["utilised"]["debits"] == 0
    assert (await client.get("/user/margins/equity")).json() == start["equity"]
    bad = await client.get("/user/margins/bogus")
    assert bad.status_code == 422 and bad.json()["field"] == "segment"
    resting = await place(client, SPEC_ORDER | {"order_type": "LIMIT", "price": 18000.0})
    assert resting.json()["order"]["status"] == "OPEN"
    after = (await client.get("/user/margins/equity")).json()
    blocked = after["utilised"]["debits"]
    assert after["net"] == pytest.approx(FUNDS - blocked)
    assert blocked == pytest.approx(50 * 19550 * 0.15, rel=0.003)  # NRML: 15 % of the value at the price
    cancelled = await client.delete(f"/orders/{resting.json()['order_id']}?wait=5")
    assert cancelled.status_code == 200, cancelled.text
    back = (await client.get("/user/margins/equity")).json()
    assert back["net"] == FUNDS and back["utilised"]["debits"] == 0


async def test_reset_starts_a_paper_account_over(client: AsyncTestClient[Any]) -> None:
    await place(client, EQUITY | MARKET | {"quantity": 4})
    await place(client, SPEC_ORDER | {"order_type": "LIMIT", "price": 18000.0})
    assert await positions(client) and (await client.get("/portfolio/holdings")).json()
    r = await client.post("/accounts/primary/paper/reset")
    assert r.status_code == 200 and r.json()["account_id"] == "primary", r.text
    assert await positions(client) == {}
    assert (await client.get("/portfolio/holdings")).json() == []
    assert (await client.get("/orders")).json() == []
    assert (await client.get("/user/margins/equity")).json()["net"] == FUNDS
    # and it trades again from there, with new order ids
    again = await place(client, EQUITY | MARKET)
    assert again.status_code == 201 and again.json()["order_id"] != r.json().get("order_id")
    assert (await client.post("/accounts/nobody/paper/reset")).status_code == 422  # as GET /accounts/nobody
