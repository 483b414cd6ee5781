"""How a batch moves on: called in the relay's finish transaction of each of its tasks.

Because every step happens in the same transaction as the task's final state, a crash anywhere
leaves the batch consistent: the next leg is claimable exactly when the one before it is resolved,
the remaining legs are skipped in the transaction that records a failure, and rollback tasks are
created with it. The batch row is locked first, so rollback tasks finishing together are serialized.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec

from ticker_service.batches.views import LEGS, SUCCESS_STATUSES, build_view, leg_error, leg_ok, leg_order_status
from ticker_service.brokers.base import OPEN_ORDER_STATUSES
from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.events import task_status_event
from ticker_service.orders.lifecycle.states import BATCH_FINAL, BatchRole, BatchStatus, Operation, TaskStatus
from ticker_service.orders.lifecycle.tasks import new_broker_tag, new_task_id
from ticker_service.outbox.event import NewEvent, new_event
from ticker_service.outbox.writer import notify_task_done

BATCH_EVENTS = tuple(f"batch_{s.value}" for s in BatchStatus if s in BATCH_FINAL)
CANCELLABLE = OPEN_ORDER_STATUSES  # a leg whose order is still working is undone by cancelling it
_encoder = msgspec.json.Encoder()
_ROLL_BACK = f"""
UPDATE batches SET status = '{BatchStatus.ROLLING_BACK.value}', failed_index = $2, failure = $3, rollback = $4::jsonb,
    updated_at = now()
