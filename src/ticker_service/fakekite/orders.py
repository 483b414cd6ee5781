"""The fake's order book: Kite's order states, a simple matching model, trades, and the history of each order.

Every state an order passes through is kept as a snapshot (that is what `GET /orders/{id}` lists), and
every change a client could be told about is handed to `on_change` with the status Kite pushes for
it: the order's own status, or `UPDATE` for a modification or a partial fill (as Kite's postbacks do).
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ticker_service.fakekite.errors import MAX_MODIFICATIONS, ORDER_NOT_FOUND, input_error
from ticker_service.fakekite.instruments import FakeInstrument
from ticker_service.fakekite.market import Market
from ticker_service.fakekite.timefmt import kite_clock, kite_timestamp, now_ist
from ticker_service.fakekite.validation import (
    PRICED_TYPES,
    PROTECTED_TYPES,
    TRIGGERED_TYPES,
    ModifyRequest,
    PlaceRequest,
    check_market_protection,
    check_modified_prices,
)

FINAL_STATUSES = ("COMPLETE", "CANCELLED", "REJECTED")
RESTING_STATUSES = ("OPEN", "TRIGGER PENDING", "AMO REQ RECEIVED")
MAX_MODIFICATIONS_PER_ORDER = 25  # KITE.md: the 26th is refused


class Pushed:
    """A status Kite pushes (postbacks, ticker order messages) that no order book shows."""

    UPDATE = "UPDATE"  # a modification or a partial fill


ChangeListener = Callable[["Order", str], None]


@dataclass
class Trade:
    trade_id: str
    order_id: str
    exchange_order_id: str
    instrument: FakeInstrument
    product: str
    transaction_type: str
    quantity: int
    price: Decimal
    filled_at: datetime

    def to_json(self) -> dict[str, Any]:
        """As `GET /trades` lists it (`trades.json`)."""
        return {
            "trade_id": self.trade_id,
            "order_id": self.order_id,
            "exchange": self.instrument.exchange,
            "tradingsymbol": self.instrument.tradingsymbol,
            "instrument_token": self.instrument.instrument_token,
            "product": self.product,
            "average_price": float(self.price),
            "quantity": self.quantity,
            "exchange_order_id": self.exchange_order_id,
            "transaction_type": self.transaction_type,
            "fill_timestamp": kite_timestamp(self.filled_at),
            "order_timestamp": kite_clock(self.filled_at),
            "exchange_timestamp": kite_timestamp(self.filled_at),
        }


@dataclass
class Order:
    order_id: str
    variety: str
    instrument: FakeInstrument
    transaction_type: str
    order_type: str
    product: str
    validity: str
    validity_ttl: int
    quantity: int
    disclosed_quantity: int
    price: Decimal
    trigger_price: Decimal
    market_protection: Decimal
    tag: str | None
    placed_by: str
    guid: str | None
    via_api: bool  # placed with this app's api_key: only these get postbacks
    order_timestamp: datetime
    status: str = "PUT ORDER REQ RECEIVED"
    status_message: str | None = None
    status_message_raw: str | None = None
    exchange_order_id: str | None = None
    exchange_timestamp: datetime | None = None
    exchange_update_timestamp: datetime | None = None
    parent_order_id: str | None = None
    filled_quantity: int = 0
    filled_value: Decimal = Decimal(0)
    cancelled_quantity: int = 0
    modified: bool = False
    modifications: int = 0
    auction_number: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pending_quantity(self) -> int:
        # Kite keeps an unfilled cancelled order's pending quantity (orders.json) and zeroes a rejected one's
        if self.status == "REJECTED":
            return 0
        return self.quantity - self.filled_quantity

    @property
    def average_price(self) -> Decimal:
        if not self.filled_quantity:
            return Decimal(0)
        return (self.filled_value / self.filled_quantity).quantize(Decimal("0.0001")).normalize()

    @property
    def is_resting(self) -> bool:
        return self.status in RESTING_STATUSES

    def to_json(self) -> dict[str, Any]:
        """As the order book lists it (`orders.json`, its most recent shape)."""
        data: dict[str, Any] = {
            "account_id": self.placed_by,
            "placed_by": self.placed_by,
            "order_id": self.order_id,
            "exchange_order_id": self.exchange_order_id,
            "parent_order_id": self.parent_order_id,
            "status": self.status,
            "status_message": self.status_message,
            "status_message_raw": self.status_message_raw,
            "order_timestamp": kite_timestamp(self.order_timestamp),
            "exchange_update_timestamp": kite_timestamp(self.exchange_update_timestamp),
            "exchange_timestamp": kite_timestamp(self.exchange_timestamp),
            "variety": self.variety,
            "modified": self.modified,
            "exchange": self.instrument.exchange,
            "tradingsymbol": self.instrument.tradingsymbol,
            "instrument_token": self.instrument.instrument_token,
            "order_type": self.order_type,
            "transaction_type": self.transaction_type,
            "validity": self.validity,
            "validity_ttl": self.validity_ttl,
            "product": self.product,
            "quantity": self.quantity,
            "disclosed_quantity": self.disclosed_quantity,
            "price": float(self.price),
            "trigger_price": float(self.trigger_price),
            "average_price": float(self.average_price),
            "filled_quantity": self.filled_quantity,
            "pending_quantity": self.pending_quantity,
            "cancelled_quantity": self.cancelled_quantity,
            "market_protection": float(self.market_protection),
            "meta": dict(self.meta),
            "tag": self.tag,
            "guid": self.guid,
        }
        if self.auction_number is not None:
            data["auction_number"] = self.auction_number
        if self.tag is not None:
            data["tags"] = [self.tag]
        return data

    def push_json(self, status: str, *, user_id: str, app_id: int, checksum: str) -> dict[str, Any]:
        """As a postback carries it (`postback.json`): the book's fields less those only the book shows,
        plus who and which app, the unfilled quantity and the checksum. The ticker's messages carry the same."""
        data = self.to_json()
        for only_in_book in ("account_id", "modified", "validity_ttl", "auction_number", "tags"):
            data.pop(only_in_book, None)
        unfilled = 0 if status == "COMPLETE" else self.quantity - self.filled_quantity
        head = {"user_id": user_id, "unfilled_quantity": unfilled, "app_id": app_id, "checksum": checksum}
        return {**head, **data, "status": status}


