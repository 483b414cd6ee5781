"""The periodic jobs that keep the service's view consistent with the broker's.

* `sweep_expired_leases` (every process): a `running` task whose lease ran out had its worker die or
  hang mid-call, so its outcome is unknown; it moves to `unknown` and is reconciled by tag.
* `reconcile_orders` (singleton): compares each account's broker order book with the mirror and
  records what changed. This repairs an event lost to a crash between a broker-side change (a
  paper fill, a Kite update) and the service recording it.
* `cleanup` (singleton, cron): deletes finished tasks and old events after the retention period.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

import asyncpg
import structlog
from croniter import croniter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ticker_service.brokers.base import TERMINAL_ORDER_STATUSES, Broker, BrokerOrder
from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.events import task_status_event
from ticker_service.orders.lifecycle.states import BATCH_FINAL, BatchStatus, TaskStatus, sql_values
from ticker_service.orders.mirror import record_orders
from ticker_service.outbox.writer import append_events
from ticker_service.system import metrics
from ticker_service.timeutil import IST

log = structlog.get_logger("ticker.jobs")


async def sweep_expired_leases(pool: asyncpg.Pool, grace_seconds: float, limit: int = 100) -> int:
    """Move `running` tasks with an expired lease to `unknown`, one transaction per task."""
    moved = 0
    message = "lease expired during the broker call (worker died or stalled); outcome unknown"
    for _ in range(limit):
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(queries.EXPIRED_LEASE)
            if row is None:
                return moved
            await conn.execute(queries.LEASE_TO_UNKNOWN, row["task_id"], float(grace_seconds), message)
            await append_events(conn, row["account_id"], [task_status_event(row, TaskStatus.UNKNOWN, error=message)])
        metrics.LEASES_EXPIRED.inc()
        log.warning("lease expired; task moved to unknown", task_id=row["task_id"])
        moved += 1
    return moved


def _differs(mirror: tuple[str, int, Decimal, int, Decimal] | None, order: BrokerOrder) -> bool:
    if mirror is None:
        return True
    status, filled, price, quantity, trigger = mirror
    return (status, filled, quantity) != (order.status, order.filled_quantity, order.quantity) or (
        price != Decimal(repr(order.price)) or trigger != Decimal(repr(order.trigger_price))
    )


_FINAL = ", ".join(f"'{status}'" for status in sorted(TERMINAL_ORDER_STATUSES))
_FINAL_ORDER_IDS = f"SELECT array_agg(order_id) FROM orders WHERE account_id = $1 AND status IN ({_FINAL})"
_OPEN_IN_MIRROR = f"""
SELECT order_id, status, filled_quantity, price, quantity, trigger_price FROM orders
WHERE account_id = $1 AND status NOT IN ({_FINAL})
"""


async def reconcile_orders(pool: asyncpg.Pool, brokers: dict[str, Broker]) -> int:
    """Record every order whose broker state differs from the mirror; returns events written."""
    total = 0
    for account_id, broker in brokers.items():
        # an order final in the mirror never changes again (a later snapshot would be a regression):
        # the broker is told to leave those out, so a day's book of thousands is not mapped each pass
        final = await pool.fetchval(_FINAL_ORDER_IDS, account_id)
        try:
            book = await broker.orders(skip=frozenset(final or ()))
        except Exception as exc:
            log.warning("reconciliation could not read the order book", account_id=account_id, error=str(exc))
            continue
        rows = await pool.fetch(_OPEN_IN_MIRROR, account_id)
        mirror = {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}
        changed = []
        for i, order in enumerate(book, start=1):
            if _differs(mirror.get(order.order_id), order):
                changed.append(order)
            if i % 250 == 0:
                await asyncio.sleep(0)  # a pass over thousands of orders must not stall the requests
        if changed:
            written = await record_orders(pool, account_id, changed)
            if written:
                metrics.RECONCILED_ORDERS.inc(written)
                log.info("reconciliation recorded order changes", account_id=account_id, events=written)
            total += written
    return total


class CleanupSchedule:
    """Fires on a cron schedule in Asia/Kolkata time."""

    def __init__(self, expression: str, now: datetime | None = None) -> None:
        self.expression = expression
        self.next_fire = self._after(now or datetime.now(IST))

    def _after(self, moment: datetime) -> datetime:
        fire: datetime = croniter(self.expression, moment.astimezone(IST)).get_next(datetime)
        return fire

    def due(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(IST)
        if now >= self.next_fire:
            self.next_fire = self._after(now)
            return True
        return False


_CLEANUP = {
    "tasks": queries.CLEANUP_TASKS,
    "batches": f"""
        DELETE FROM batches AS b
        WHERE b.status IN {sql_values(s for s in BatchStatus if s in BATCH_FINAL)} AND b.completed_at < :cutoff
          AND NOT EXISTS (SELECT 1 FROM order_tasks AS t WHERE t.batch_id = b.batch_id)
    """,
    "events": "DELETE FROM outbox_events WHERE created_at < :cutoff",
    "orders": "DELETE FROM orders WHERE status IN ('COMPLETE', 'CANCELLED', 'REJECTED') AND updated_at < :cutoff",
    "deliveries": "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'dead') AND updated_at < :cutoff",
}


async def cleanup(engine: AsyncEngine, retention_days: float) -> dict[str, int]:
    """Delete finished tasks and batches, terminal mirror orders, events and finished webhook
    deliveries older than the retention.

    Never less than a day, so Idempotency-Keys are honoured for at least 24 hours; dead letters,
    anything unresolved and the tasks of unfinished batches are kept whatever their age.
    """
    async with engine.begin() as conn:
        cutoff = (
            await conn.execute(
                text("SELECT now() - CAST(:d AS float8) * interval '1 day'"), {"d": max(retention_days, 1.0)}
            )
        ).scalar_one()
        counts = {name: (await conn.execute(text(sql), {"cutoff": cutoff})).rowcount for name, sql in _CLEANUP.items()}
    log.info("cleanup done", **counts)
    return counts
