"""The ticker's JSON text messages: order updates, errors and notices (KITE.md, "Ticker WebSocket").

An order message is an order event of the account (from any platform, not only this app), so it
must reach the order mirror even when a field has a type we did not expect: typed fields are a
convenience, `raw` keeps the message's data exactly as Kite sent it, and a message whose typed
reading fails still comes through with its order id, status and `raw`. Only a message without an
order id is refused: nothing could be done with it, and reconciliation covers it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from ticker_service.timeutil import IST

_TIMESTAMP_FIELDS = ("order_timestamp", "exchange_timestamp", "exchange_update_timestamp")


class MalformedMessageError(ValueError):
    """A text message that is not JSON, not an object, or an order message without an order id."""


class OrderUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """An order as Kite's postbacks and ticker order messages show it (`kite-mocks/postback.json`).

    Timestamps, naive Asia/Kolkata times on the wire, are aware datetimes here. `typed` is False when
    the typed reading failed and only `order_id`, `status` and `raw` are filled.
    """

    order_id: str
    status: str | None = None
    status_message: str | None = None
    status_message_raw: str | None = None
    exchange_order_id: str | None = None
    parent_order_id: str | None = None
    user_id: str | None = None
    placed_by: str | None = None
    app_id: int | None = None
    order_timestamp: datetime | None = None
    exchange_timestamp: datetime | None = None
    exchange_update_timestamp: datetime | None = None
    variety: str | None = None
    exchange: str | None = None
    tradingsymbol: str | None = None
    instrument_token: int | None = None
    order_type: str | None = None
    transaction_type: str | None = None
    validity: str | None = None
    validity_ttl: int | None = None
    product: str | None = None
    quantity: int | None = None
    disclosed_quantity: int | None = None
    price: float | None = None
    trigger_price: float | None = None
    average_price: float | None = None
    filled_quantity: int | None = None
    pending_quantity: int | None = None
    cancelled_quantity: int | None = None
    unfilled_quantity: int | None = None
    market_protection: float | None = None
    meta: dict[str, Any] | None = None
    tag: str | None = None
    tags: list[str] | None = None
    guid: str | None = None
    modified: bool | None = None
    checksum: str | None = None  # blank on the ticker; only postbacks are signed
    raw: dict[str, Any] = msgspec.field(default_factory=dict)
    typed: bool = True


class ErrorMessage(msgspec.Struct, frozen=True):
    message: str


class Notice(msgspec.Struct, frozen=True):
    """A `{"type": "message"}` broadcast: informational, nothing acts on it."""

    data: Any


class UnknownMessage(msgspec.Struct, frozen=True):
    type: str | None
    raw: dict[str, Any]


TextMessage = OrderUpdate | ErrorMessage | Notice | UnknownMessage

_decoder = msgspec.json.Decoder()


def parse_text_message(payload: str | bytes) -> TextMessage:
    try:
        message = _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise MalformedMessageError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedMessageError(f"a JSON {type(message).__name__}, not an object")
    kind = message.get("type")
    data = message.get("data")
    if kind == "order":
        if not isinstance(data, dict):
            raise MalformedMessageError("order message without an order object")
        return parse_order_update(data)
    if kind == "error":
        return ErrorMessage(message=data if isinstance(data, str) else msgspec.json.encode(data).decode())
    if kind == "message":
        return Notice(data=data)
    return UnknownMessage(type=kind if isinstance(kind, str) else None, raw=message)


def parse_order_update(data: dict[str, Any]) -> OrderUpdate:
    order_id = data.get("order_id")
    if order_id is None or order_id == "":
        raise MalformedMessageError("order message without an order_id")
    fields = {k: v for k, v in data.items() if k in _FIELD_NAMES}
    try:
        update = msgspec.convert(fields, OrderUpdate, strict=False)
    except msgspec.ValidationError:
        status = data.get("status")
        return OrderUpdate(
            order_id=str(order_id),
            status=status if isinstance(status, str) else None,
            raw=dict(data),
            typed=False,
        )
    changes: dict[str, Any] = {"raw": dict(data)}
    for name in _TIMESTAMP_FIELDS:
        value = getattr(update, name)
        if value is not None and value.tzinfo is None:
            changes[name] = value.replace(tzinfo=IST)
    return msgspec.structs.replace(update, **changes)


_FIELD_NAMES = frozenset(OrderUpdate.__struct_fields__) - {"raw", "typed"}
