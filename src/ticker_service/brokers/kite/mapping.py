"""Kite's shapes to the service's: an order (from the order book, its history, a postback or a
ticker message) becomes a `BrokerOrder`; Kite's naive timestamps are Asia/Kolkata time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ticker_service.brokers.base import BrokerOrder
from ticker_service.timeutil import IST

# Postbacks and the ticker's order messages say UPDATE for a modification or a partial fill: not a
# state of the order (it is still open, or still waiting for its trigger), so the order is read back
PSEUDO_UPDATE = "UPDATE"


def kite_time(value: Any) -> datetime | None:
    """A Kite timestamp ('YYYY-MM-DD HH:MM:SS' in IST, or what kiteconnect parsed it to) as an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=IST)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=IST)


def _num(value: Any) -> float:
    return float(value) if value not in (None, "") else 0.0


def _int(value: Any) -> int:
    return int(value) if value not in (None, "") else 0


def to_order(data: Mapping[str, Any]) -> BrokerOrder:
    """One order in Kite's shape (every source of Kite order state uses this)."""
    return BrokerOrder(
        order_id=str(data["order_id"]),
        status=str(data["status"]),
        status_message=data.get("status_message") or None,
        exchange=str(data["exchange"]),
        tradingsymbol=str(data["tradingsymbol"]),
        transaction_type=str(data["transaction_type"]),
        product=str(data["product"]),
        order_type=str(data["order_type"]),
        variety=str(data.get("variety") or "regular"),
        validity=str(data.get("validity") or "DAY"),
        quantity=_int(data.get("quantity")),
        disclosed_quantity=_int(data.get("disclosed_quantity")),
        price=_num(data.get("price")),
        trigger_price=_num(data.get("trigger_price")),
        filled_quantity=_int(data.get("filled_quantity")),
        pending_quantity=_int(data.get("pending_quantity")),
        cancelled_quantity=_int(data.get("cancelled_quantity")),
        average_price=_num(data.get("average_price")),
        tag=data.get("tag") or None,
        instrument_token=_int(data["instrument_token"]) if data.get("instrument_token") else None,
        order_timestamp=kite_time(data.get("order_timestamp")),
        exchange_timestamp=kite_time(data.get("exchange_timestamp")),
        exchange_order_id=str(data["exchange_order_id"]) if data.get("exchange_order_id") else None,
        modified=bool(data.get("modified", False)),
    )


def latest(history: list[Mapping[str, Any]]) -> BrokerOrder:
    """The order as it is now, from its history (Kite lists the states oldest first)."""
    return to_order(history[-1])


def jsonable(value: Any) -> Any:
    """Kite's answers with kiteconnect's datetimes turned back into Kite's own text form."""
    if isinstance(value, datetime):
        local = value.astimezone(IST) if value.tzinfo is not None else value
        return local.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value
