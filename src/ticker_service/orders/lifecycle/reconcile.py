"""Reconciling an `unknown` task: did its request take effect at the broker?

A placement is looked up by the service's tag; a modification or cancellation by reading the order.
"Not there" is only trusted once the grace period (twice the broker timeout) has passed since the
ambiguous call: a request still travelling must not be taken for one that never arrived, or the
order would be placed twice. Until then, and whenever the broker cannot be read, the task stays
`unknown` and is looked at again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from ticker_service.brokers.base import TERMINAL_ORDER_STATUSES, Broker, BrokerOrder
from ticker_service.orders.lifecycle.outcome import Outcome, OutcomeKind
from ticker_service.orders.lifecycle.states import Operation
from ticker_service.system import metrics

log = structlog.get_logger("ticker.executor")

K = OutcomeKind
_MODIFIABLE = ("quantity", "price", "trigger_price", "order_type", "validity")


async def reconcile(
    task: Mapping[str, Any],
    broker: Broker,
    *,
    timeout: float,
    grace: float,
    seconds_unknown: Callable[[], Awaitable[float | None]],
) -> Outcome:
    """The outcome that the broker's book proves for `task` (never raises)."""

    async def not_found_or_wait(message: str) -> Outcome:
        waited = await seconds_unknown()
        if waited is not None and waited >= grace:
            return Outcome(K.NOT_FOUND, f"{message}; confirmed not placed")
        return Outcome(K.STILL_UNKNOWN, f"{message} yet; waiting out the grace period")

    try:
        if task["operation"] == Operation.PLACE:
            found = await asyncio.wait_for(broker.orders_by_tag(task["broker_tag"]), timeout=timeout)
            if len(found) > 1:
                log.critical(
                    "more than one order carries one task's tag",
                    task_id=task["task_id"],
                    order_ids=[o.order_id for o in found],
                )
                metrics.DUPLICATE_ORDERS.inc()
            if found:
                return Outcome(K.PLACED, order_id=found[0].order_id, order=found[0])
            return await not_found_or_wait("no order with this task's tag")
        order = await asyncio.wait_for(broker.get_order(task["order_id"]), timeout=timeout)
        verdict = change_visible(task, order)
        if verdict is not None:
            return verdict
        what = "the order is still open" if task["operation"] == Operation.CANCEL else "the modification is not visible"
        return await not_found_or_wait(what)
    except Exception as exc:
        log.warning("reconciliation failed; task stays unknown", task_id=task["task_id"], error=str(exc))
        return Outcome(K.STILL_UNKNOWN, f"reconciliation failed: {exc or type(exc).__name__}")


def change_visible(task: Mapping[str, Any], order: BrokerOrder) -> Outcome | None:
    """Whether the order shows the task's modification or cancellation (done), shows it can no
    longer happen (rejected), or neither yet (None)."""
    if task["operation"] == Operation.CANCEL:
        if order.status == "CANCELLED":
            return Outcome(K.DONE, order_id=order.order_id, order=order)
        if order.status in TERMINAL_ORDER_STATUSES:
            return Outcome(K.REJECTED, f"Order cannot be cancelled as it is {order.status}.")
        return None
    params = task["params"]
    wanted = {k: params.get(k) for k in _MODIFIABLE}
    have = {
        "quantity": order.quantity,
        "price": order.price,
        "trigger_price": order.trigger_price,
        "order_type": order.order_type,
        "validity": order.validity,
    }
    if all(v is None or have[k] == v for k, v in wanted.items()):
        return Outcome(K.DONE, order_id=order.order_id, order=order)
    if order.status in TERMINAL_ORDER_STATUSES:
        return Outcome(K.REJECTED, f"Order cannot be modified as it is {order.status}.")
    return None
