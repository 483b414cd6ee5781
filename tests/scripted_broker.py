"""A scripted in-memory broker for the executor's tests (procrastinate's InMemoryConnector is the model).

Each mutating call takes the next step of its script: answer, refuse, fail before sending, lose the
answer after taking effect, hang past the timeout, or refuse the session. Its book is a dict, so
reconciliation by tag sees exactly what the script let through. No database, no network.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ticker_service.brokers.base import (
    BrokerAmbiguous,
    BrokerAuthError,
    BrokerOrder,
    BrokerRejected,
    BrokerUnavailable,
    ModifyOrderParams,
    OrderNotFound,
    PlaceOrderParams,
    PlaceResult,
)

Action = Literal["fill", "rest", "reject_order", "refuse", "unavailable", "lose_answer", "hang", "token_expired"]


@dataclass
class Step:
    action: Action
    message: str = ""


@dataclass
class ScriptedBroker:
    account_id: str = "scripted"
    script: deque[Step] = field(default_factory=deque)
    book: dict[str, BrokerOrder] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    skipped: list[set[str]] = field(default_factory=list)  # what each `orders()` was told to leave out
    hang_seconds: float = 60.0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def then(self, action: Action, message: str = "") -> ScriptedBroker:
        self.script.append(Step(action, message))
        return self

    def _next(self) -> Step:
        return self.script.popleft() if self.script else Step("fill")

    async def _before(self, step: Step) -> None:
        if step.action == "hang":
            await asyncio.sleep(self.hang_seconds)
        if step.action == "unavailable":
            raise BrokerUnavailable(step.message or "connection refused")
        if step.action == "token_expired":
            raise BrokerAuthError(step.message or "Incorrect `api_key` or `access_token`.")
        if step.action == "refuse":
            raise BrokerRejected(step.message or "Invalid `tradingsymbol`.")

    async def wait_for_turn(self, operation: str, deadline_at: datetime) -> None:
        return None

    async def place_order(self, params: PlaceOrderParams) -> PlaceResult:
        self.calls.append("place")
        step = self._next()
        await self._before(step)
        order_id = f"SCR{next(self._ids):06d}"
        status = {"fill": "COMPLETE", "rest": "OPEN", "reject_order": "REJECTED"}.get(step.action, "COMPLETE")
        order = BrokerOrder(
            order_id=order_id,
            status=status,
            status_message=step.message or None,
            exchange=params.exchange,
            tradingsymbol=params.tradingsymbol,
            transaction_type=params.transaction_type,
            product=params.product,
            order_type=params.order_type,
            quantity=params.quantity,
            filled_quantity=params.quantity if status == "COMPLETE" else 0,
            tag=params.tag,
        )
        self.book[order_id] = order
        if step.action == "lose_answer":  # it took effect; the answer never arrives
            raise BrokerAmbiguous("connection reset after the request was sent")
        return PlaceResult(order_id=order_id, order=order)

    async def modify_order(self, params: ModifyOrderParams) -> BrokerOrder:
        self.calls.append("modify")
        step = self._next()
        await self._before(step)
        order = self._order(params.order_id)
        if params.quantity is not None:
            order.quantity = params.quantity
        if params.price is not None:
            order.price = float(params.price)
        if step.action == "lose_answer":
            raise BrokerAmbiguous("connection reset after the request was sent")
        return order

    async def cancel_order(self, order_id: str, variety: str = "regular") -> BrokerOrder:
        self.calls.append("cancel")
        step = self._next()
        await self._before(step)
        order = self._order(order_id)
        if order.status != "OPEN":
            raise BrokerRejected(f"Order cannot be cancelled as it is {order.status}.")
        order.status = "CANCELLED"
        if step.action == "lose_answer":
            raise BrokerAmbiguous("connection reset after the request was sent")
        return order

    def _order(self, order_id: str) -> BrokerOrder:
        if order_id not in self.book:
            raise OrderNotFound(f"Couldn't find that order: {order_id}")
        return self.book[order_id]

    async def get_order(self, order_id: str) -> BrokerOrder:
        return self._order(order_id)

    async def orders(self, skip: Collection[str] = frozenset()) -> list[BrokerOrder]:
        self.skipped.append(set(skip))
        return [o for o in self.book.values() if o.order_id not in skip]

    async def orders_by_tag(self, tag: str) -> list[BrokerOrder]:
        return [o for o in self.book.values() if o.tag == tag]

    async def positions(self) -> Mapping[str, list[dict[str, Any]]]:
        return {"net": [], "day": []}

    async def order_updates(self) -> AsyncIterator[list[BrokerOrder]]:
        while True:  # nothing happens on its own at this broker
            await asyncio.sleep(3600)
            yield []

    async def close(self) -> None:
        return None
