"""The paper broker.

It behaves like an external broker on purpose: its book lives in its own tables and every call
commits on its own, independently of the service's transactions. A crash between a paper fill and
the service recording it is therefore possible, exactly as with Kite, and the service's
reconciliation has to repair it. Fault injection (`fail_rate`, `latency_ms`, `lose_response_rate`)
exercises the relay's handling of failures before sending, slow calls and lost answers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from datetime import date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any

import asyncpg

from ticker_service.brokers.base import (
    BrokerAmbiguous,
    BrokerOrder,
    BrokerRejected,
    BrokerUnavailable,
    ModifyOrderParams,
    OrderNotFound,
    PlaceOrderParams,
    PlaceResult,
)
from ticker_service.brokers.paper import charges, views
from ticker_service.brokers.paper.config import PaperAccount
from ticker_service.brokers.paper.depth import Level, book_bucket, walk
from ticker_service.brokers.paper.depth import book as depth_book
from ticker_service.brokers.paper.prices import price_at
from ticker_service.brokers.registry import BrokerContext
from ticker_service.failpoints import failpoint
from ticker_service.instruments import Instrument, InstrumentBook, check_order
from ticker_service.market_rules import (
    AMO_IN_SESSION,
    MARKET_CLOSED,
    check_freeze,
    check_price_band,
    check_product,
    check_stop_loss,
    circuit_limits,
    holdings_message,
)
from ticker_service.marketdata.instruments.expiry import Holidays
from ticker_service.marketdata.packets import Depth, DepthEntry, Tick
from ticker_service.marketdata.quotes import ltp_from_tick, quote_from_tick
from ticker_service.marketdata.ticks.feeds.paper import PaperTickFeed
from ticker_service.timeutil import IST, utcnow

AMO_QUEUED = "AMO REQ RECEIVED"  # an after-market order waiting for the next session

OPEN_STATUSES = ("OPEN", "TRIGGER PENDING", AMO_QUEUED)
# An IOC order that cannot fill when it reaches the market (at placement, at a modification, or when
# its stop triggers) is cancelled by the exchange rather than left resting
IOC_CANCELLED = "Cancelled by the exchange: IOC order could not be executed immediately."
MARKET_OPEN = dtime(9, 15)
MARKET_CLOSE = dtime(15, 30)

# The matcher's candidates: resting orders that the current price (per instrument, passed in as
# arrays) would trigger or fill. Filtering in SQL keeps a pass cheap however many orders rest far
# from the market; `fill_decision` still makes the final call on each candidate.
_CROSSING = """
SELECT o.* FROM paper_orders AS o
JOIN unnest($2::text[], $3::text[], $4::numeric[]) AS p(exchange, tradingsymbol, ltp)
  ON o.exchange = p.exchange AND o.tradingsymbol = p.tradingsymbol
WHERE o.account_id = $1
  AND o.status IN ('OPEN', 'TRIGGER PENDING')
  AND CASE
        WHEN o.status = 'TRIGGER PENDING' THEN
            CASE WHEN o.transaction_type = 'BUY' THEN p.ltp >= o.trigger_price ELSE p.ltp <= o.trigger_price END
        WHEN o.order_type IN ('MARKET', 'SL-M') THEN true
        ELSE CASE WHEN o.transaction_type = 'BUY' THEN p.ltp <= o.price ELSE p.ltp >= o.price END
      END
ORDER BY o.order_id
FOR UPDATE OF o SKIP LOCKED
"""

# The account row is the lock that serializes placements; the LEFT JOIN returns one all-NULL row
# for an account without positions, and no row at all when the account row does not exist yet.
_LOCK_EXPOSURE = """
SELECT e.exchange, e.tradingsymbol, e.product, e.net_quantity, e.open_buy, e.open_sell
FROM paper_accounts AS a LEFT JOIN paper_exposure AS e ON e.account_id = a.account_id
WHERE a.account_id = $1
FOR UPDATE OF a
"""

_EXPOSURE_UPSERT = """
INSERT INTO paper_exposure AS x (account_id, exchange, tradingsymbol, product, net_quantity, open_buy, open_sell)
{source}
ON CONFLICT (account_id, exchange, tradingsymbol, product) DO UPDATE SET
    net_quantity = x.net_quantity + EXCLUDED.net_quantity,
    open_buy = x.open_buy + EXCLUDED.open_buy,
    open_sell = x.open_sell + EXCLUDED.open_sell
"""
_ADJUST = _EXPOSURE_UPSERT.format(source="VALUES ($1, $2, $3, $4, $5, $6, $7)")

# One statement for a placement: the order (its id from the day and a sequence, as Kite's look),
# its fill when it fills at once ($21 not null), the running totals ($22..$24) and the quantity
# cancelled at once ($25: an IOC order that could not fill).
_PLACE = (
    """
