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

import msgspec
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ticker_service.db.tables import order_tasks
from ticker_service.outbox.events import task_status_event
from ticker_service.outbox.writer import append_events

PENDING, RUNNING, RETRYING, UNKNOWN = "pending", "running", "retrying", "unknown"
COMPLETED, REJECTED, FAILED, DEAD_LETTER = "completed", "rejected", "failed", "dead_letter"
TASK_STATUSES = (PENDING, RUNNING, RETRYING, UNKNOWN, COMPLETED, REJECTED, FAILED, DEAD_LETTER)
RESOLVED = frozenset({COMPLETED, REJECTED, FAILED, DEAD_LETTER})
IN_FLIGHT = (PENDING, RUNNING, RETRYING, UNKNOWN)

_encoder = msgspec.json.Encoder(order="sorted")


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


def new_task_id() -> str:
    return f"task_{uuid.uuid4().hex}"


def new_broker_tag() -> str:
    """Alphanumeric, 20 characters: Kite's limit for a tag. Unique per task (a DB constraint)."""
    return "TS" + uuid.uuid4().hex[:18].upper()


def request_hash(operation: str, account_id: str, params: Mapping[str, Any]) -> str:
    return hashlib.sha256(_encoder.encode([operation, account_id, params])).hexdigest()


_INTAKE = text(
    """
    WITH t AS (
        INSERT INTO order_tasks (task_id, idempotency_key, request_hash, operation, params, status,
                                 attempts, max_attempts, created_at, updated_at, account_id, broker_tag,
                                 order_id, next_attempt_at, expires_in, deadline_at, batch_id, batch_index)
        VALUES (:task_id, :idempotency_key, :request_hash, :operation, CAST(:params AS jsonb), 'pending',
                0, :max_attempts, now(), now(), :account_id, :broker_tag, :order_id, now(),
                CAST(:expires_in AS numeric), now() + make_interval(secs => CAST(:expires_in AS float8)),
                :batch_id, :batch_index)
        ON CONFLICT (account_id, idempotency_key) DO NOTHING
        RETURNING *
    ), s AS (
        INSERT INTO account_seq AS a (account_id, last_seq) SELECT :account_id, 1 FROM t
        ON CONFLICT (account_id) DO UPDATE SET last_seq = a.last_seq + 1
        RETURNING last_seq
    ), e AS (
        INSERT INTO outbox_events (event_id, account_id, seq, event, task_id, order_id, data)
        SELECT :event_id, :account_id, s.last_seq, 'task_status', :task_id, :order_id, CAST(:event_data AS jsonb)
        FROM s
        RETURNING seq
    )
    SELECT t.*, (SELECT seq FROM e) AS seq,
           pg_notify('ticker_tasks', ''),
           pg_notify('ticker_events', :account_id || ':' || (SELECT seq FROM e))
    FROM t
    """
)


async def submit_task(
    engine: AsyncEngine,
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
    digest = request_hash(operation, account_id, params)
    key = idempotency_key or task_id
    stub = {"task_id": task_id, "operation": operation, "attempts": 0, "order_id": order_id}
    event = task_status_event(stub, PENDING)
    # AUTOCOMMIT: the statement is its own transaction and one round trip, so the account's seq row
    # is locked only while it runs and commits, not across BEGIN and COMMIT round trips
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        row = (
            (
                await conn.execute(
                    _INTAKE,
                    {
                        "task_id": task_id,
                        "idempotency_key": key,
                        "request_hash": digest,
                        "operation": operation,
                        "params": _encoder.encode(params).decode(),
                        "max_attempts": max_attempts,
                        "account_id": account_id,
                        "broker_tag": new_broker_tag(),
                        "order_id": order_id,
                        "expires_in": float(expires_in),
                        "batch_id": None,
                        "batch_index": None,
                        "event_id": event.event_id,
                        "event_data": _encoder.encode(event.data).decode(),
                    },
                )
            )
            .mappings()
            .first()
        )
        if row is not None:
            return dict(row), True
        existing = (
            (
                await conn.execute(
                    select(order_tasks).where(
                        order_tasks.c.account_id == account_id, order_tasks.c.idempotency_key == key
                    )
                )
            )
            .mappings()
            .one()
        )
    if existing["request_hash"] != digest:
        raise IdempotencyConflict(
            "Idempotency-Key was already used with a different request; use a new key for a new order"
        )
    return dict(existing), False


async def get_task(engine: AsyncEngine, task_id: str) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(order_tasks).where(order_tasks.c.task_id == task_id))).mappings().first()
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


async def retry_dead_letter(engine: AsyncEngine, task_id: str) -> dict[str, Any] | None:
    """Requeue a dead letter: attempts from zero and a new deadline of its original length."""
    async with engine.begin() as conn:
        row = (
            (await conn.execute(select(order_tasks).where(order_tasks.c.task_id == task_id).with_for_update()))
            .mappings()
            .first()
        )
        if row is None:
            return None
        if row["status"] != DEAD_LETTER:
            raise NotRetryable(f"task {task_id} is {row['status']}; only dead_letter tasks can be retried")
        new = (
            (
                await conn.execute(
                    update(order_tasks)
                    .where(order_tasks.c.task_id == task_id)
                    .values(
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=func.now(),
                        deadline_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, row["expires_in"]),
                        updated_at=func.now(),
                        last_error=None,
                    )
                    .returning(order_tasks)
                )
            )
            .mappings()
            .one()
        )
        await conn.execute(text("SELECT pg_notify('ticker_tasks', '')"))
        await append_events(conn, new["account_id"], [task_status_event(new, PENDING, requeued=True)])
    return dict(new)
