"""The payloads of task and order events, built here and nowhere else.

Order events carry the order's Kite fields plus `event`, `task_id` and the client's own `tag`;
task events carry the task's state, as the spec's `task_status` example shows. The claim writes
its `running` event inside SQL (one statement, one round trip), so `task_status_sql` renders the
same payload as `task_status_data` as a SQL expression from the same field list; a test compares
the two on a real row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ticker_service.brokers.base import BrokerOrder
from ticker_service.outbox.event import NewEvent, new_event

ORDER_EVENTS = (
    "order_placed",
    "order_completed",
    "order_failed",
    "order_cancelled",
    "order_rejected",
    "order_updated",
)
TASK_EVENTS = ("task_status",)

# An order's terminal status and the event that announces it
STATUS_EVENTS = {"COMPLETE": "order_completed", "REJECTED": "order_rejected", "CANCELLED": "order_cancelled"}


def task_status_data(task: Mapping[Any, Any], status: str, **extra: Any) -> dict[str, Any]:
    """`task_status` with the task's id, new status and result, as the spec shows it."""
    return {
        "task_id": task["task_id"],
        "status": str(status),
        "operation": task["operation"],
        "attempts": extra.pop("attempts", task.get("attempts")),
        "order_id": extra.pop("order_id", task.get("order_id")),
        "result": extra.pop("result", None),
        "error": extra.pop("error", None),
        **extra,
    }


def task_status_sql(row: str, status: str, **extra: str) -> str:
    """The payload of `task_status_data(row, status, **extra)` as a SQL expression.

    `row` names the task row in the statement; `status` and each extra are SQL expressions.
    """
    pairs = {"event": "'task_status'::text"}
    pairs |= {"task_id": f"{row}.task_id", "status": status, "operation": f"{row}.operation"}
    pairs |= {"attempts": f"{row}.attempts", "order_id": f"{row}.order_id", "result": "NULL", "error": "NULL"}
    pairs |= extra
    return "jsonb_build_object(" + ", ".join(f"'{key}', {value}" for key, value in pairs.items()) + ")"


def task_status_event(task: Mapping[Any, Any], status: str, **extra: Any) -> NewEvent:
    data = task_status_data(task, status, **extra)
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


def order_data(order: BrokerOrder, *, task_id: str | None, client_tag: str | None) -> dict[str, Any]:
    data = order.to_dict()
    data["broker_tag"] = data.pop("tag", None)
    data["tag"] = client_tag
    data["task_id"] = task_id
    data["external"] = task_id is None  # placed outside the service (Kite web or app): no task
    return data


def order_event(event: str, order: BrokerOrder, *, task_id: str | None, client_tag: str | None) -> NewEvent:
    return new_event(
        event, order_data(order, task_id=task_id, client_tag=client_tag), task_id=task_id, order_id=order.order_id
    )
