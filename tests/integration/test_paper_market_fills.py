"""MARKET orders on the paper exchange fill like a market: at the touch plus a spread that grows with
quantity against the visible book, and an order larger than the book fills in parts over the next
ticks (with `order_updated` events); the quote, the paper tick feed and the fills see the same book."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from tests.conftest import eventually, make_client
from tests.integration.test_paper_broker import Clock
from ticker_service.brokers.base import PlaceOrderParams
from ticker_service.brokers.paper.broker import PaperBroker
from ticker_service.brokers.paper.config import PaperAccount
from ticker_service.brokers.paper.depth import book
from ticker_service.brokers.paper.prices import RESOLUTION, price_at
from ticker_service.db.engine import asyncpg_dsn
from ticker_service.db.pool import create_pool
from ticker_service.instruments import load_instruments
from ticker_service.marketdata.ticks.feeds.paper import PaperTickFeed

T0 = 1_800_000_000.0  # a whole second: the book of [T0, T0 + 1)
INFY = load_instruments().get("NSE", "INFY")


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(asyncpg_dsn(database_url), 4)
    yield pool
    await pool.close()


def market(side: str, quantity: int, tag: str) -> PlaceOrderParams:
    return PlaceOrderParams(
        exchange="NSE",
        tradingsymbol="INFY",
        transaction_type=side,  # type: ignore[arg-type]
        quantity=quantity,
        product="MIS",
        order_type="MARKET",
        market_protection=Decimal(-1),
        tag=tag,
    )


async def test_the_touch_plus_a_spread_that_grows_with_quantity(pool: asyncpg.Pool) -> None:
    assert INFY is not None
    broker = PaperBroker("touch", PaperAccount(funds=1e9, seed=7), pool, load_instruments(), clock=Clock(T0))
    bids, offers = book(INFY, 7, T0)
    assert offers[0].price == price_at(INFY, T0, 7) + INFY.tick_size  # the touch: a tick above the price
    small = (await broker.place_order(market("BUY", offers[0].quantity, "S1"))).order
    assert small is not None and small.status == "COMPLETE"
    assert Decimal(str(small.average_price)) == offers[0].price
    # three levels' worth: the first two whole, the rest from the third, at their prices
    quantity = offers[0].quantity + offers[1].quantity + 5
    larger = (await broker.place_order(market("BUY", quantity, "S2"))).order
    assert larger is not None and larger.status == "COMPLETE"
    paid = offers[0].price * offers[0].quantity + offers[1].price * offers[1].quantity + offers[2].price * 5
    assert Decimal(str(larger.average_price)) == pytest.approx(paid / quantity)
    assert larger.average_price > small.average_price
    sold = (await broker.place_order(market("SELL", bids[0].quantity + 1, "S3"))).order
    assert sold is not None and sold.average_price < float(bids[0].price)  # a seller walks down the bids


async def test_an_order_larger_than_the_book_fills_over_the_next_ticks(pool: asyncpg.Pool) -> None:
    assert INFY is not None
    clock = Clock(T0 + 0.1)
    broker = PaperBroker("parts", PaperAccount(funds=1e9), pool, load_instruments(), clock=clock)
    visible = sum(level.quantity for level in book(INFY, 0, clock.t)[1])
    quantity = visible + 1000
    placed = (await broker.place_order(market("BUY", quantity, "P1"))).order
    assert placed is not None and placed.status == "OPEN"
    assert (placed.filled_quantity, placed.pending_quantity) == (visible, 1000)
    clock.t = T0 + 0.6  # the same second: the same book, already taken
    assert await broker.match_open_orders() == []
    fills = [placed.filled_quantity]
    while fills[-1] < quantity:
        clock.t += 1.0  # the next tick's book
        [order] = await broker.match_open_orders()
        assert order.filled_quantity > fills[-1]
        fills.append(order.filled_quantity)
    assert order.status == "COMPLETE" and order.pending_quantity == 0
    assert len(fills) >= 2


async def test_quote_feed_and_fills_share_one_book(pool: asyncpg.Pool) -> None:
    assert INFY is not None
    clock = Clock(T0 + 0.3)
    broker = PaperBroker("book", PaperAccount(funds=1e9, seed=3), pool, load_instruments(), clock=clock)
    bids, offers = book(INFY, 3, clock.t)
    quote = (await broker.quotes(["NSE:INFY"]))["NSE:INFY"]
    assert [(level["price"], level["quantity"]) for level in quote["depth"]["sell"]] == [
        (float(level.price), level.quantity) for level in offers
    ]
    assert [(level["price"], level["quantity"]) for level in quote["depth"]["buy"]] == [
        (float(level.price), level.quantity) for level in bids
    ]
    tick = PaperTickFeed(load_instruments(), model=broker, interval=1.0, clock=clock).tick(
        INFY.instrument_token, "full"
    )
    assert tick.depth is not None and [e.quantity for e in tick.depth.sell] == [level.quantity for level in offers]
    assert tick.last_price == quote["last_price"] == float(price_at(INFY, clock.t, 3))


async def test_partial_fills_reach_clients_as_order_updated(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url, {"primary": {"funds": 1e9}}) as c:
        r = await c.post(
            "/orders/place?wait=5",
            json={
                "exchange": "NSE",
                "tradingsymbol": "INFY",
                "transaction_type": "BUY",
                "quantity": 5000,
                "product": "MIS",
                "order_type": "MARKET",
            },
        )
        assert r.status_code == 201, r.text
        order = r.json()["order"]
        assert order["status"] == "OPEN" and 0 < order["filled_quantity"] < 5000
        order_id = order["order_id"]

        async def events() -> list[str]:
            rows = await db.fetch(
                "SELECT event FROM outbox_events WHERE order_id = $1 AND event <> 'task_status' ORDER BY seq", order_id
            )
            return [row["event"] for row in rows]

        await eventually(lambda: _last_is(events(), "order_completed"), timeout=30)
        seen = await events()
        assert seen[0] == "order_placed" and seen[-1] == "order_completed"
        assert "order_updated" in seen[1:-1]
        trades = (await c.get(f"/orders/{order_id}/trades")).json()
        assert sum(t["quantity"] for t in trades) == 5000
    # every fill at a price the book offered around when it happened (the price moves every quarter second)
    for trade in await db.fetch("SELECT price, filled_at FROM paper_trades WHERE order_id = $1", order_id):
        start = int(trade["filled_at"].timestamp()) - 1
        instants = [start + k * RESOLUTION for k in range(int(3 / RESOLUTION))]
        offered = {level.price for t in instants for level in book(INFY, 0, t)[1]}
        assert trade["price"] in offered


async def _last_is(events: object, name: str) -> bool:
    got = await events  # type: ignore[misc]
    return bool(got) and got[-1] == name
