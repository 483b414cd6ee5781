"""The paper broker's book against real PostgreSQL: the running exposure the funds check reads must
always equal what the book says, through placements, fills by the matcher, modifications and
cancellations; and the matcher fills exactly the orders the price crosses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import msgspec
import pytest

from ticker_service.brokers.base import BrokerRejected, ModifyOrderParams, PlaceOrderParams
from ticker_service.brokers.paper.broker import PaperBroker
from ticker_service.brokers.paper.config import PaperAccount
from ticker_service.brokers.paper.prices import RESOLUTION, price_at
from ticker_service.db.engine import asyncpg_dsn
from ticker_service.db.pool import create_pool
from ticker_service.instruments import load_instruments

BOOK = """
SELECT exchange, tradingsymbol, product, sum(net) AS net, sum(buys) AS buys, sum(sells) AS sells FROM (
    SELECT exchange, tradingsymbol, product,
           CASE WHEN transaction_type = 'BUY' THEN quantity ELSE -quantity END AS net, 0 AS buys, 0 AS sells
    FROM paper_trades WHERE account_id = $1
    UNION ALL
    SELECT exchange, tradingsymbol, product, 0,
           CASE WHEN transaction_type = 'BUY' THEN quantity - filled_quantity ELSE 0 END,
           CASE WHEN transaction_type = 'SELL' THEN quantity - filled_quantity ELSE 0 END
    FROM paper_orders WHERE account_id = $1 AND status IN ('OPEN', 'TRIGGER PENDING')
) AS x GROUP BY 1, 2, 3
"""


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(asyncpg_dsn(database_url), 4)
    yield pool
    await pool.close()


def extremes(token_symbol: str, start: float) -> tuple[float, Decimal, float, Decimal]:
    """(time of a low price, low, time of a high price, high) within a minute after `start`."""
    instrument = next(i for i in load_instruments() if i.tradingsymbol == token_symbol and i.exchange == "NSE")
    samples = [(price_at(instrument, start + k * RESOLUTION), start + k * RESOLUTION) for k in range(240)]
    low, t_low = min(samples)
    high, t_high = max(samples)
    return t_low, low, t_high, high


async def assert_exposure_matches_book(db: asyncpg.Connection, account: str) -> None:
    book = {
        (r["exchange"], r["tradingsymbol"], r["product"]): (r["net"], r["buys"], r["sells"])
        for r in await db.fetch(BOOK, account)
    }
    running = {
        (r["exchange"], r["tradingsymbol"], r["product"]): (r["net_quantity"], r["open_buy"], r["open_sell"])
        for r in await db.fetch("SELECT * FROM paper_exposure WHERE account_id = $1", account)
    }
    nonzero = {k: v for k, v in running.items() if any(v)}
    assert nonzero == {k: v for k, v in book.items() if any(v)}


def order(
    side: str,
    qty: int,
    order_type: str,
    tag: str,
    *,
    price: Decimal | None = None,
    trigger: Decimal | None = None,
    product: str = "CNC",
) -> PlaceOrderParams:
    return PlaceOrderParams(
        exchange="NSE",
        tradingsymbol="INFY",
        transaction_type=side,  # type: ignore[arg-type]
        quantity=qty,
        product=product,
        order_type=order_type,
        price=price,
        trigger_price=trigger,
        tag=tag,
    )


async def test_exposure_follows_every_change_and_the_matcher_fills_what_the_price_crosses(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    t_low, low, t_high, high = extremes("INFY", 1_800_000_000.0)
    assert low < high
    clock = Clock(t_high)
    broker = PaperBroker("acct", PaperAccount(funds=1e9), pool, load_instruments(), clock=clock)

    await broker.place_order(order("BUY", 10, "MARKET", "T1"))  # fills at once
    resting = (await broker.place_order(order("BUY", 7, "LIMIT", "T2", price=low))).order  # rests at the high
    far = (await broker.place_order(order("BUY", 5, "LIMIT", "T3", price=low - 20))).order  # never crosses
    stop = (await broker.place_order(order("SELL", 4, "SL-M", "T4", trigger=low))).order  # waits for the low
    sell = (await broker.place_order(order("SELL", 3, "LIMIT", "T5", price=high + 20, product="MIS"))).order
    assert resting is not None and far is not None and stop is not None and sell is not None
    assert (resting.status, far.status, stop.status, sell.status) == ("OPEN", "OPEN", "TRIGGER PENDING", "OPEN")
    await assert_exposure_matches_book(db, "acct")

    assert await broker.match_open_orders() == []  # at the high nothing crosses
    await broker.modify_order(ModifyOrderParams(order_id=far.order_id, quantity=9))
    await broker.cancel_order(sell.order_id)
    await assert_exposure_matches_book(db, "acct")

    clock.t = t_low
    changed = {o.order_id: o for o in await broker.match_open_orders()}
    assert set(changed) == {resting.order_id, stop.order_id}
    assert changed[resting.order_id].status == "COMPLETE" and changed[resting.order_id].average_price <= float(low)
    assert changed[stop.order_id].status == "COMPLETE"
    assert await broker.match_open_orders() == []  # filled once
    await assert_exposure_matches_book(db, "acct")
    row = await db.fetchrow("SELECT * FROM paper_exposure WHERE account_id = 'acct' AND product = 'CNC'")
    assert (row["net_quantity"], row["open_buy"], row["open_sell"]) == (10 + 7 - 4, 9, 0)

    # a modification that makes the resting order marketable fills it inside the call
    filled = await broker.modify_order(ModifyOrderParams(order_id=far.order_id, price=high + 20))
    assert filled.status == "COMPLETE"
    await assert_exposure_matches_book(db, "acct")


async def test_funds_check_reads_the_running_totals(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    """CNC needs the whole value: with funds for 10 INFY, the 11th is refused; selling frees nothing
    extra (a closing order needs no margin), and a cancelled order gives its margin back."""
    _, low, t_high, high = extremes("INFY", 1_800_000_100.0)
    clock = Clock(t_high)
    funds = float(high * 10 + high / 2)  # room for ten shares at the high, not eleven
    broker = PaperBroker("small", PaperAccount(funds=funds), pool, load_instruments(), clock=clock)
    await broker.place_order(order("BUY", 4, "MARKET", "F1"))
    limit = (await broker.place_order(order("BUY", 6, "LIMIT", "F2", price=low - 20))).order
    assert limit is not None and limit.status == "OPEN"
    refused = (await broker.place_order(order("BUY", 1, "MARKET", "F3"))).order
    assert refused is not None and refused.status == "REJECTED"
    assert refused.status_message is not None and refused.status_message.startswith("Insufficient funds")
    closing = (await broker.place_order(order("SELL", 4, "MARKET", "F4"))).order
    assert closing is not None and closing.status == "COMPLETE"
    await broker.cancel_order(limit.order_id)
    again = (await broker.place_order(order("BUY", 10, "MARKET", "F5"))).order
    assert again is not None and again.status == "COMPLETE"
    await assert_exposure_matches_book(db, "small")
    with pytest.raises(BrokerRejected):
        await broker.cancel_order(limit.order_id)


async def test_the_order_book_is_the_days_orders_plus_open_ones(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    """As Kite's: yesterday's finished orders leave the book (and reconciliation's pass), open ones stay."""
    broker = PaperBroker("days", PaperAccount(), pool, load_instruments())
    today = (await broker.place_order(order("BUY", 1, "MARKET", "D1"))).order
    kept = (await broker.place_order(order("BUY", 1, "LIMIT", "D2", price=Decimal("1400")))).order
    gone = (await broker.place_order(order("BUY", 1, "MARKET", "D3"))).order
    assert today is not None and kept is not None and gone is not None
    await db.execute(
        "UPDATE paper_orders SET order_timestamp = order_timestamp - interval '2 days' WHERE order_id = ANY($1)",
        [kept.order_id, gone.order_id],
    )
    assert [o.order_id for o in await broker.orders()] == [kept.order_id, today.order_id]
    assert [o.order_id for o in await broker.orders_by_tag("D3")] == [gone.order_id]  # still found by tag


def ioc(params: PlaceOrderParams) -> PlaceOrderParams:
    return msgspec.structs.replace(params, validity="IOC")


async def test_ioc_fills_at_once_or_is_cancelled_never_rests(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    """IOC (Kite's meaning): what can fill at once fills, the rest is cancelled; the paper exchange
    fills whole orders, so an IOC order is COMPLETE or CANCELLED when the call returns, never OPEN."""
    t_low, low, t_high, high = extremes("INFY", 1_800_000_200.0)
    clock = Clock(t_high)
    broker = PaperBroker("ioc", PaperAccount(funds=1e9), pool, load_instruments(), clock=clock)

    filled = (await broker.place_order(ioc(order("BUY", 3, "LIMIT", "I1", price=high + 20)))).order
    assert filled is not None and filled.status == "COMPLETE" and filled.filled_quantity == 3
    assert filled.validity == "IOC"

    far = (await broker.place_order(ioc(order("BUY", 5, "LIMIT", "I2", price=low - 20)))).order
    assert far is not None and far.status == "CANCELLED"
    assert (far.filled_quantity, far.cancelled_quantity, far.pending_quantity) == (0, 5, 0)
    assert far.status_message and "IOC" in far.status_message
    assert far.exchange_order_id  # it reached the exchange: cancelled there, not rejected
    await assert_exposure_matches_book(db, "ioc")

    # a stop order waits for its trigger as usual; triggered but not marketable, it is cancelled (Kite
    # wants an SL sell's trigger at or above its price and below the last price: both a tick above the low)
    above_low = low + Decimal("0.05")
    assert above_low < high
    stop = (await broker.place_order(ioc(order("SELL", 2, "SL", "I3", price=above_low, trigger=above_low)))).order
    assert stop is not None and stop.status == "TRIGGER PENDING"
    # a resting order modified to IOC while not marketable is cancelled by the modification
    resting = (await broker.place_order(order("BUY", 4, "LIMIT", "I4", price=low - 20))).order
    assert resting is not None and resting.status == "OPEN"
    await assert_exposure_matches_book(db, "ioc")
    modified = await broker.modify_order(ModifyOrderParams(order_id=resting.order_id, validity="IOC"))
    assert modified.status == "CANCELLED" and modified.validity == "IOC"
    assert (modified.filled_quantity, modified.cancelled_quantity, modified.pending_quantity) == (0, 4, 0)
    await assert_exposure_matches_book(db, "ioc")

    clock.t = t_low
    changed = {o.order_id: o for o in await broker.match_open_orders()}
    assert set(changed) == {stop.order_id}
    assert changed[stop.order_id].status == "CANCELLED" and changed[stop.order_id].cancelled_quantity == 2
    assert await broker.match_open_orders() == []
    await assert_exposure_matches_book(db, "ioc")
    row = await db.fetchrow("SELECT * FROM paper_exposure WHERE account_id = 'ioc' AND product = 'CNC'")
    assert (row["net_quantity"], row["open_buy"], row["open_sell"]) == (3, 0, 0)
    for cancelled in (far, modified):
        with pytest.raises(BrokerRejected):
            await broker.cancel_order(cancelled.order_id)
