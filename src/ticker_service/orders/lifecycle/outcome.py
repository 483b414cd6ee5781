"""The outcome table: what a broker's answer means for a task. Pure: no I/O, no clock, no randomness.

`decide(task, outcome, timing)` returns the task's next state, its error, when it is due again, and
which events go with the change. The executor gathers the facts (the broker call, the fetch of a
placed order, reconciliation, the task row under its lock) and applies the decision (`finish`);
everything in between is this table, which unit tests walk row by row without a database.

| outcome | from | next state | events (besides `task_status`) |
|---|---|---|---|
| placed / done | running, unknown | completed | the order's events from the mirror (`order_placed`, ...) |
| rejected, a placement | running, unknown | rejected | `order_rejected` |
| rejected, a modify or cancel | running, unknown | rejected | the order's change, when it was fetched |
| expired (never sent by its deadline: queue or rate limits) | pending, retrying, running | failed | `order_failed` |
| auth (the session token was refused) | running | retrying, the attempt given back (account paused) | |
| before_send, attempts left | running | retrying (after a backoff) | |
| before_send, no attempts left | running | dead_letter | `order_failed` |
| ambiguous | running | unknown (reconciled after the grace period) | |
| not_found, within the deadline and attempts | unknown | retrying (at once) | |
| not_found, past the deadline | unknown | failed | `order_failed` |
| not_found, no attempts left | unknown | dead_letter | `order_failed` |
| still_unknown (reconciliation failed) | unknown | unknown (looked at again later) | none, not even `task_status` |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from ticker_service.brokers.base import BrokerOrder
from ticker_service.orders.lifecycle.states import RESOLVED, Operation, TaskStatus

S = TaskStatus


class OutcomeKind(StrEnum):
    PLACED = "placed"  # a placement got an order id
    DONE = "done"  # a modification or cancellation took effect
    REJECTED = "rejected"  # the broker refused the request outright
    BEFORE_SEND = "before_send"  # failed before the request reached the broker: safe to resend
    AUTH = "auth"  # the broker refused the session token
    AMBIGUOUS = "ambiguous"  # may or may not have taken effect (timeout, lost answer, crash)
    NOT_FOUND = "not_found"  # reconciliation: proven never to have taken effect
    STILL_UNKNOWN = "still_unknown"  # reconciliation could not tell (yet)
    EXPIRED = "expired"  # claimed past its deadline: never sent, never will be


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a broker call (or a reconciliation) established."""

    kind: OutcomeKind
    message: str | None = None
    order_id: str | None = None
    order: BrokerOrder | None = None  # the order as the broker has it now, when known


@dataclass(frozen=True, slots=True)
class TaskFacts:
    """What the table needs to know of the task, read under its lock."""

    operation: Operation
    status: TaskStatus  # as claimed: running, unknown, or pending/retrying when it expired
    attempts: int
    max_attempts: int
    order_id: str | None = None  # the order a modify or cancel is about
    past_deadline: bool = False


@dataclass(frozen=True, slots=True)
class Timing:
    """Delays the caller chose (the backoff carries its jitter), so the table itself stays pure."""

    backoff: float  # before the next attempt after a failure before sending
    grace: float  # after an ambiguous call, before "not in the book" can be trusted
    recheck: float  # after a failed reconciliation, before looking again


Alarm = Literal["unknown", "auth", "reconcile_failed"]


@dataclass(frozen=True, slots=True)
class Decision:
    status: TaskStatus
    error: str | None = None
    retry_in: float | None = None  # a state the task leaves again: due after this many seconds
    unknown_since: Literal["set", "clear", "keep"] = "keep"
    order_id: str | None = None  # the task's order id, when this outcome made it known
    result: dict[str, Any] | None = None
    record_order: BrokerOrder | None = None  # a snapshot for the order mirror (and its events)
    link_order: bool = False  # the mirrored order is this task's placement (its task id and client tag)
    failure_event: Literal["order_rejected", "order_failed"] | None = None  # `error` is its message
    status_event: bool = True
    status_event_first: bool = False  # task_status before the order's events (a placement) or after
    status_extra: dict[str, Any] = field(default_factory=dict)
    wake_workers: bool = False  # claimable at once: NOTIFY the workers
    give_back_attempt: bool = False  # the attempt did not count (the account was paused, nothing sent)
    alarm: Alarm | None = None

    @property
    def final(self) -> bool:
        return self.status in RESOLVED


def _give_up(status: TaskStatus, message: str) -> Decision:
    return Decision(status, message, failure_event="order_failed")


def decide(task: TaskFacts, outcome: Outcome, timing: Timing) -> Decision:
    kind = outcome.kind
    message = outcome.message
    if kind in (OutcomeKind.PLACED, OutcomeKind.DONE):
        order_id = outcome.order_id or task.order_id
        result: dict[str, Any] = {"order_id": order_id}
        if outcome.order is not None:
            result["order_status"] = outcome.order.status
        return Decision(
            S.COMPLETED,
            order_id=order_id,
            result=result,
            record_order=outcome.order,
            link_order=task.operation == Operation.PLACE,
            status_event_first=True,
        )
    if kind == OutcomeKind.REJECTED:
        if task.operation == Operation.PLACE:
            return Decision(S.REJECTED, message, failure_event="order_rejected")
        refused = None
        if outcome.order is not None:  # the order as it is now, e.g. COMPLETE for a refused cancel
            refused = {"order_id": task.order_id, "order_status": outcome.order.status}
        return Decision(S.REJECTED, message, result=refused, record_order=outcome.order)
    if kind == OutcomeKind.EXPIRED:
        return _give_up(S.FAILED, message or "deadline passed; not placed")
    if kind == OutcomeKind.AUTH:
        # not sent, and not the order's fault: it waits for a new session without spending an attempt
        return Decision(
            S.RETRYING,
            f"waiting for a new broker session (the account is paused): {message}",
            retry_in=timing.backoff,
            give_back_attempt=True,
            alarm="auth",
        )
    if kind == OutcomeKind.BEFORE_SEND:
        if task.attempts >= task.max_attempts:
            return _give_up(S.DEAD_LETTER, f"gave up after {task.attempts} attempts; never sent: {message}")
        return Decision(
            S.RETRYING, message, retry_in=timing.backoff, status_extra={"retry_in": round(timing.backoff, 3)}
        )
    if kind == OutcomeKind.AMBIGUOUS:
        return Decision(
            S.UNKNOWN, f"outcome unknown: {message}", retry_in=timing.grace, unknown_since="set", alarm="unknown"
        )
    if kind == OutcomeKind.NOT_FOUND:
        if task.past_deadline:
            return _give_up(S.FAILED, "not placed (confirmed by reconciliation) and its deadline has passed")
        if task.attempts >= task.max_attempts:
            return _give_up(S.DEAD_LETTER, f"not placed after {task.attempts} attempts (confirmed by reconciliation)")
        # proven never to have taken effect: it is now safe to send again, at once
        return Decision(S.RETRYING, message, retry_in=0.0, unknown_since="clear", wake_workers=True)
    if kind == OutcomeKind.STILL_UNKNOWN:
        return Decision(S.UNKNOWN, message, retry_in=timing.recheck, status_event=False, alarm="reconcile_failed")
    raise ValueError(f"unknown outcome {kind!r}")