WITH o AS (
    INSERT INTO paper_orders (order_id, account_id, tag, exchange, tradingsymbol, instrument_token, transaction_type,
        product, order_type, variety, validity, quantity, disclosed_quantity, price, trigger_price, status,
        status_message, filled_quantity, average_price, order_timestamp, exchange_timestamp, updated_at,
        cancelled_quantity, book_bucket)
    VALUES (to_char(now() AT TIME ZONE 'Asia/Kolkata', 'YYMMDD') || lpad(nextval('paper_order_seq')::text, 9, '0'),
        $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $19, $25, $26)
    RETURNING *
), t AS (
    INSERT INTO paper_trades (order_id, account_id, exchange, tradingsymbol, instrument_token, product,
        transaction_type, quantity, price)
    SELECT o.order_id, o.account_id, o.exchange, o.tradingsymbol, o.instrument_token, o.product,
        o.transaction_type, o.quantity, $21::numeric
    FROM o WHERE $21::numeric IS NOT NULL
), x AS (
"""
    + _EXPOSURE_UPSERT.format(
        source="SELECT $1, $3, $4, $7, $22::bigint, $23::bigint, $24::bigint "
        "WHERE $22::bigint <> 0 OR $23::bigint <> 0 OR $24::bigint <> 0"
    )
    + """)
SELECT * FROM o
"""
)

# After-market orders whose session has come (the matcher releases them to the book)
_AMO_DUE = f"""
SELECT * FROM paper_orders WHERE account_id = $1 AND status = '{AMO_QUEUED}'
ORDER BY order_id
FOR UPDATE SKIP LOCKED
"""
_MODIFY_QUEUED = """
UPDATE paper_orders SET order_type = $2, quantity = $3, price = $4, trigger_price = $5, validity = $6, modified = true,
    updated_at = $7
WHERE order_id = $1
RETURNING *
"""

# A reset, in this order (trades name their orders)
_RESET = {
    "trades": "DELETE FROM paper_trades WHERE account_id = $1",
    "orders": "DELETE FROM paper_orders WHERE account_id = $1",
    "exposure": "DELETE FROM paper_exposure WHERE account_id = $1",
}

# A MARKET order's fill against one second of the visible book (it may stay OPEN for the next)
_BOOK_FILL = """
UPDATE paper_orders SET status = $3, updated_at = $4, exchange_timestamp = $4, filled_quantity = $5,
    average_price = $6, book_bucket = $7, cancelled_quantity = COALESCE($8, cancelled_quantity),
    status_message = COALESCE($9, status_message)
WHERE order_id = $1 AND status = $2
RETURNING *
"""

_TRADE = """
INSERT INTO paper_trades (order_id, account_id, exchange, tradingsymbol, instrument_token, product, transaction_type,
    quantity, price)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""
# Kite's order book is the day's orders; the paper book keeps history, so it shows today's (in IST)
# plus any still open, which keeps reconciliation's pass bounded by a day of trading.
_DAY_BOOK = """
SELECT * FROM paper_orders
WHERE account_id = $1
  AND (order_timestamp >= (date_trunc('day', now() AT TIME ZONE 'Asia/Kolkata') AT TIME ZONE 'Asia/Kolkata')
       OR status IN ('OPEN', 'TRIGGER PENDING'))
ORDER BY order_timestamp, order_id
"""
_ORDER = "SELECT * FROM paper_orders WHERE order_id = $1 AND account_id = $2"
_ORDER_FOR_UPDATE = _ORDER + " FOR UPDATE"
_MODIFY = """
UPDATE paper_orders SET order_type = $2, quantity = $3, price = $4, trigger_price = $5, validity = $6, modified = true,
    status = $7, updated_at = $8, filled_quantity = COALESCE($9, filled_quantity),
    average_price = COALESCE($10, average_price), exchange_timestamp = COALESCE($11, exchange_timestamp),
    cancelled_quantity = COALESCE($12, cancelled_quantity), status_message = COALESCE($13, status_message)
WHERE order_id = $1
RETURNING *
"""
_CANCEL = """
UPDATE paper_orders SET status = 'CANCELLED', cancelled_quantity = quantity - filled_quantity, updated_at = $2
WHERE order_id = $1
RETURNING *
"""
_MATCH = """
UPDATE paper_orders SET status = $3, updated_at = $4, filled_quantity = COALESCE($5, filled_quantity),
    average_price = COALESCE($6, average_price), exchange_timestamp = COALESCE($7, exchange_timestamp),
    cancelled_quantity = COALESCE($8, cancelled_quantity), status_message = COALESCE($9, status_message)
WHERE order_id = $1 AND status = $2
RETURNING *
"""


def _f(value: Any) -> float:
    return float(value) if value is not None else 0.0


def row_to_order(row: Mapping[Any, Any]) -> BrokerOrder:
    quantity = int(row["quantity"])
    filled = int(row["filled_quantity"])
    cancelled = int(row["cancelled_quantity"])
    return BrokerOrder(
        order_id=row["order_id"],
        status=row["status"],
        status_message=row["status_message"],
        exchange=row["exchange"],
        tradingsymbol=row["tradingsymbol"],
        instrument_token=int(row["instrument_token"]),
        transaction_type=row["transaction_type"],
        product=row["product"],
        order_type=row["order_type"],
        variety=row["variety"],
        validity=row["validity"],
        quantity=quantity,
        disclosed_quantity=int(row["disclosed_quantity"]),
        price=_f(row["price"]),
        trigger_price=_f(row["trigger_price"]),
        filled_quantity=filled,
        cancelled_quantity=cancelled,
        pending_quantity=max(quantity - filled - cancelled, 0) if row["status"] in OPEN_STATUSES else 0,
        average_price=_f(row["average_price"]),
        tag=row["tag"],
        order_timestamp=row["order_timestamp"],
        exchange_timestamp=row["exchange_timestamp"],
        exchange_order_id=None if row["status"] == "REJECTED" else f"1{row['order_id']}",
        modified=bool(row["modified"]),
    )


