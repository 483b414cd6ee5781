"""The service's mirror of broker orders, and the events a change of an order produces.

Every source of order state (the executor's answers, each broker's order-update stream, reconciliation)
funnels through `apply_snapshot`, which is the single place that decides whether a snapshot is
news. It is deduplicated on the order's state (status, filled quantity and the modifiable fields),
and never moves an order backwards: a terminal order stays terminal and fills never shrink. So the
same fill seen by the matcher and by reconciliation produces its event once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import asyncpg

from ticker_service.brokers.base import TERMINAL_ORDER_STATUSES, Broker, BrokerOrder
from ticker_service.orders.lifecycle.events import STATUS_EVENTS, order_event
from ticker_service.outbox.event import NewEvent
from ticker_service.outbox.writer import append_events

_COMPARED = ("status", "filled_quantity", "quantity", "price", "trigger_price", "order_type", "validity")


def _state(values: Mapping[Any, Any]) -> tuple[Any, ...]:
    return tuple(Decimal(str(values[k])) if k in ("price", "trigger_price") else values[k] for k in _COMPARED)


_VALUE_COLUMNS = (
    "exchange",
    "tradingsymbol",
    "transaction_type",
    "product",
    "order_type",
    "variety",
    "validity",
    "quantity",
    "price",
    "trigger_price",
    "status",
    "status_message",
    "filled_quantity",
    "average_price",
    "snapshot",
)


def _row_values(order: BrokerOrder) -> dict[str, Any]:
    return {
        "exchange": order.exchange,
        "tradingsymbol": order.tradingsymbol,
        "transaction_type": order.transaction_type,
        "product": order.product,
        "order_type": order.order_type,
        "variety": order.variety,
        "validity": order.validity,
        "quantity": order.quantity,
        "price": Decimal(repr(order.price)),
        "trigger_price": Decimal(repr(order.trigger_price)),
        "status": order.status,
        "status_message": order.status_message,
        "filled_quantity": order.filled_quantity,
        "average_price": Decimal(repr(order.average_price)),
        "snapshot": order.to_dict(),
    }


def events_for_change(
    old: Mapping[Any, Any] | None, order: BrokerOrder, *, task_id: str | None, client_tag: str | None
) -> list[NewEvent]:
    """The events that moving from `old` (None: never seen) to `order` means."""
    events: list[NewEvent] = []
    if old is None:
        # `order_placed` means successfully placed: an order refused at once (insufficient funds,
        # RMS) is announced only as rejected
        if order.status != "REJECTED":
            events.append(order_event("order_placed", order, task_id=task_id, client_tag=client_tag))
        if order.status in STATUS_EVENTS:
            events.append(order_event(STATUS_EVENTS[order.status], order, task_id=task_id, client_tag=client_tag))
        elif order.filled_quantity > 0:
            events.append(order_event("order_updated", order, task_id=task_id, client_tag=client_tag))
        return events
    if order.status != old["status"] and order.status in STATUS_EVENTS:
        events.append(order_event(STATUS_EVENTS[order.status], order, task_id=task_id, client_tag=client_tag))
    else:
        events.append(order_event("order_updated", order, task_id=task_id, client_tag=client_tag))
    return events


def is_regression(old: Mapping[Any, Any], order: BrokerOrder) -> bool:
    """A snapshot older than what we have: never let it overwrite newer state."""
    if old["status"] in TERMINAL_ORDER_STATUSES:
        return True
    return order.filled_quantity < int(old["filled_quantity"])


async def _task_for_tag(conn: asyncpg.Connection, tag: str | None) -> tuple[str | None, str | None]:
    if not tag:
        return None, None
    row = await conn.fetchrow("SELECT task_id, params->>'tag' FROM order_tasks WHERE broker_tag = $1", tag)
    return (row[0], row[1]) if row else (None, None)


_INSERT = """
INSERT INTO orders (account_id, order_id, task_id, broker_tag, client_tag, exchange, tradingsymbol,
                    transaction_type, product, order_type, variety, validity, quantity, price, trigger_price,
                    status, status_message, filled_quantity, average_price, snapshot, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, now(), now())
ON CONFLICT DO NOTHING
RETURNING order_id
"""
_OLD = "SELECT * FROM orders WHERE account_id = $1 AND order_id = $2 FOR UPDATE"
_UPDATE = """
UPDATE orders SET task_id = $3, client_tag = $4, exchange = $5, tradingsymbol = $6, transaction_type = $7,
    product = $8, order_type = $9, variety = $10, validity = $11, quantity = $12, price = $13, trigger_price = $14,
    status = $15, status_message = $16, filled_quantity = $17, average_price = $18, snapshot = $19, updated_at = now()
WHERE account_id = $1 AND order_id = $2
"""


def _columns(values: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(values[k] for k in _VALUE_COLUMNS)


async def apply_snapshot(
    conn: asyncpg.Connection,
    account_id: str,
    order: BrokerOrder,
    *,
    task_id: str | None = None,
    client_tag: str | None = None,
) -> list[NewEvent]:
    """Record `order` in the mirror inside the caller's transaction; return the events to append."""
    if task_id is None:
        task_id, client_tag = await _task_for_tag(conn, order.tag)
    values = _row_values(order)
    inserted = await conn.fetchval(
        _INSERT, account_id, order.order_id, task_id, order.tag, client_tag, *_columns(values)
    )
    if inserted is not None:
        return events_for_change(None, order, task_id=task_id, client_tag=client_tag)
    old = await conn.fetchrow(_OLD, account_id, order.order_id)
    task_id = task_id or old["task_id"]
    client_tag = client_tag or old["client_tag"]
    if is_regression(old, order) or _state(old) == _state(values):
        return []
    await conn.execute(
        _UPDATE,
        account_id,
        order.order_id,
        old["task_id"] or task_id,
        old["client_tag"] or client_tag,
        *_columns(values),
    )
    return events_for_change(old, order, task_id=task_id, client_tag=client_tag)


def mirror_row_to_order(row: Mapping[Any, Any]) -> dict[str, Any]:
    """An order as the API shows it: the broker's snapshot plus the service's own references."""
    data = dict(row["snapshot"])
    data.update(
        order_id=row["order_id"],
        status=row["status"],
        filled_quantity=row["filled_quantity"],
        average_price=float(row["average_price"]),
        broker_tag=row["broker_tag"],
        tag=row["client_tag"],
        task_id=row["task_id"],
        account_id=row["account_id"],
    )
    return data


async def record_orders(pool: asyncpg.Pool, account_id: str, changed: Iterable[BrokerOrder]) -> int:
    """Apply broker snapshots to the mirror, one transaction (and its events) per order."""
    events_written = 0
    for order in changed:
        async with pool.acquire() as conn, conn.transaction():
            events = await apply_snapshot(conn, account_id, order)
            await append_events(conn, account_id, events)
            events_written += len(events)
    return events_written


async def follow_order_updates(pool: asyncpg.Pool, broker: Broker) -> None:
    """Record each change of the broker's order-update stream as it comes (until cancelled)."""
    async for changed in broker.order_updates():
        await record_orders(pool, broker.account_id, changed)