@dataclass(frozen=True, slots=True)
class Rejection:
    """An RMS or exchange rejection the next placement meets after Kite accepted it."""

    message: str
    raw: str | None = None


class _Ids:
    """Order ids in Kite's current 19-digit form, exchange order ids and trade ids; unique per fake."""

    def __init__(self) -> None:
        self._base = int(time.time() * 1000) << 22
        self._seq = itertools.count(1)

    def order(self) -> str:
        return str(self._base + next(self._seq))

    def exchange_order(self) -> str:
        return str(1_300_000_000_000_000 + next(self._seq))

    def trade(self) -> str:
        return str(50_000_000 + next(self._seq))


class OrderBook:
    def __init__(
        self, market: Market, user_id: str, on_change: ChangeListener, *, push_on_placement: bool = True
    ) -> None:
        self.market = market
        self.user_id = user_id
        self.on_change = on_change
        self.push_on_placement = push_on_placement
        self.orders: dict[str, Order] = {}
        self.trades: list[Trade] = []
        self._resting: dict[int, dict[str, Order]] = {}  # by instrument: what a price move can fill
        self._ids = _Ids()

    # lookups

    def get(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise input_error(ORDER_NOT_FOUND)
        return order

    def trades_of(self, order_id: str) -> list[Trade]:
        self.get(order_id)
        return [t for t in self.trades if t.order_id == order_id]

    # transitions

    def _set(self, order: Order, status: str, push: str | None = None) -> None:
        now = now_ist()
        order.status = status
        resting = self._resting.setdefault(order.instrument.instrument_token, {})
        if status in ("OPEN", "TRIGGER PENDING"):
            resting[order.order_id] = order
        else:
            resting.pop(order.order_id, None)
        if order.exchange_order_id is not None:
            order.exchange_update_timestamp = now
        order.history.append(order.to_json())
        if push is not None:
            self.on_change(order, push)

    def _open_on_exchange(self, order: Order) -> None:
        now = now_ist()
        order.exchange_order_id = self._ids.exchange_order()
        order.exchange_timestamp = now
        order.exchange_update_timestamp = now

    def place(self, req: PlaceRequest, *, via_api: bool, rejection: Rejection | None = None) -> Order:
        quantity = req.quantity
        meta: dict[str, Any] = {}
        if req.variety == "iceberg":
            leg_quantity = min(req.iceberg_quantity, req.quantity)
            meta["iceberg"] = {
                "leg": 1,
                "legs": req.iceberg_legs,
                "leg_quantity": leg_quantity,
                "total_quantity": req.quantity,
                "remaining_quantity": req.quantity - leg_quantity,
            }
            quantity = leg_quantity
        order = Order(
            order_id=self._ids.order(),
            variety=req.variety,
            instrument=req.instrument,
            transaction_type=req.transaction_type,
            order_type=req.order_type,
            product=req.product,
            validity=req.validity,
            validity_ttl=req.validity_ttl,
            quantity=quantity,
            disclosed_quantity=req.disclosed_quantity,
            price=req.price,
            trigger_price=req.trigger_price,
            market_protection=req.market_protection,
            tag=req.tag,
            placed_by=self.user_id,
            guid=f"{secrets.randbelow(10**6):06d}X{secrets.token_hex(5)}" if via_api else None,
            via_api=via_api,
            order_timestamp=now_ist(),
            auction_number=req.auction_number,
            meta=meta,
        )
        self.orders[order.order_id] = order
        self._enter(order, rejection)
        return order

    def _enter(self, order: Order, rejection: Rejection | None) -> None:
        """The states Kite walks a new order through, up to where it rests or fills."""
        self._set(order, "PUT ORDER REQ RECEIVED")
        self._set(order, "VALIDATION PENDING")
        if rejection is not None:
            order.status_message = rejection.message
            order.status_message_raw = rejection.raw or f"RMS:{rejection.message}"
            self._set(order, "REJECTED", "REJECTED")
            return
        if order.variety == "amo":
            self._set(order, "AMO REQ RECEIVED", "AMO REQ RECEIVED" if self.push_on_placement else None)
            return
        self._set(order, "OPEN PENDING")
        self._open_on_exchange(order)
        resting = "TRIGGER PENDING" if order.order_type in TRIGGERED_TYPES else "OPEN"
        self._set(order, resting, resting if self.push_on_placement else None)
        self._match(order, at_placement=True)
        if order.validity == "IOC" and order.status == "OPEN":
            self.cancel(order.order_id, by_exchange=True, message="IOC order could not be executed immediately.")

    def modify(self, order_id: str, req: ModifyRequest) -> Order:
        order = self.get(order_id)
        if not order.is_resting:
            raise input_error(f"Order cannot be modified as it is in {order.status} state.")
        if order.modifications >= MAX_MODIFICATIONS_PER_ORDER:
            raise input_error(MAX_MODIFICATIONS)
        order_type = req.order_type or order.order_type
        price = req.price if req.price is not None else order.price
        trigger = req.trigger_price if req.trigger_price is not None else order.trigger_price
        if order_type in PROTECTED_TYPES and (order_type != order.order_type or req.market_protection is not None):
            protection = check_market_protection(order_type, req.market_protection)
        else:
            protection = order.market_protection
        if order_type not in PRICED_TYPES:
            price = Decimal(0)
        if order_type not in TRIGGERED_TYPES:
            trigger = Decimal(0)
        check_modified_prices(order_type, price, trigger, order.instrument)
        quantity = req.quantity if req.quantity is not None else order.quantity
        lot = order.instrument.lot_size
        if quantity < order.filled_quantity or (lot > 1 and quantity % lot):
            raise input_error("Invalid `quantity`.")
        before_status, before_type = order.status, order.order_type
        self._set(order, "MODIFY VALIDATION PENDING")
        self._set(order, "MODIFY PENDING")
        order.order_type, order.price, order.trigger_price, order.quantity = order_type, price, trigger, quantity
        order.market_protection = protection
        if req.validity is not None:
            order.validity = req.validity
        if req.disclosed_quantity is not None:
            order.disclosed_quantity = req.disclosed_quantity
        order.modified = True
        order.modifications += 1
        order.order_timestamp = now_ist()
        self._set(order, "MODIFIED")
        if before_status == "AMO REQ RECEIVED":
            resting = before_status
        elif order_type in TRIGGERED_TYPES and (
            before_status == "TRIGGER PENDING" or before_type not in TRIGGERED_TYPES
        ):
            resting = "TRIGGER PENDING"
        else:
            resting = "OPEN"
        self._set(order, resting, Pushed.UPDATE)
        if resting != "AMO REQ RECEIVED":
            self._match(order, at_placement=True)
        return order

    def cancel(self, order_id: str, *, by_exchange: bool = False, message: str | None = None) -> Order:
        order = self.get(order_id)
        if not order.is_resting:
            raise input_error(f"Order cannot be cancelled as it is in {order.status} state.")
        if not by_exchange:
            self._set(order, "CANCEL PENDING")
        order.cancelled_quantity = order.quantity - order.filled_quantity
        order.status_message = message
        self._set(order, "CANCELLED", "CANCELLED")
        return order

    def fill(self, order_id: str, price: Decimal | None = None, quantity: int | None = None) -> Order:
        """The exchange fills (part of) a resting order, whatever the price model says."""
        order = self.get(order_id)
        if not order.is_resting:
            raise ValueError(f"order {order_id} is {order.status}, not resting")
        remaining = order.quantity - order.filled_quantity
        quantity = remaining if quantity is None else quantity
        if not 0 < quantity <= remaining:
            raise ValueError(f"cannot fill {quantity} of {remaining} pending")
        if order.status == "AMO REQ RECEIVED":
            self._open_on_exchange(order)
            self._set(order, "OPEN", "OPEN" if self.push_on_placement else None)
        elif order.status == "TRIGGER PENDING":
            self._set(order, "OPEN", "OPEN")
        if price is None:
            price = (
                order.price
                if order.order_type in PRICED_TYPES
                else self.market.price(order.instrument.instrument_token)
            )
        self._execute(order, price, quantity)
        return order

    def reprice(self, token: int) -> None:
        """The price of `token` moved: resting orders it crosses trigger or fill."""
        for order in list(self._resting.get(token, {}).values()):
            if order.status in ("OPEN", "TRIGGER PENDING"):
                self._match(order, at_placement=False)

    # matching

    def _match(self, order: Order, *, at_placement: bool) -> None:
        ltp = self.market.price(order.instrument.instrument_token)
        buy = order.transaction_type == "BUY"
        if order.status == "TRIGGER PENDING":
            if not (ltp >= order.trigger_price if buy else ltp <= order.trigger_price):
                return
            self._set(order, "OPEN", "OPEN")
        if order.status != "OPEN":
            return
        remaining = order.quantity - order.filled_quantity
        if order.order_type in ("MARKET", "SL-M"):
            self._execute(order, ltp, remaining)
        elif ltp <= order.price if buy else ltp >= order.price:
            self._execute(order, ltp if at_placement else order.price, remaining)

    def _execute(self, order: Order, price: Decimal, quantity: int) -> None:
        now = now_ist()
        assert order.exchange_order_id is not None
        trade = Trade(
            trade_id=self._ids.trade(),
            order_id=order.order_id,
            exchange_order_id=order.exchange_order_id,
            instrument=order.instrument,
            product=order.product,
            transaction_type=order.transaction_type,
            quantity=quantity,
            price=price,
            filled_at=now,
        )
        self.trades.append(trade)
        self.market.record_fill(order.instrument.instrument_token, price, quantity)
        order.filled_quantity += quantity
        order.filled_value += price * quantity
        if order.filled_quantity < order.quantity:
            self._set(order, "OPEN", Pushed.UPDATE)
            return
        self._set(order, "COMPLETE", "COMPLETE")
        if order.variety == "co" and order.parent_order_id is None:
            self._place_cover_leg(order)
        if order.variety == "iceberg":
            self._place_next_leg(order)

    def _place_cover_leg(self, main: Order) -> None:
        """A cover order's stop-loss leg, resting as soon as the main order completes."""
        leg = Order(
            order_id=self._ids.order(),
            variety="co",
            instrument=main.instrument,
            transaction_type="SELL" if main.transaction_type == "BUY" else "BUY",
            order_type="SL-M",
            product=main.product,
            validity="DAY",
            validity_ttl=0,
            quantity=main.quantity,
            disclosed_quantity=0,
            price=Decimal(0),
            trigger_price=main.trigger_price,
            market_protection=Decimal(-1),
            tag=main.tag,
            placed_by=main.placed_by,
            guid=main.guid,
            via_api=main.via_api,
            order_timestamp=now_ist(),
            parent_order_id=main.order_id,
        )
        self.orders[leg.order_id] = leg
        self._set(leg, "PUT ORDER REQ RECEIVED")
        self._open_on_exchange(leg)
        self._set(leg, "TRIGGER PENDING", "TRIGGER PENDING" if self.push_on_placement else None)
        self._match(leg, at_placement=True)

    def _place_next_leg(self, leg: Order) -> None:
        info = dict(leg.meta["iceberg"])
        if info["remaining_quantity"] <= 0:
            return
        quantity = min(info["leg_quantity"], info["remaining_quantity"])
        info.update(leg=info["leg"] + 1, remaining_quantity=info["remaining_quantity"] - quantity)
        nxt = Order(
            order_id=self._ids.order(),
            variety="iceberg",
            instrument=leg.instrument,
            transaction_type=leg.transaction_type,
            order_type=leg.order_type,
            product=leg.product,
            validity=leg.validity,
            validity_ttl=leg.validity_ttl,
            quantity=quantity,
            disclosed_quantity=0,
            price=leg.price,
            trigger_price=leg.trigger_price,
            market_protection=leg.market_protection,
            tag=leg.tag,
            placed_by=leg.placed_by,
            guid=leg.guid,
            via_api=leg.via_api,
            order_timestamp=now_ist(),
            meta={"iceberg": info},
        )
        self.orders[nxt.order_id] = nxt
        self._enter(nxt, None)
