"""Order tasks: intake in one statement, reads, and the operator's requeue.

Intake is the hot path, so it is a single SQL statement (one round trip): insert the task, bump the
account's seq counter, insert the `task_status` outbox event and NOTIFY, all in the statement's
implicit transaction. When it returns, the task and its event are committed: that is what a 2xx
answer promises (invariant 1).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ticker_service.db.tables import order_tasks
from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.events import task_status_event
from ticker_service.orders.lifecycle.states import TaskStatus
from ticker_service.outbox.writer import append_events

_encoder = msgspec.json.Encoder(order="sorted")


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


def new_task_id() -> str:
    return f"task_{uuid.uuid4().hex}"


def new_broker_tag() -> str:
    """Alphanumeric, 20 characters: Kite's limit for a tag. Unique per task (a DB constraint)."""
    return "TS" + uuid.uuid4().hex[:18].upper()


async def submit_task(
    pool: asyncpg.Pool,
    *,
    account_id: str,
    operation: str,
    params: Mapping[str, Any],
    idempotency_key: str | None,
    expires_in: float,
    max_attempts: int,
    order_id: str | None = None,
    written_by: str = "",
) -> tuple[dict[str, Any], bool]:
    """Write a task and its first event; returns (task row, created).

    `written_by` (an instance id) is the payload of the NOTIFY that wakes the workers: the writing
    instance wakes its own workers directly and ignores it.

    With an Idempotency-Key already used for this account, returns the existing task (created is
    False), or raises IdempotencyConflict when the earlier request differed.
    """
    task_id = new_task_id()
    params_json = _encoder.encode(params)
    digest = hashlib.sha256(_encoder.encode([operation, account_id]) + params_json).hexdigest()
    key = idempotency_key or task_id
    stub = {"task_id": task_id, "operation": operation, "attempts": 0, "order_id": order_id}
    event = task_status_event(stub, TaskStatus.PENDING)
    # No explicit transaction: the statement is its own (implicit) transaction and one round trip,
    # so the account's seq row is locked only while it runs and commits
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            queries.INTAKE,
            task_id,
            key,
            digest,
            operation,
            params_json.decode(),
            max_attempts,
            account_id,
            new_broker_tag(),
            order_id,
            float(expires_in),
            event.event_id,
            _encoder.encode(event.data).decode(),
            written_by,
        )
        if row is not None:
            return dict(row), True
        existing = await conn.fetchrow(queries.BY_KEY, account_id, key)
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish: tasks are not deleted while live
        raise RuntimeError(f"idempotency key {key!r} conflicted but its task was not found")
    if existing["request_hash"] != digest:
        raise IdempotencyConflict(
            "Idempotency-Key was already used with a different request; use a new key for a new order"
        )
    return dict(existing), False


async def get_task(pool: asyncpg.Pool, task_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(queries.BY_ID, task_id)
    return dict(row) if row else None


async def list_tasks(
    engine: AsyncEngine,
    *,
    statuses: Sequence[str] | None,
    account_ids: Sequence[str] | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    stmt = select(order_tasks).order_by(order_tasks.c.created_at.desc(), order_tasks.c.task_id)
    if statuses:
        stmt = stmt.where(order_tasks.c.status.in_(statuses))
    if account_ids is not None:
        stmt = stmt.where(order_tasks.c.account_id.in_(account_ids))
    async with engine.connect() as conn:
        rows = await conn.execute(stmt.limit(limit).offset(offset))
        return [dict(r) for r in rows.mappings()]


async def count_by_status(conn: AsyncConnection) -> dict[str, int]:
    rows = await conn.execute(text(queries.COUNT_BY_STATUS))
    return {status: int(n) for status, n in rows}


class NotRetryable(Exception):
    """Only dead letters can be requeued by an operator."""


async def retry_dead_letter(pool: asyncpg.Pool, task_id: str) -> dict[str, Any] | None:
    """Requeue a dead letter: attempts from zero and a new deadline of its original length."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.LOCK_STATUS, task_id)
        if row is None:
            return None
        if row["status"] != TaskStatus.DEAD_LETTER:
            raise NotRetryable(f"task {task_id} is {row['status']}; only dead_letter tasks can be retried")
        new = dict(await conn.fetchrow(queries.REQUEUE, task_id))
        await conn.execute(queries.WAKE_WORKERS)
        await append_events(conn, new["account_id"], [task_status_event(new, TaskStatus.PENDING, requeued=True)])
    return new


async def accounts_of_task(pool: asyncpg.Pool, task_id: str) -> list[str]:
    """The account of a task, for the routes that name one (the row lookup of `system.access`)."""
    account = await pool.fetchval(queries.ACCOUNT_OF_TASK, task_id)
    return [account] if account is not None else []
