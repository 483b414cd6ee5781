"""Builders for outbox events. An event is what every listener (WebSocket, webhooks) receives as `data`.

Order events carry the order's Kite fields plus `event`, `task_id` and the client's own `tag`;
task events carry the task's state, as the spec's `task_status` example shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from ticker_service.brokers.base import BrokerOrder

ORDER_EVENTS = (
    "order_placed",
    "order_completed",
    "order_failed",
    "order_cancelled",
    "order_rejected",
    "order_updated",
)
TASK_EVENTS = ("task_status",)
BATCH_EVENTS = ("batch_completed", "batch_failed", "batch_rollback_failed")
ALL_EVENTS = ORDER_EVENTS + TASK_EVENTS + BATCH_EVENTS

STATUS_EVENTS = {"COMPLETE": "order_completed", "REJECTED": "order_rejected", "CANCELLED": "order_cancelled"}


class NewEvent(msgspec.Struct, frozen=True):
    event_id: str
    event: str
    task_id: str | None
    order_id: str | None
    data: dict[str, Any]


def new_event(event: str, data: dict[str, Any], *, task_id: str | None, order_id: str | None) -> NewEvent:
    return NewEvent(
        event_id=str(uuid.uuid4()),
        event=event,
        task_id=task_id,
        order_id=order_id,
        data={"event": event, **data},
    )


def order_data(order: BrokerOrder, *, task_id: str | None, client_tag: str | None) -> dict[str, Any]:
    data = order.to_dict()
    data["broker_tag"] = data.pop("tag", None)
    data["tag"] = client_tag
    data["task_id"] = task_id
    return data


def order_event(event: str, order: BrokerOrder, *, task_id: str | None, client_tag: str | None) -> NewEvent:
    return new_event(
        event, order_data(order, task_id=task_id, client_tag=client_tag), task_id=task_id, order_id=order.order_id
    )


def task_status_event(task: Mapping[Any, Any], status: str, **extra: Any) -> NewEvent:
    """`task_status` with the task's id, new status and result, as the spec shows it."""
    data = {
        "task_id": task["task_id"],
        "status": status,
        "operation": task["operation"],
        "attempts": extra.pop("attempts", task.get("attempts")),
        "order_id": extra.pop("order_id", task.get("order_id")),
        "result": extra.pop("result", None),
        "error": extra.pop("error", None),
        **extra,
    }
    return new_event("task_status", data, task_id=task["task_id"], order_id=data["order_id"])


def task_failure_event(event: str, task: Mapping[Any, Any], message: str) -> NewEvent:
    """`order_failed` or `order_rejected` for a task that never produced an order id."""
    params = task["params"]
    data = {
        "task_id": task["task_id"],
        "operation": task["operation"],
        "order_id": task.get("order_id"),
        "status": "REJECTED" if event == "order_rejected" else "FAILED",
        "status_message": message,
        "tag": params.get("tag"),
        **{k: params.get(k) for k in ("exchange", "tradingsymbol", "transaction_type", "quantity")},
    }
    return new_event(event, data, task_id=task["task_id"], order_id=task.get("order_id"))