def _vwap(fills: list[tuple[Decimal, int]]) -> Decimal:
    quantity = sum(q for _, q in fills)
    return sum((p * q for p, q in fills), Decimal(0)) / quantity if quantity else Decimal(0)


def fill_decision(
    *,
    transaction_type: str,
    order_type: str,
    status: str,
    price: Decimal,
    trigger: Decimal,
    ltp: Decimal,
    validity: str = "DAY",
) -> tuple[str, Decimal | None]:
    """(new status, fill price or None) for an order at the market price `ltp`.

    A stop order triggers when the price crosses its trigger; a triggered SL then behaves as a
    LIMIT at its price and a triggered SL-M as a MARKET. Marketable orders fill at the market price
    (never worse than their limit); resting limits stay OPEN, except IOC ones: Immediate or Cancel
    fills what it can at once and cancels the rest, and the paper exchange fills whole orders, so an
    IOC order that is not marketable when it reaches the market is CANCELLED.
    """
    buy = transaction_type == "BUY"
    kind = order_type
    if kind in ("SL", "SL-M") and status == "TRIGGER PENDING":
        triggered = ltp >= trigger if buy else ltp <= trigger
        if not triggered:
            return "TRIGGER PENDING", None
    if kind in ("MARKET", "SL-M"):
        return "COMPLETE", ltp
    crosses = ltp <= price if buy else ltp >= price
    if crosses:
        return "COMPLETE", (min(ltp, price) if buy else max(ltp, price))
    if validity == "IOC":
        return "CANCELLED", None
    return "OPEN", None


