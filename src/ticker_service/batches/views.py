"""The batch record as the API shows it, read in one place for answers and for the batch events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from ticker_service.batches.schemas import BatchView, LegView
from ticker_service.brokers.base import OPEN_ORDER_STATUSES
from ticker_service.orders.lifecycle.states import BATCH_FINAL, BatchRole, BatchStatus, TaskStatus
from ticker_service.timeutil import rfc3339

FINAL = BATCH_FINAL
# A leg succeeds when the broker reports its order working or filled
SUCCESS_STATUSES = OPEN_ORDER_STATUSES | {"COMPLETE"}

# A batch's legs with their orders as the mirror has them
LEGS = f"""
SELECT t.task_id, t.batch_index, t.status, t.order_id, t.last_error, t.result, t.params, t.account_id,
       o.status AS order_status, o.status_message, o.filled_quantity, o.exchange, o.tradingsymbol, o.product,
       o.transaction_type
FROM order_tasks AS t
LEFT JOIN orders AS o ON o.account_id = t.account_id AND o.order_id = t.order_id
WHERE t.batch_id = $1 AND t.batch_role = '{BatchRole.LEG.value}'
ORDER BY t.batch_index
"""


# The legs of several batches at once (a page of the batch list)
LEGS_OF_BATCHES = f"""
SELECT t.batch_id, t.task_id, t.batch_index, t.status, t.order_id, t.last_error, t.result, t.params, t.account_id,
       o.status AS order_status, o.status_message, o.filled_quantity, o.exchange, o.tradingsymbol, o.product,
       o.transaction_type
FROM order_tasks AS t
LEFT JOIN orders AS o ON o.account_id = t.account_id AND o.order_id = t.order_id
WHERE t.batch_id = ANY($1::text[]) AND t.batch_role = '{BatchRole.LEG.value}'
ORDER BY t.batch_id, t.batch_index
"""
# A page of an account's batches, newest first; $2 (statuses) NULL for every status
BATCH_PAGE = """
SELECT * FROM batches
WHERE account_id = ANY($1::text[]) AND ($2::text[] IS NULL OR status = ANY($2::text[]))
ORDER BY created_at DESC, batch_id DESC
LIMIT $3 OFFSET $4
"""


async def load_page(
    pool: asyncpg.Pool, accounts: Sequence[str], statuses: Sequence[str] | None, limit: int, offset: int
) -> list[BatchView]:
    """Batches of these accounts, newest first, each with its legs (two statements for the page)."""
    batches = await pool.fetch(BATCH_PAGE, list(accounts), list(statuses) if statuses else None, limit, offset)
    legs: dict[str, list[Mapping[str, Any]]] = {b["batch_id"]: [] for b in batches}
    for leg in await pool.fetch(LEGS_OF_BATCHES, list(legs)):
        legs[leg["batch_id"]].append(leg)
    return [build_view(b, legs[b["batch_id"]]) for b in batches]


def leg_order_status(leg: Mapping[str, Any]) -> str | None:
    status: str | None = leg["order_status"] or (leg["result"] or {}).get("order_status")
    return status


def leg_ok(leg: Mapping[str, Any]) -> bool:
    return leg["status"] == TaskStatus.COMPLETED and leg_order_status(leg) in SUCCESS_STATUSES


def leg_error(leg: Mapping[str, Any]) -> str | None:
    if leg["status"] == TaskStatus.COMPLETED and leg_order_status(leg) not in SUCCESS_STATUSES:
        return str(leg["status_message"] or f"the order is {leg_order_status(leg)}")
    error: str | None = leg["last_error"]
    return error


async def load_view(conn: asyncpg.Connection | asyncpg.Pool, batch_id: str) -> BatchView | None:
    batch = await conn.fetchrow("SELECT * FROM batches WHERE batch_id = $1", batch_id)
    if batch is None:
        return None
    return build_view(batch, await conn.fetch(LEGS, batch_id))


def build_view(batch: Mapping[str, Any], legs: Sequence[Mapping[str, Any]]) -> BatchView:
    rollback: dict[str, Any] = dict(batch["rollback"])
    views = []
    standing = 0
    for leg in legs:
        undo = rollback.get(str(leg["batch_index"]))
        if leg_ok(leg) and not (undo and undo["outcome"] in ("cancelled", "squared_off")):
            standing += 1
        views.append(
            LegView(
                index=leg["batch_index"],
                task_id=leg["task_id"],
                order_id=leg["order_id"],
                status=leg["status"],
                order_status=leg_order_status(leg),
                error=None if leg_ok(leg) else leg_error(leg),
                rollback=undo,
            )
        )
    return BatchView(
        batch_id=batch["batch_id"],
        success=batch["status"] == BatchStatus.COMPLETED,
        status=batch["status"],
        total_orders=batch["total"],
        succeeded=standing,
        failed=batch["total"] - standing,
        created_at=rfc3339(batch["created_at"]),
        completed_at=rfc3339(batch["completed_at"]),
        error=batch["error"],
        account_id=batch["account_id"],
        rollback_on_failure=batch["rollback_on_failure"],
        rollback_mode=batch["rollback_mode"],
        legs=views,
    )
