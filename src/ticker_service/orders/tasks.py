"""Order tasks: intake in one statement, reads, and the operator's retry.

Intake is the hot path, so it is a single SQL statement (Core `text`, one round trip): insert the
task, bump the account's seq counter, insert the `task_status` outbox event and NOTIFY, all in the
statement's implicit transaction. When it returns, the task and its event are committed: that is
what a 2xx answer promises (invariant 1).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ticker_service.db.tables import order_tasks
from ticker_service.outbox.events import task_status_event
from ticker_service.outbox.writer import append_events

PENDING, RUNNING, RETRYING, UNKNOWN = "pending", "running", "retrying", "unknown"
COMPLETED, REJECTED, FAILED, DEAD_LETTER = "completed", "rejected", "failed", "dead_letter"
# batch legs: WAITING until the leg before is resolved; SKIPPED when an earlier leg failed (never sent)
WAITING, SKIPPED = "waiting", "skipped"
TASK_STATUSES = (PENDING, RUNNING, RETRYING, UNKNOWN, COMPLETED, REJECTED, FAILED, DEAD_LETTER, WAITING, SKIPPED)
RESOLVED = frozenset({COMPLETED, REJECTED, FAILED, DEAD_LETTER, SKIPPED})
IN_FLIGHT = (PENDING, RUNNING, RETRYING, UNKNOWN)

_encoder = msgspec.json.Encoder(order="sorted")


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


def new_task_id() -> str:
    return f"task_{uuid.uuid4().hex}"


def new_broker_tag() -> str:
    """Alphanumeric, 20 characters: Kite's limit for a tag. Unique per task (a DB constraint)."""
    return "TS" + uuid.uuid4().hex[:18].upper()


_INTAKE = """
WITH t AS (
    INSERT INTO order_tasks (task_id, idempotency_key, request_hash, operation, params, status,
                             attempts, max_attempts, created_at, updated_at, account_id, broker_tag,
                             order_id, next_attempt_at, expires_in, deadline_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, 'pending', 0, $6, now(), now(), $7, $8, $9, now(),
            $10::numeric, now() + make_interval(secs => $10::float8))
    ON CONFLICT (account_id, idempotency_key) DO NOTHING
    RETURNING *
), s AS (
    INSERT INTO account_seq AS a (account_id, last_seq) SELECT $7, 1 FROM t
    ON CONFLICT (account_id) DO UPDATE SET last_seq = a.last_seq + 1
    RETURNING last_seq
), e AS (
    INSERT INTO outbox_events (event_id, account_id, seq, event, task_id, order_id, data)
    SELECT $11, $7, s.last_seq, 'task_status', $1, $9, $12::jsonb FROM s
    RETURNING seq
)
SELECT t.*, (SELECT seq FROM e) AS seq,
       pg_notify('ticker_tasks', ''),
       pg_notify('ticker_events', $7 || ':' || (SELECT seq FROM e))
FROM t
"""

_BY_KEY = "SELECT * FROM order_tasks WHERE account_id = $1 AND idempotency_key = $2"


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
) -> tuple[dict[str, Any], bool]:
    """Write a task and its first event; returns (task row, created).

    With an Idempotency-Key already used for this account, returns the existing task (created is
    False), or raises IdempotencyConflict when the earlier request differed.
    """
    task_id = new_task_id()
    params_json = _encoder.encode(params)
    digest = hashlib.sha256(_encoder.encode([operation, account_id]) + params_json).hexdigest()
    key = idempotency_key or task_id
    stub = {"task_id": task_id, "operation": operation, "attempts": 0, "order_id": order_id}
    event = task_status_event(stub, PENDING)
    # No explicit transaction: the statement is its own (implicit) transaction and one round trip,
    # so the account's seq row is locked only while it runs and commits
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            _INTAKE,
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
        )
        if row is not None:
            return dict(row), True
        existing = await conn.fetchrow(_BY_KEY, account_id, key)
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish: tasks are not deleted while live
        raise RuntimeError(f"idempotency key {key!r} conflicted but its task was not found")
    if existing["request_hash"] != digest:
        raise IdempotencyConflict(
            "Idempotency-Key was already used with a different request; use a new key for a new order"
        )
    return dict(existing), False


async def get_task(pool: asyncpg.Pool, task_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow("SELECT * FROM order_tasks WHERE task_id = $1", task_id)
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
    rows = await conn.execute(select(order_tasks.c.status, func.count()).group_by(order_tasks.c.status))
    return {status: int(n) for status, n in rows}


class NotRetryable(Exception):
    """Only dead letters can be requeued by an operator."""


_REQUEUE = """
UPDATE order_tasks SET status = 'pending', attempts = 0, next_attempt_at = now(),
    deadline_at = now() + make_interval(secs => expires_in::float8), updated_at = now(), last_error = NULL
WHERE task_id = $1
RETURNING *
"""


async def retry_dead_letter(pool: asyncpg.Pool, task_id: str) -> dict[str, Any] | None:
    """Requeue a dead letter: attempts from zero and a new deadline of its original length."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT status FROM order_tasks WHERE task_id = $1 FOR UPDATE", task_id)
        if row is None:
            return None
        if row["status"] != DEAD_LETTER:
            raise NotRetryable(f"task {task_id} is {row['status']}; only dead_letter tasks can be retried")
        new = dict(await conn.fetchrow(_REQUEUE, task_id))
        await conn.execute("SELECT pg_notify('ticker_tasks', '')")
        await append_events(conn, new["account_id"], [task_status_event(new, PENDING, requeued=True)])
    return new
