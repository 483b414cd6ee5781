"""Reading an account's views from its broker, with the broker's failures turned into answers.

The views are the broker's own (the paper exchange's book, or Kite through `kiteconnect`), in Kite's
shapes, so a client written for Kite reads either. An order the account does not have is a 404; a
broker that cannot answer is a 503 naming the view, never a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from ticker_service.brokers.base import AccountViews, Broker, BrokerError, OrderNotFound, Resettable
from ticker_service.system.errors import ApiError, FieldError

T = TypeVar("T")
MARGIN_SEGMENTS = ("equity", "commodity")


def _views(broker: Broker) -> AccountViews:
    if not isinstance(broker, AccountViews):
        raise ApiError(501, "this account's broker does not offer holdings, margins or trades")
    return broker


async def _read(what: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except OrderNotFound:
        raise
    except BrokerError as exc:
        raise ApiError(503, f"the broker's {what} are unavailable: {exc}") from None


async def holdings(broker: Broker) -> list[dict[str, Any]]:
    return await _read("holdings", _views(broker).holdings())


async def margins(broker: Broker, segment: str | None = None) -> dict[str, Any]:
    if segment is not None and segment not in MARGIN_SEGMENTS:
        raise FieldError("segment", f"unknown segment {segment[:40]!r}; one of {', '.join(MARGIN_SEGMENTS)}")
    everything = await _read("margins", _views(broker).margins())
    if segment is None:
        return everything
    part: dict[str, Any] = everything.get(segment) or {}
    return part


async def order_trades(broker: Broker, order_id: str) -> list[dict[str, Any]]:
    try:
        return await _read("trades", _views(broker).order_trades(order_id))
    except OrderNotFound:
        raise ApiError(404, f"order_id: no order {order_id[:100]!r}") from None


async def reset(broker: Broker) -> None:
    """Start a simulated account over; a live broker's account cannot be (422 naming the account)."""
    if not isinstance(broker, Resettable):
        raise FieldError("account_id", "only a paper account can be reset; this account trades at a live broker")
    await broker.reset()