class PaperBroker:
    """One paper account. Its matcher is its order-update stream (`order_updates`)."""

    def __init__(
        self,
        account_id: str,
        settings: PaperAccount,
        pool: asyncpg.Pool,
        instruments: InstrumentBook,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        matcher_interval: float = 0.25,
        holidays: Holidays | None = None,
    ) -> None:
        self.holidays = holidays or Holidays()
        self.account_id = account_id
        self.settings = settings
        self.pool = pool
        self.instruments = instruments
        self.clock = clock
        self.rng = rng or random.Random()
        self.matcher_interval = matcher_interval

    # ---- helpers -------------------------------------------------------------------------------

    def ltp(self, instrument: Instrument) -> Decimal:
        return price_at(instrument, self.clock(), self.settings.seed)

    def model_price(self, instrument: Instrument, t: float) -> Decimal:
        """The price model's price at `t` for this account's seed (paper candles are read from it)."""
        return price_at(instrument, t, self.settings.seed)

    async def _simulate_network(self, *, mutating: bool) -> None:
        if self.settings.latency_ms:
            await asyncio.sleep(self.settings.latency_ms / 1000)
        if mutating and self.settings.fail_rate and self.rng.random() < self.settings.fail_rate:
            raise BrokerUnavailable("paper broker: simulated connection failure before the order was sent")

    def _maybe_lose_answer(self) -> None:
        if self.settings.lose_response_rate and self.rng.random() < self.settings.lose_response_rate:
            raise BrokerAmbiguous("paper broker: simulated lost response (the request took effect)")

    def _instrument(self, exchange: str, tradingsymbol: str) -> Instrument:
        instrument = self.instruments.get(exchange, tradingsymbol)
        if instrument is None:
            raise BrokerRejected(f"Invalid instrument: {exchange}:{tradingsymbol}")
        return instrument

    def now_ist(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), IST)

    def in_session(self, now: datetime | None = None) -> bool:
        """Whether NSE's normal session is on (a trading day, 09:15 to 15:30 IST)."""
        now = now or self.now_ist()
        return self.holidays.is_trading_day(now.date()) and MARKET_OPEN <= now.time() <= MARKET_CLOSE

    def _check_session(self, instrument: Instrument, variety: str = "regular") -> bool:
        """Refuse what the session does not allow; True when the order is an AMO to queue for the next
        session (only with `enforce_market_hours`: without it every order trades at once)."""
        now = self.now_ist()
        if self.settings.enforce_expiry and instrument.expiry and instrument.expiry < now.date():
            raise BrokerRejected(f"{instrument.tradingsymbol} has expired on {instrument.expiry.isoformat()}")
        if not self.settings.enforce_market_hours:
            return False
        if variety == "amo":
            if self.in_session(now):
                raise BrokerRejected(AMO_IN_SESSION)
            return True
        if not self.in_session(now):
            raise BrokerRejected(MARKET_CLOSED)
        return False

    def _check_rules(
        self,
        instrument: Instrument,
        *,
        product: str,
        transaction_type: str,
        order_type: str,
        quantity: int,
        price: Decimal | None,
        trigger: Decimal | None,
        ltp: Decimal,
    ) -> None:
        """Kite's RMS and the exchange's rules that refuse an order before it reaches the book."""
        for problem in (
            check_product(instrument, product),
            check_freeze(instrument, quantity),
            check_price_band(instrument, order_type, price, ltp),
            check_stop_loss(transaction_type, order_type, price, trigger, ltp),
        ):
            if problem is not None:
                raise BrokerRejected(problem)

    async def _lock_and_read_exposure(self, conn: asyncpg.Connection) -> dict[tuple[str, str, str], list[int]]:
        """Lock the account row (placements of one account are serialized, so the funds check sees every
        earlier order) and read its running totals: (exchange, symbol, product) -> [net, open buys, open sells]."""
        rows = await conn.fetch(_LOCK_EXPOSURE, self.account_id)
        if not rows:
            await conn.execute(
                "INSERT INTO paper_accounts (account_id) VALUES ($1) ON CONFLICT DO NOTHING", self.account_id
            )
            rows = await conn.fetch(_LOCK_EXPOSURE, self.account_id)
        return {
            (r["exchange"], r["tradingsymbol"], r["product"]): [r["net_quantity"], r["open_buy"], r["open_sell"]]
            for r in rows
            if r["exchange"] is not None
        }

    def _blocked_margin(
        self,
        exposure: Mapping[tuple[str, str, str], list[int]],
        extra: tuple[Instrument, str, str, int] | None = None,
    ) -> Decimal:
        """Margin blocked by open orders and positions, with an optional extra (new) order.

        Per instrument and product the exposure is the worst case over the open orders filling:
        max(|net + open buys|, |net - open sells|), valued at the current price and multiplied by
        the product's margin rate. A closing order therefore needs no extra margin.
        """
        slots = {key: list(value) for key, value in exposure.items()}
        if extra is not None:
            new, product, side, qty = extra
            slot = slots.setdefault((new.exchange, new.tradingsymbol, product), [0, 0, 0])
            slot[1 if side == "BUY" else 2] += qty
        rates = self.settings.margin
        total = Decimal(0)
        for (exchange, symbol, product), (net, buys, sells) in slots.items():
            instrument = self.instruments.get(exchange, symbol)
            if instrument is None:
                continue
            worst = max(abs(net + buys), abs(net - sells))
            if worst:
                rate = Decimal(repr(getattr(rates, product, 1.0)))
                total += worst * self.ltp(instrument) * rate
        return total

    async def _adjust_exposure(
        self, conn: asyncpg.Connection, row: Mapping[Any, Any], *, open_delta: int = 0, filled: int = 0
    ) -> None:
        """Move `open_delta` on the order's side of the open book and add `filled` to the net position."""
        if not open_delta and not filled:
            return
        buy = row["transaction_type"] == "BUY"
        await conn.execute(
            _ADJUST,
            row["account_id"],
            row["exchange"],
            row["tradingsymbol"],
            row["product"],
            filled if buy else -filled,
            open_delta if buy else 0,
            0 if buy else open_delta,
        )

    def _walk(self, instrument: Instrument, side: str, quantity: int) -> list[tuple[Decimal, int]]:
        """The fills of `quantity` against the visible book now: a buy takes the offers, a sell the bids."""
        bids, offers = depth_book(instrument, self.settings.seed, self.clock())
        return walk(offers if side == "BUY" else bids, quantity, instrument.lot_size)

    def model_depth(self, instrument: Instrument, t: float) -> Depth:
        """The visible book at `t` as a tick's depth (the paper tick feed and quotes show it)."""
        bids, offers = depth_book(instrument, self.settings.seed, t)

        def entries(levels: list[Level]) -> tuple[DepthEntry, ...]:
            return tuple(DepthEntry(price=float(v.price), quantity=v.quantity, orders=v.orders) for v in levels)

        return Depth(buy=entries(bids), sell=entries(offers))

    async def _trade(self, conn: asyncpg.Connection, row: Mapping[Any, Any], price: Decimal, quantity: int) -> None:
        await conn.execute(
            _TRADE,
            row["order_id"],
            row["account_id"],
            row["exchange"],
            row["tradingsymbol"],
            row["instrument_token"],
            row["product"],
            row["transaction_type"],
            quantity,
            price,
        )

    async def _fill(self, conn: asyncpg.Connection, row: Mapping[Any, Any], fill_price: Decimal) -> None:
        qty = int(row["quantity"]) - int(row["filled_quantity"])
        await self._trade(conn, row, fill_price, qty)

    async def _get_row(self, conn: asyncpg.Connection, order_id: str, *, lock: bool = False) -> Mapping[Any, Any]:
        row = await conn.fetchrow(_ORDER_FOR_UPDATE if lock else _ORDER, order_id, self.account_id)
        if row is None:
            raise OrderNotFound(f"Couldn't find that order: {order_id}")
        return row  # type: ignore[no-any-return]

    # ---- the Broker protocol -------------------------------------------------------------------

    async def wait_for_turn(self, operation: str, deadline_at: datetime) -> None:
        """The paper exchange has no rate limits."""

    async def place_order(self, params: PlaceOrderParams) -> PlaceResult:
        await self._simulate_network(mutating=True)
        instrument = self._instrument(params.exchange, params.tradingsymbol)
        problems = check_order(
            instrument,
            quantity=params.quantity,
            order_type=params.order_type,
            price=params.price,
            trigger_price=params.trigger_price,
            disclosed_quantity=params.disclosed_quantity,
        )
        if problems:
            raise BrokerRejected(problems[0][1])
        ltp = self.ltp(instrument)
        self._check_rules(
            instrument,
            product=params.product,
            transaction_type=params.transaction_type,
            order_type=params.order_type,
            quantity=params.quantity,
            price=params.price,
            trigger=params.trigger_price,
            ltp=ltp,
        )
        queued = self._check_session(instrument, params.variety)
        now = utcnow()
        async with self.pool.acquire() as conn, conn.transaction():
            exposure = await self._lock_and_read_exposure(conn)
            blocked = self._blocked_margin(
                exposure, (instrument, params.product, params.transaction_type, params.quantity)
            )
            funds = Decimal(repr(self.settings.funds))
            price = params.price or Decimal(0)
            trigger = params.trigger_price or Decimal(0)
            status_message = None
            fill_price: Decimal | None = None
            holding = exposure.get((params.exchange, params.tradingsymbol, "CNC"), [0, 0, 0])
            sellable = holding[0] - holding[2]  # holdings (T1 included) less what open sells already take
            if params.product == "CNC" and params.transaction_type == "SELL" and params.quantity > sellable:
                status = "REJECTED"
                status_message = holdings_message(params.exchange, params.tradingsymbol, sellable, params.quantity)
            elif blocked > funds:
                already = self._blocked_margin(exposure)
                status = "REJECTED"
                status_message = (
                    f"Insufficient funds. Required margin is {blocked - already:.2f} "
                    f"but available margin is {max(funds - already, Decimal(0)):.2f}."
                )
            elif queued:
                status = AMO_QUEUED
            else:
                initial = "TRIGGER PENDING" if params.order_type in ("SL", "SL-M") else "OPEN"
                status, fill_price = fill_decision(
                    transaction_type=params.transaction_type,
                    order_type=params.order_type,
                    status=initial,
                    price=price,
                    trigger=trigger,
                    ltp=ltp,
                    validity=params.validity,
                )
                if status == "CANCELLED":
                    status_message = IOC_CANCELLED
            buy = params.transaction_type == "BUY"
            filled = params.quantity if fill_price is not None else 0
            average = fill_price or Decimal(0)
            walked: list[tuple[Decimal, int]] = []
            bucket: int | None = None
            if fill_price is not None and params.order_type == "MARKET":
                # a MARKET order takes the visible book; what it cannot fill waits for the next tick's
                bucket = book_bucket(self.clock())
                walked = self._walk(instrument, params.transaction_type, params.quantity)
                filled, average, fill_price = sum(q for _, q in walked), _vwap(walked), None
                if filled < params.quantity:
                    status = "CANCELLED" if params.validity == "IOC" else "OPEN"
                    status_message = IOC_CANCELLED if status == "CANCELLED" else None
            resting = params.quantity - filled if status in OPEN_STATUSES else 0
            cancelled = params.quantity - filled if status == "CANCELLED" else 0
            row = await conn.fetchrow(
                _PLACE,
                self.account_id,
                params.tag,
                params.exchange,
                params.tradingsymbol,
                instrument.instrument_token,
                params.transaction_type,
                params.product,
                params.order_type,
                params.variety,
                params.validity,
                params.quantity,
                params.disclosed_quantity or 0,
                price,
                trigger,
                status,
                status_message,
                filled,
                average,
                now,
                now if status != "REJECTED" else None,
                # the fill and the running totals, in the same statement
                fill_price,
                filled if buy else -filled,
                resting if buy else 0,
                0 if buy else resting,
                cancelled,
                bucket,
            )
            order_id = row["order_id"]
            for level_price, quantity in walked:
                await self._trade(conn, row, level_price, quantity)
        failpoint("paper.after_place_commit")
        self._maybe_lose_answer()
        return PlaceResult(order_id=order_id, order=row_to_order(row))

    async def modify_order(self, params: ModifyOrderParams) -> BrokerOrder:
        await self._simulate_network(mutating=True)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._get_row(conn, params.order_id, lock=True)
            if row["status"] not in OPEN_STATUSES:
                raise BrokerRejected(f"Order cannot be modified as it is {row['status']}.")
            instrument = self._instrument(row["exchange"], row["tradingsymbol"])
            order_type = params.order_type or row["order_type"]
            quantity = params.quantity if params.quantity is not None else int(row["quantity"])
            price = params.price if params.price is not None else Decimal(row["price"])
            trigger = params.trigger_price if params.trigger_price is not None else Decimal(row["trigger_price"])
            if order_type not in ("LIMIT", "SL"):
                price = Decimal(0)
            if order_type not in ("SL", "SL-M"):
                trigger = Decimal(0)
            problems = check_order(
                instrument,
                quantity=quantity,
                order_type=order_type,
                price=price or None,
                trigger_price=trigger or None,
            )
            if problems:
                raise BrokerRejected(problems[0][1])
            if quantity < int(row["filled_quantity"]):
                raise BrokerRejected("Quantity cannot be less than the filled quantity.")
            self._check_rules(
                instrument,
                product=row["product"],
                transaction_type=row["transaction_type"],
                order_type=order_type,
                quantity=quantity,
                price=price or None,
                trigger=trigger or None,
                ltp=self.ltp(instrument),
            )
            status = row["status"]
            if status == AMO_QUEUED:  # still waiting for its session: only its terms change
                return await self._modify_queued(conn, row, order_type, quantity, price, trigger, params.validity)
            if order_type not in ("SL", "SL-M") and status == "TRIGGER PENDING":
                status = "OPEN"
            validity = params.validity or row["validity"]
            status, fill_price = fill_decision(
                transaction_type=row["transaction_type"],
                order_type=order_type,
                status=status,
                price=price,
                trigger=trigger,
                ltp=self.ltp(instrument),
                validity=validity,
            )
            now = utcnow()
            values: dict[str, Any] = {
                "order_type": order_type,
                "quantity": quantity,
                "price": price,
                "trigger_price": trigger,
                "validity": validity,
                "modified": True,
                "status": status,
                "updated_at": now,
            }
            old_pending = int(row["quantity"]) - int(row["filled_quantity"])
            if fill_price is not None:
                await self._fill(conn, {**row, "quantity": quantity}, fill_price)
                values.update(filled_quantity=quantity, average_price=fill_price, exchange_timestamp=now)
                await self._adjust_exposure(
                    conn, row, open_delta=-old_pending, filled=quantity - int(row["filled_quantity"])
                )
            elif status == "CANCELLED":  # IOC, not marketable: the open quantity is released
                values.update(cancelled_quantity=quantity - int(row["filled_quantity"]), status_message=IOC_CANCELLED)
                await self._adjust_exposure(conn, row, open_delta=-old_pending)
            else:
                await self._adjust_exposure(conn, row, open_delta=quantity - int(row["quantity"]))
            new = await conn.fetchrow(
                _MODIFY,
                params.order_id,
                values["order_type"],
                values["quantity"],
                values["price"],
                values["trigger_price"],
                values["validity"],
                values["status"],
                values["updated_at"],
                values.get("filled_quantity"),
                values.get("average_price"),
                values.get("exchange_timestamp"),
                values.get("cancelled_quantity"),
                values.get("status_message"),
            )
        self._maybe_lose_answer()
        return row_to_order(new)

    async def _modify_queued(
        self,
        conn: asyncpg.Connection,
        row: Mapping[str, Any],
        order_type: str,
        quantity: int,
        price: Decimal,
        trigger: Decimal,
        validity: str | None,
    ) -> BrokerOrder:
        """A queued after-market order takes its new terms and keeps waiting for its session."""
        await self._adjust_exposure(conn, row, open_delta=quantity - int(row["quantity"]))
        new = await conn.fetchrow(
            _MODIFY_QUEUED,
            row["order_id"],
            order_type,
            quantity,
            price,
            trigger,
            validity or row["validity"],
            utcnow(),
        )
        return row_to_order(new)

    async def cancel_order(self, order_id: str, variety: str = "regular") -> BrokerOrder:
        await self._simulate_network(mutating=True)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._get_row(conn, order_id, lock=True)
            if row["status"] not in OPEN_STATUSES:
                raise BrokerRejected(f"Order cannot be cancelled as it is {row['status']}.")
            await self._adjust_exposure(conn, row, open_delta=-(int(row["quantity"]) - int(row["filled_quantity"])))
            new = await conn.fetchrow(_CANCEL, order_id, utcnow())
        self._maybe_lose_answer()
        return row_to_order(new)

    async def get_order(self, order_id: str) -> BrokerOrder:
        await self._simulate_network(mutating=False)
        async with self.pool.acquire() as conn:
            return row_to_order(await self._get_row(conn, order_id))

    async def orders(self, skip: Collection[str] = frozenset()) -> list[BrokerOrder]:
        await self._simulate_network(mutating=False)
        rows = await self.pool.fetch(_DAY_BOOK, self.account_id)
        book = []
        for i, row in enumerate(rows, start=1):
            if row["order_id"] not in skip:
                book.append(row_to_order(row))
            if i % 250 == 0:
                await asyncio.sleep(0)  # a day's book is thousands of orders: let requests in between
        return book

    async def orders_by_tag(self, tag: str) -> list[BrokerOrder]:
        await self._simulate_network(mutating=False)
        rows = await self.pool.fetch(
            "SELECT * FROM paper_orders WHERE account_id = $1 AND tag = $2 ORDER BY order_id", self.account_id, tag
        )
        return [row_to_order(r) for r in rows]

    async def positions(self) -> Mapping[str, list[dict[str, Any]]]:
        await self._simulate_network(mutating=False)
        today = datetime.now(IST).date()
        rows = await self.pool.fetch(
            "SELECT * FROM paper_trades WHERE account_id = $1 ORDER BY trade_id", self.account_id
        )
        net: dict[tuple[str, str, str], list[Mapping[Any, Any]]] = defaultdict(list)
        day: dict[tuple[str, str, str], list[Mapping[Any, Any]]] = defaultdict(list)
        for row in rows:
            key = (row["exchange"], row["tradingsymbol"], row["product"])
            net[key].append(row)
            if row["filled_at"].astimezone(IST).date() == today:
                day[key].append(row)
        return {
            "net": [self._position(key, trades, rows_for_day=day.get(key, [])) for key, trades in net.items()],
            "day": [self._position(key, trades, rows_for_day=trades) for key, trades in day.items()],
        }

    def _position(
        self,
        key: tuple[str, str, str],
        trades: list[Mapping[Any, Any]],
        *,
        rows_for_day: list[Mapping[Any, Any]],
    ) -> dict[str, Any]:
        """One position in Kite's shape; `value` is sell value minus buy value, as Kite's is."""
        exchange, symbol, product = key
        instrument = self.instruments.get(exchange, symbol)

        def side(rows: list[Mapping[Any, Any]], kind: str) -> tuple[int, Decimal]:
            picked = [r for r in rows if r["transaction_type"] == kind]
            return sum(int(r["quantity"]) for r in picked), sum(
                (Decimal(r["quantity"]) * Decimal(r["price"]) for r in picked), Decimal(0)
            )

        buy_qty, buy_value = side(trades, "BUY")
        sell_qty, sell_value = side(trades, "SELL")
        day_buy_qty, day_buy_value = side(rows_for_day, "BUY")
        day_sell_qty, day_sell_value = side(rows_for_day, "SELL")
        quantity = buy_qty - sell_qty
        last_price = self.ltp(instrument) if instrument else Decimal(0)
        buy_price = buy_value / buy_qty if buy_qty else Decimal(0)
        sell_price = sell_value / sell_qty if sell_qty else Decimal(0)
        average_price = buy_price if quantity > 0 else sell_price if quantity < 0 else Decimal(0)
        pnl = (sell_value - buy_value) + quantity * last_price
        costs = charges.total(trades, instrument)
        closed = min(buy_qty, sell_qty)
        realised = (sell_price - buy_price) * closed if closed else Decimal(0)
        return {
            "tradingsymbol": symbol,
            "exchange": exchange,
            "instrument_token": instrument.instrument_token if instrument else 0,
            "product": product,
            "quantity": quantity,
            "overnight_quantity": 0,
            "multiplier": 1,
            "average_price": round(float(average_price), 4),
            "close_price": float(instrument.last_price) if instrument else 0.0,
            "last_price": float(last_price),
            "value": float(sell_value - buy_value),
            "pnl": round(float(pnl), 2),
            "m2m": round(float(pnl), 2),
            "unrealised": round(float(pnl - realised), 2),
            "realised": round(float(realised), 2),
            "buy_quantity": buy_qty,
            "buy_price": round(float(buy_price), 4),
            "buy_value": float(buy_value),
            "buy_m2m": float(buy_value),
            "sell_quantity": sell_qty,
            "sell_price": round(float(sell_price), 4),
            "sell_value": float(sell_value),
            "sell_m2m": float(sell_value),
            "day_buy_quantity": day_buy_qty,
            "day_buy_price": round(float(day_buy_value / day_buy_qty), 4) if day_buy_qty else 0.0,
            "day_buy_value": float(day_buy_value),
            "day_sell_quantity": day_sell_qty,
            "day_sell_price": round(float(day_sell_value / day_sell_qty), 4) if day_sell_qty else 0.0,
            "day_sell_value": float(day_sell_value),
            # beyond Kite's fields: what the position's fills cost, and its P&L after them
            "charges": float(costs),
            "pnl_net": round(float(pnl - costs), 2),
        }

    # ---- account views (Kite's shapes) -----------------------------------------------------------

    def today(self) -> date:
        return self.now_ist().date()

    async def holdings(self) -> list[dict[str, Any]]:
        await self._simulate_network(mutating=False)
        rows = await self.pool.fetch(views.CNC_TRADES, self.account_id)
        return views.holdings(rows, self.today(), self.holidays, self.instruments.get, self.ltp)

    async def margins(self) -> dict[str, Any]:
        await self._simulate_network(mutating=False)
        rows = await self.pool.fetch(views.EXPOSURE, self.account_id)
        exposure = {
            (r["exchange"], r["tradingsymbol"], r["product"]): [r["net_quantity"], r["open_buy"], r["open_sell"]]
            for r in rows
        }
        funds = Decimal(repr(self.settings.funds))
        return {
            "equity": views.segment_margin(funds, self._blocked_margin(exposure)),
            "commodity": views.segment_margin(Decimal(0), Decimal(0), enabled=False),
        }

    async def order_trades(self, order_id: str) -> list[dict[str, Any]]:
        await self._simulate_network(mutating=False)
        async with self.pool.acquire() as conn:
            await self._get_row(conn, order_id)  # OrderNotFound for another account's or an unknown id
            rows = await conn.fetch(views.ORDER_TRADES, order_id, self.account_id)
        costs = (
            charges.trade_charges(rows, self.instruments.get(rows[0]["exchange"], rows[0]["tradingsymbol"]))
            if rows
            else []
        )
        return views.order_trades(rows, [charges.as_json(c) for c in costs])

    # ---- quotes: the price model, as the paper tick feed samples it -------------------------------

    def _sampled(self, keys: list[str]) -> list[tuple[str, Instrument, Tick]]:
        feed = PaperTickFeed(self.instruments, model=self, interval=1.0, clock=self.clock)
        out = []
        for key in keys:
            exchange, _, symbol = key.partition(":")
            instrument = self.instruments.get(exchange, symbol)
            if instrument is not None:
                out.append((key, instrument, feed.tick(instrument.instrument_token, "full")))
        return out

    async def quotes(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """Kite's `GET /quote` for `EXCHANGE:SYMBOL` keys (unknown ones are left out, as Kite does)."""
        await self._simulate_network(mutating=False)
        out = {}
        for key, instrument, tick in self._sampled(keys):
            out[key] = quote_from_tick(tick, circuit_limits(instrument, Decimal(repr(tick.last_price))))
        return out

    async def last_prices(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        await self._simulate_network(mutating=False)
        return {key: ltp_from_tick(tick) for key, _, tick in self._sampled(keys)}

    async def reset(self) -> None:
        """Back to the starting funds: no orders, trades, positions or holdings (order ids never repeat)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self._lock_and_read_exposure(conn)  # placements of the account wait for the reset
            for statement in _RESET.values():
                await conn.execute(statement, self.account_id)

    async def close(self) -> None:
        return None

    # ---- the matcher: the paper exchange's own order changes ------------------------------------

    async def _book_fill(self, conn: asyncpg.Connection, row: Mapping[Any, Any], now: datetime) -> BrokerOrder | None:
        """A MARKET order (or a triggered SL-M) takes what this second's visible book offers; None when
        it already took this second's book (it waits for the next tick) or nothing could fill."""
        bucket = book_bucket(self.clock())
        if row["book_bucket"] is not None and bucket <= int(row["book_bucket"]):
            return None
        instrument = self.instruments.get(row["exchange"], row["tradingsymbol"])
        if instrument is None:
            return None
        quantity, before = int(row["quantity"]), int(row["filled_quantity"])
        walked = self._walk(instrument, row["transaction_type"], quantity - before)
        got = sum(q for _, q in walked)
        if not got:
            return None
        for level_price, level_quantity in walked:
            await self._trade(conn, row, level_price, level_quantity)
        filled = before + got
        average = (Decimal(row["average_price"]) * before + _vwap(walked) * got) / filled
        status, cancelled, message = "COMPLETE", None, None
        if filled < quantity:
            ioc = row["validity"] == "IOC"
            status = "CANCELLED" if ioc else "OPEN"
            cancelled, message = (quantity - filled, IOC_CANCELLED) if ioc else (None, None)
        await self._adjust_exposure(conn, row, open_delta=-(got + (cancelled or 0)), filled=got)
        new = await conn.fetchrow(
            _BOOK_FILL, row["order_id"], row["status"], status, now, filled, average, bucket, cancelled, message
        )
        return row_to_order(new) if new is not None else None

    async def order_updates(self) -> AsyncIterator[list[BrokerOrder]]:
        """Fill resting orders as the price crosses them, one pass every `matcher_interval` seconds."""
        while True:
            changed = await self.match_open_orders()
            if changed:
                failpoint("paper.after_match_commit")  # crash tests: filled in the book, not yet recorded
                yield changed
            await asyncio.sleep(self.matcher_interval)

    async def match_open_orders(self) -> list[BrokerOrder]:
        """Fill this account's resting orders that the current price crosses; return the changed ones.

        Each fill is a conditional update of an order still open, under a row lock taken with
        SKIP LOCKED, so an order is never filled twice even if two matchers ever overlapped.
        """
        changed: list[BrokerOrder] = []
        prices = {i.key: self.ltp(i) for i in self.instruments}
        keys = list(prices)
        async with self.pool.acquire() as conn, conn.transaction():
            rows = []
            if not self.settings.enforce_market_hours or self.in_session():
                rows += await conn.fetch(_AMO_DUE, self.account_id)  # after-market orders reach their session
            rows += await conn.fetch(
                _CROSSING, self.account_id, [k[0] for k in keys], [k[1] for k in keys], [prices[k] for k in keys]
            )
            now = utcnow()
            for row in rows:
                ltp = prices.get((row["exchange"], row["tradingsymbol"]))
                if ltp is None:
                    continue
                current = row["status"]
                if current == AMO_QUEUED:
                    current = "TRIGGER PENDING" if row["order_type"] in ("SL", "SL-M") else "OPEN"
                status, fill_price = fill_decision(
                    transaction_type=row["transaction_type"],
                    order_type=row["order_type"],
                    status=current,
                    price=Decimal(row["price"]),
                    trigger=Decimal(row["trigger_price"]),
                    ltp=ltp,
                    validity=row["validity"],
                )
                if fill_price is not None and row["order_type"] in ("MARKET", "SL-M"):
                    walked = await self._book_fill(conn, row, now)
                    if walked is not None:
                        changed.append(walked)
                    continue
                if status == row["status"]:
                    continue
                values: dict[str, Any] = {"status": status, "updated_at": now}
                if fill_price is not None:
                    await self._fill(conn, row, fill_price)
                    values.update(filled_quantity=row["quantity"], average_price=fill_price, exchange_timestamp=now)
                    pending = int(row["quantity"]) - int(row["filled_quantity"])
                    await self._adjust_exposure(conn, row, open_delta=-pending, filled=pending)
                elif status == "CANCELLED":  # a triggered IOC stop that cannot fill at once
                    pending = int(row["quantity"]) - int(row["filled_quantity"])
                    values.update(cancelled_quantity=pending, status_message=IOC_CANCELLED)
                    await self._adjust_exposure(conn, row, open_delta=-pending)
                new = await conn.fetchrow(
                    _MATCH,
                    row["order_id"],
                    row["status"],
                    status,
                    now,
                    values.get("filled_quantity"),
                    values.get("average_price"),
                    values.get("exchange_timestamp"),
                    values.get("cancelled_quantity"),
                    values.get("status_message"),
                )
                if new is not None:
                    changed.append(row_to_order(new))
        return changed


def paper_broker(account_id: str, config: PaperAccount, context: BrokerContext) -> PaperBroker:
    """The registry's factory for `"broker": "paper"` accounts."""
    return PaperBroker(
        account_id,
        config,
        context.pool,
        context.instruments,
        matcher_interval=context.settings.execution.matcher_interval,
        holidays=Holidays(context.settings.market.holidays),
    )
