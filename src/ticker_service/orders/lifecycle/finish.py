"""Recording an outcome: one transaction, fenced on the lease, with its events.

The finish only applies if the task is still in the state it was claimed in, under this worker's
lease and attempt. A worker that lost its lease has its answer discarded: the order, if any, is
found again by its tag (the task went `unknown`). Inside the transaction: the decision of the
outcome table, the order mirror, the task's new state, the registered hooks (a batch's next step)
and the events, the last of them sent together with the COMMIT.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
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
from ticker_service.outbox.writer import append_events_and_commit
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


async def finish(
    pool: asyncpg.Pool,
    task: dict[str, Any],
    owner: str,
    outcome: Outcome,
    timing: Timing,
    hooks: Sequence[FinishHook] = (),
) -> Decision | None:
    """Decide and record `outcome`; None when the task had moved on without us (fenced off).

    A plain BEGIN rather than asyncpg's transaction object: the events and the COMMIT go to the
    server together (`append_events_and_commit`), so the account's seq row is not held locked while
    this process gets back to the connection.
    """
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        try:
            current = await conn.fetchrow(queries.LOCK_FOR_FINISH, task["task_id"])
            if current is None or (current["status"], current["lease_owner"], current["attempts"]) != (
                task["status"],
                owner,
                task["attempts"],
            ):
                await conn.execute("ROLLBACK")
                log.warning(
                    "finish fenced off: the task moved on without us; its order is found again by tag",
                    task_id=task["task_id"],
                    outcome=outcome.kind,
                )
                metrics.FENCED_FINISHES.inc()
                return None
            decision = decide(facts(task, past_deadline=current["past_deadline"]), outcome, timing)
            if not allowed(task["status"], decision.status):
                raise AssertionError(f"outcome {outcome.kind} moved a {task['status']} task to {decision.status}")
            await _record(conn, task, decision, hooks)
        except BaseException:
            if not conn.is_closed() and conn.is_in_transaction():
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
            raise
    _count(task, decision)
    return decision


async def _record(
    conn: asyncpg.Connection, task: dict[str, Any], decision: Decision, hooks: Sequence[FinishHook]
) -> None:
    account_id = task["account_id"]
    task_id = task["task_id"]
    order_events: list[NewEvent] = []
    if decision.record_order is not None:
        linked = decision.link_order
        order_events = await apply_snapshot(
            conn,
            account_id,
            decision.record_order,
            task_id=task_id if linked else None,
            client_tag=task["params"].get("tag") if linked else None,
        )
    if not decision.status_event:  # still unknown: nothing changed that anyone is told about
        await conn.execute(queries.STILL_UNKNOWN, task_id, decision.error, float(decision.retry_in or 0.0))
        await conn.execute("COMMIT")
        return
    status = decision.status
    if not decision.final:
        await conn.execute(
            queries.SET_STATE,
            task_id,
            status,
            decision.error,
            float(decision.retry_in or 0.0),
            decision.unknown_since,
            1 if decision.give_back_attempt else 0,
        )
        if decision.wake_workers:
            await conn.execute(queries.WAKE_WORKERS)
        attempts = task["attempts"] - (1 if decision.give_back_attempt else 0)
        events = [task_status_event(task, status, error=decision.error, attempts=attempts, **decision.status_extra)]
        await append_events_and_commit(conn, account_id, events)
        return
    await conn.execute(queries.SET_FINAL, task_id, status, decision.error, decision.order_id, decision.result)
    status_event = task_status_event(
        task, status, order_id=decision.order_id or task.get("order_id"), result=decision.result, error=decision.error
    )
    if decision.status_event_first:
        events = [status_event, *order_events]
    else:
        failure = []
        if decision.failure_event is not None:
            failure = [task_failure_event(decision.failure_event, task, decision.error or status.value)]
        events = [*failure, *order_events, status_event]
    for hook in hooks:  # e.g. the batch moves on, in this same transaction
        events += await hook.on_task_final(conn, task, status, decision.result, decision.error)
    await append_events_and_commit(conn, account_id, events)


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
