"""Request and response schemas (msgspec). Field names follow Kite Connect and the spec."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Exchange = Literal["NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX"]
TransactionType = Literal["BUY", "SELL"]
Product = Literal["CNC", "NRML", "MIS", "MTF"]
OrderType = Literal["MARKET", "LIMIT", "SL", "SL-M"]
Variety = Literal["regular", "amo", "co", "iceberg", "auction"]
Validity = Literal["DAY", "IOC", "TTL"]

Price = Annotated[float, Meta(ge=0, le=1e9)]
Quantity = Annotated[int, Meta(gt=0, le=10_000_000)]
AccountId = Annotated[str, Meta(min_length=1, max_length=64)]
ClientTag = Annotated[str, Meta(max_length=20)]
ExpiresIn = Annotated[float, Meta(gt=0, le=86_400)]


class OrderFields(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An order's own fields, as a single order and each leg of a batch take them. `tag` is the
    client's own (stored and returned); the broker gets the service's tag."""

    exchange: Exchange
    tradingsymbol: Annotated[str, Meta(min_length=1, max_length=64)]
    transaction_type: TransactionType
    quantity: Quantity
    product: Product
    order_type: OrderType
    variety: Variety = "regular"
    price: Price | None = None
    trigger_price: Price | None = None
    validity: Validity = "DAY"
    disclosed_quantity: Annotated[int, Meta(ge=0)] | None = None
    validity_ttl: Annotated[int, Meta(ge=1, le=1440)] | None = None  # minutes, with validity TTL
    iceberg_legs: Annotated[int, Meta(ge=2, le=10)] | None = None  # with variety iceberg
    iceberg_quantity: Quantity | None = None
    auction_number: Annotated[str, Meta(min_length=1, max_length=20)] | None = None  # with variety auction
    tag: ClientTag | None = None


class PlaceOrderRequest(OrderFields, forbid_unknown_fields=True, kw_only=True):
    """One order: its fields plus how to place it."""

    market_protection: Annotated[float, Meta(ge=-1, le=100)] | None = None
    expires_in: ExpiresIn | None = None
    account_id: AccountId = "primary"
    # Kite's autoslice: an order above the freeze quantity goes as up to 10 slices, placed as one batch
    autoslice: bool = False


class ModifyOrderRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    quantity: Quantity | None = None
    price: Price | None = None
    trigger_price: Price | None = None
    order_type: OrderType | None = None
    validity: Validity | None = None
    expires_in: ExpiresIn | None = None


class TaskView(msgspec.Struct, kw_only=True):
    """A task as every order answer and /tasks show it."""

    task_id: str
    status: str
    order_id: str | None
    account_id: str
    operation: str
    attempts: int
    max_attempts: int
    tag: str | None
    broker_tag: str
    error: str | None
    created_at: str | None
    updated_at: str | None
    deadline_at: str | None
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    order: dict[str, Any] | None = None
    order_status: str | None = None
    message: str | None = None


class ErrorBody(msgspec.Struct, kw_only=True):
    status_code: int
    detail: str
    field: str | None = None
    errors: list[dict[str, str]] | None = None
