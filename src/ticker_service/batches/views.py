"""The batch record as the API shows it, read in one place for answers and for the batch events."""

from __future__ import annotations

from typing import Any

import asyncpg

from ticker_service.batches.progress import _LEGS, leg_error, leg_ok, leg_order_status
from ticker_service.batches.schemas import BatchView, LegView
from ticker_service.timeutil import rfc3339

FINAL = frozenset({"completed", "failed", "rollback_failed"})


async def load_view(conn: asyncpg.Connection | asyncpg.Pool, batch_id: str) -> BatchView | None:
    batch = await conn.fetchrow("SELECT * FROM batches WHERE batch_id = $1", batch_id)
    if batch is None:
        return None
    legs = await conn.fetch(_LEGS, batch_id)
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
        success=batch["status"] == "completed",
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