WHERE batch_id = $1
"""


async def _new_task(
    conn: asyncpg.Connection,
    batch: Mapping[str, Any],
    *,
    operation: str,
    params: dict[str, Any],
    index: int,
    role: str,
    order_id: str | None,
    max_attempts: int,
    expires_in: float,
) -> Mapping[str, Any]:
    row = await conn.fetchrow(
        queries.INSERT_BATCH_TASK,
        new_task_id(),
        operation,
        _encoder.encode(params).decode(),
        max_attempts,
        batch["account_id"],
        new_broker_tag(),
        order_id,
        float(expires_in),
        batch["batch_id"],
        index,
        role,
    )
    await conn.execute(queries.WAKE_WORKERS)
    return row  # type: ignore[no-any-return]


def square_off_params(leg: Mapping[str, Any]) -> dict[str, Any]:
    """An opposite MARKET order for what the leg filled."""
    params = leg["params"]
    filled = int(leg["filled_quantity"] or params["quantity"])
    return {
        "exchange": leg["exchange"] or params["exchange"],
        "tradingsymbol": leg["tradingsymbol"] or params["tradingsymbol"],
        "transaction_type": "SELL" if params["transaction_type"] == "BUY" else "BUY",
        "quantity": filled,
        "product": leg["product"] or params["product"],
        "order_type": "MARKET",
        "variety": "regular",
        "validity": "DAY",
        "market_protection": -1,
    }


class BatchProgress:
    """The executor's finish hook for tasks that belong to a batch (see `orders.lifecycle.hooks`)."""

    def __init__(self, max_attempts: int, rollback_expires_in: float) -> None:
        self.max_attempts = max_attempts
        self.rollback_expires_in = rollback_expires_in

    def concerns(self, task: Mapping[str, Any]) -> bool:
        return bool(task.get("batch_id"))

    async def on_task_final(
        self,
        conn: asyncpg.Connection,
        task: Mapping[str, Any],
        status: str,
        result: Mapping[str, Any] | None,
        error: str | None,
    ) -> list[NewEvent]:
        """Advance the task's batch; returns the events to append with the task's own."""
        if not self.concerns(task):
            return []
        batch = await conn.fetchrow("SELECT * FROM batches WHERE batch_id = $1 FOR UPDATE", task["batch_id"])
        if batch is None or batch["status"] in BATCH_FINAL:
            return []
        index: int = task["batch_index"]
        order_status = (result or {}).get("order_status")
        if task["batch_role"] == BatchRole.LEG:
            ok = status == TaskStatus.COMPLETED and order_status in SUCCESS_STATUSES
            return await self._leg_done(conn, batch, index, ok)
        return await self._rollback_done(conn, batch, task, index, status, order_status, error)

    async def _leg_done(
        self, conn: asyncpg.Connection, batch: Mapping[str, Any], index: int, ok: bool
    ) -> list[NewEvent]:
        if ok or not batch["rollback_on_failure"]:
            promoted = await conn.fetchrow(queries.PROMOTE_LEG, batch["batch_id"], index + 1)
            if promoted is not None:
                return [task_status_event(promoted, TaskStatus.PENDING)]
            return await self._finish(conn, batch["batch_id"])
        legs = await conn.fetch(LEGS, batch["batch_id"])
        failure = leg_error(legs[index]) or "failed"
        events: list[NewEvent] = []
        reason = f"not placed: order {index} of the batch failed"
        skipped = await conn.fetch(queries.SKIP_LEGS, batch["batch_id"], reason)
        events += [task_status_event(row, TaskStatus.SKIPPED, error=row["last_error"]) for row in skipped]
        rollback: dict[str, Any] = {}
        for leg in legs[:index]:
            key = str(leg["batch_index"])
            state = leg_order_status(leg)
            if state in CANCELLABLE:
                row = await self._cancel_task(conn, batch, leg)
                rollback[key] = {"outcome": "pending", "action": "cancel", "task_id": row["task_id"]}
                events.append(task_status_event(row, TaskStatus.PENDING))
            elif state == "COMPLETE" and batch["rollback_mode"] == "square_off":
                row = await self._square_off_task(conn, batch, leg)
                rollback[key] = {"outcome": "pending", "action": "square_off", "task_id": row["task_id"]}
                events.append(task_status_event(row, TaskStatus.PENDING))
            elif state == "COMPLETE":
                rollback[key] = {"outcome": "not_rolled_back", "message": "filled; cancel mode does not square off"}
            else:
                rollback[key] = {"outcome": "not_rolled_back", "message": f"the order is {state}; nothing to undo"}
        await conn.execute(
            _ROLL_BACK,
            batch["batch_id"],
            index,
            failure,
            _encoder.encode(rollback).decode(),
        )
        if not any(v["outcome"] == "pending" for v in rollback.values()):
            events += await self._finish(conn, batch["batch_id"])
        return events

    async def _cancel_task(self, conn: asyncpg.Connection, batch: Mapping[str, Any], leg: Mapping[str, Any]) -> Any:
        return await _new_task(
            conn,
            batch,
            operation=Operation.CANCEL,
            params={"variety": leg["params"].get("variety") or "regular"},
            index=leg["batch_index"],
            role=BatchRole.CANCEL,
            order_id=leg["order_id"],
            max_attempts=self.max_attempts,
            expires_in=self.rollback_expires_in,
        )

    async def _square_off_task(self, conn: asyncpg.Connection, batch: Mapping[str, Any], leg: Mapping[str, Any]) -> Any:
        return await _new_task(
            conn,
            batch,
            operation=Operation.PLACE,
            params=square_off_params(leg),
            index=leg["batch_index"],
            role=BatchRole.SQUARE_OFF,
            order_id=None,
            max_attempts=self.max_attempts,
            expires_in=self.rollback_expires_in,
        )

    async def _rollback_done(
        self,
        conn: asyncpg.Connection,
        batch: Mapping[str, Any],
        task: Mapping[str, Any],
        index: int,
        status: str,
        order_status: str | None,
        error: str | None,
    ) -> list[NewEvent]:
        rollback = dict(batch["rollback"])
        key = str(index)
        events: list[NewEvent] = []
        if task["batch_role"] == BatchRole.CANCEL:
            if order_status == "CANCELLED":  # by this task, or already by someone else: undone either way
                rollback[key] = {"outcome": "cancelled", "action": "cancel", "task_id": task["task_id"]}
            elif order_status == "COMPLETE" and batch["rollback_mode"] == "square_off":
                legs = await conn.fetch(LEGS, batch["batch_id"])
                row = await self._square_off_task(conn, batch, legs[index])
                rollback[key] = {"outcome": "pending", "action": "square_off", "task_id": row["task_id"]}
                events.append(task_status_event(row, TaskStatus.PENDING))
            elif order_status == "COMPLETE":
                rollback[key] = {
                    "outcome": "not_rolled_back",
                    "action": "cancel",
                    "task_id": task["task_id"],
                    "message": "filled while its cancel was in flight; cancel mode does not square off",
                }
            else:
                rollback[key] = {
                    "outcome": "failed",
                    "action": "cancel",
                    "task_id": task["task_id"],
                    "message": error or f"cancel ended {status}",
                }
        else:  # square_off
            if status == TaskStatus.COMPLETED and order_status == "COMPLETE":
                rollback[key] = {"outcome": "squared_off", "action": "square_off", "task_id": task["task_id"]}
            else:
                rollback[key] = {
                    "outcome": "failed",
                    "action": "square_off",
                    "task_id": task["task_id"],
                    "message": error or f"square-off order is {order_status or status}",
                }
        await conn.execute(
            "UPDATE batches SET rollback = $2::jsonb, updated_at = now() WHERE batch_id = $1",
            batch["batch_id"],
            _encoder.encode(rollback).decode(),
        )
        if not any(v["outcome"] == "pending" for v in rollback.values()):
            events += await self._finish(conn, batch["batch_id"])
        return events

    async def _finish(self, conn: asyncpg.Connection, batch_id: str) -> list[NewEvent]:
        batch = await conn.fetchrow("SELECT * FROM batches WHERE batch_id = $1", batch_id)
        legs = await conn.fetch(LEGS, batch_id)
        rollback: dict[str, Any] = dict(batch["rollback"])
        error: str | None
        if batch["status"] == BatchStatus.ROLLING_BACK:
            undone = sum(1 for v in rollback.values() if v["outcome"] in ("cancelled", "squared_off"))
            error = (
                f"Order {batch['failed_index']} failed: {batch['failure'].rstrip('.')}. Rolled back {undone} orders."
            )
            for key, value in sorted(rollback.items(), key=lambda kv: int(kv[0])):
                if value["outcome"] == "not_rolled_back":
                    error += f" Order {key} not rolled back: {value['message']}."
                elif value["outcome"] == "failed":
                    error += f" Rolling back order {key} failed: {value['message']}."
            failed_undo = any(v["outcome"] == "failed" for v in rollback.values())
            final = BatchStatus.ROLLBACK_FAILED if failed_undo else BatchStatus.FAILED
        else:
            failures = [f"Order {leg['batch_index']} failed: {leg_error(leg)}" for leg in legs if not leg_ok(leg)]
            final = BatchStatus.FAILED if failures else BatchStatus.COMPLETED
            error = "; ".join(failures) + "." if failures else None
        batch = await conn.fetchrow(
            "UPDATE batches SET status = $2, error = $3, completed_at = now(), updated_at = now() "
            "WHERE batch_id = $1 RETURNING *",
            batch_id,
            final,
            error,
        )
        view = build_view(batch, legs)
        await notify_task_done(conn, batch_id)
        name = f"batch_{final.value}"  # batch_completed, batch_failed, batch_rollback_failed
        return [new_event(name, msgspec.to_builtins(view), task_id=None, order_id=None)]
