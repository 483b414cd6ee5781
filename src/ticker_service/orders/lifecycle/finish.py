"""Recording an outcome: fenced on the lease, with its events, in one transaction.

The finish only applies if the task is still in the state it was claimed in, under this worker's
lease and attempt: every statement that writes the task says so in its WHERE clause, and writes
nothing otherwise. A worker that lost its lease has its answer discarded: the order, if any, is
found again by its tag (the task went `unknown`).

Most finishes are one statement, its own transaction (one round trip): the fenced update, the
task's events and the NOTIFYs. A finish that writes more (the order mirror, a batch's next step)
opens a transaction: the fenced update first (it also takes the row lock), then the mirror and the
hooks, then the events sent together with the COMMIT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.events import task_failure_event, task_status_event
from ticker_service.orders.lifecycle.hooks import FinishHook
from ticker_service.orders.lifecycle.outcome import Decision, Outcome, TaskFacts, Timing, decide
from ticker_service.orders.lifecycle.states import Operation, TaskStatus, allowed
from ticker_service.orders.mirror import apply_snapshot
from ticker_service.outbox.event import NewEvent
from ticker_service.outbox.writer import append_events_and_commit, encode_events
from ticker_service.system import metrics

log = structlog.get_logger("ticker.executor")


def facts(task: Mapping[str, Any], *, past_deadline: bool) -> TaskFacts:
    return TaskFacts(
        operation=Operation(task["operation"]),
        status=TaskStatus(task["status"]),
        attempts=task["attempts"],
        max_attempts=task["max_attempts"],
        order_id=task.get("order_id"),
        past_deadline=past_deadline,
    )


@dataclass(frozen=True, slots=True)
class Finished:
    decision: Decision
    row: dict[str, Any]  # the task as recorded


async def finish(
    pool: asyncpg.Pool,
    task: dict[str, Any],
    owner: str,
    outcome: Outcome,
    timing: Timing,
    hooks: Sequence[FinishHook] = (),
    *,
    past_deadline: bool = False,
) -> Finished | None:
    """Decide and record `outcome`; None when the task had moved on without us (fenced off)."""
    decision = decide(facts(task, past_deadline=past_deadline), outcome, timing)
    if not allowed(task["status"], decision.status):
        raise AssertionError(f"outcome {outcome.kind} moved a {task['status']} task to {decision.status}")
    fence = (task["task_id"], task["status"], owner, task["attempts"])
    async with pool.acquire() as conn:
        if not decision.status_event:  # still unknown: nothing changed that anyone is told about
            row = await conn.fetchrow(queries.STILL_UNKNOWN, *fence, decision.error, float(decision.retry_in or 0.0))
        elif not decision.final:
            row = await _state(conn, task, fence, decision)
        elif decision.record_order is None and not any(hook.concerns(task) for hook in hooks):
            events = _final_events(task, decision, [])
            row = await conn.fetchrow(
                queries.FINISH_FINAL, *fence, *_final_values(decision), len(events), encode_events(events)
            )
        else:
            row = await _final_in_transaction(conn, task, fence, decision, hooks)
    if row is None:
        log.warning(
            "finish fenced off: the task moved on without us; its order is found again by tag",
            task_id=task["task_id"],
            outcome=outcome.kind,
        )
        metrics.FENCED_FINISHES.inc()
        return None
    _count(task, decision)
    return Finished(decision, _task_row(row))


def _task_row(row: asyncpg.Record) -> dict[str, Any]:
    recorded = dict(row)
    for extra in ("notified", "woke", "done"):
        recorded.pop(extra, None)
    return recorded


async def _state(
    conn: asyncpg.Connection, task: Mapping[str, Any], fence: tuple[Any, ...], decision: Decision
) -> asyncpg.Record | None:
    """A state the task leaves again (retrying, unknown): one statement with its `task_status` event."""
    status = decision.status
    attempts = task["attempts"] - (1 if decision.give_back_attempt else 0)
    events = [task_status_event(task, status, error=decision.error, attempts=attempts, **decision.status_extra)]
    row: asyncpg.Record | None = await conn.fetchrow(
        queries.FINISH_STATE,
        *fence,
        status,
        decision.error,
        float(decision.retry_in or 0.0),
        decision.unknown_since,
        1 if decision.give_back_attempt else 0,
        len(events),
        encode_events(events),
        decision.wake_workers,
    )
    return row


def _final_values(decision: Decision) -> tuple[Any, ...]:
    return decision.status, decision.error, decision.order_id, decision.result


def _final_events(task: Mapping[str, Any], decision: Decision, order_events: list[NewEvent]) -> list[NewEvent]:
    status_event = task_status_event(
        task,
        decision.status,
        order_id=decision.order_id or task.get("order_id"),
        result=decision.result,
        error=decision.error,
    )
    if decision.status_event_first:
        return [status_event, *order_events]
    failure = []
    if decision.failure_event is not None:
        failure = [task_failure_event(decision.failure_event, task, decision.error or decision.status.value)]
    return [*failure, *order_events, status_event]


async def _final_in_transaction(
    conn: asyncpg.Connection,
    task: dict[str, Any],
    fence: tuple[Any, ...],
    decision: Decision,
    hooks: Sequence[FinishHook],
) -> asyncpg.Record | None:
    """A plain BEGIN rather than asyncpg's transaction object: the events and the COMMIT go to the
    server together (`append_events_and_commit`), so the account's seq row is not held locked while
    this process gets back to the connection."""
    await conn.execute("BEGIN")
    try:
        row: asyncpg.Record | None = await conn.fetchrow(
            queries.SET_FINAL_IN_TRANSACTION, *fence, *_final_values(decision)
        )
        if row is None:
            await conn.execute("ROLLBACK")
            return None
        account_id = task["account_id"]
        order_events: list[NewEvent] = []
        if decision.record_order is not None:
            linked = decision.link_order
            order_events = await apply_snapshot(
                conn,
                account_id,
                decision.record_order,
                task_id=task["task_id"] if linked else None,
                client_tag=task["params"].get("tag") if linked else None,
            )
        events = _final_events(task, decision, order_events)
        for hook in hooks:  # e.g. the batch moves on, in this same transaction
            events += await hook.on_task_final(conn, task, decision.status, decision.result, decision.error)
        await append_events_and_commit(conn, account_id, events)
        return row
    except BaseException:
        if not conn.is_closed() and conn.is_in_transaction():
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
        raise


def _count(task: Mapping[str, Any], decision: Decision) -> None:
    if decision.status_event:
        metrics.TASK_OUTCOMES.labels(operation=task["operation"], status=decision.status.value).inc()
    account = task["account_id"]
    if decision.alarm == "unknown":
        metrics.UNKNOWN_OUTCOMES.labels(account=account).inc()
    elif decision.alarm == "reconcile_failed":
        metrics.RECONCILE_FAILURES.labels(account=account).inc()
    elif decision.alarm == "auth":
        metrics.BROKER_AUTH_FAILURES.labels(account=account).inc()
        log.error(
            "broker refused the session token; the task waits for a new session (the account is paused)",
            task_id=task["task_id"],
            account_id=account,
        )
