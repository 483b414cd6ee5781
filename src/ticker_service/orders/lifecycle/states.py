"""Task states, which of them a worker may claim, and which moves between them are allowed.

These names are the only place a state is spelled: SQL statements render their lists from here
(`sql_in`), the table has a CHECK constraint with the same values (migration 0005, and a test that
compares the two), and the outcome table's unit tests check every decision against `TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class TaskStatus(StrEnum):
    PENDING = "pending"  # accepted, waiting for a worker
    RUNNING = "running"  # claimed and committed; the broker call is in flight
    RETRYING = "retrying"  # failed before reaching the broker; next attempt scheduled
    UNKNOWN = "unknown"  # outcome ambiguous: reconciled by tag before anything is sent again
    COMPLETED = "completed"  # the broker gave an order id (or the change took effect)
    REJECTED = "rejected"  # the broker refused it outright
    FAILED = "failed"  # confirmed never sent and never will be (deadline passed)
    DEAD_LETTER = "dead_letter"  # gave up before sending; an operator may requeue it
    WAITING = "waiting"  # a batch leg whose predecessor is not resolved yet
    SKIPPED = "skipped"  # a batch leg never sent because an earlier leg failed


class Operation(StrEnum):
    PLACE = "place_order"
    MODIFY = "modify_order"
    CANCEL = "cancel_order"


class BatchRole(StrEnum):
    """What a task does for its batch, if it belongs to one."""

    LEG = "leg"  # one of the batch's orders
    CANCEL = "cancel"  # rolls a leg back by cancelling it
    SQUARE_OFF = "square_off"  # rolls a filled leg back with an opposite order


class BatchStatus(StrEnum):
    """A batch's own state (its legs are tasks with their own)."""

    RUNNING = "running"  # legs are being placed, one after another
    ROLLING_BACK = "rolling_back"  # a leg failed; earlier legs are being undone
    COMPLETED = "completed"
    FAILED = "failed"  # a leg failed (rolled back, or rollback off)
    ROLLBACK_FAILED = "rollback_failed"  # a leg failed and undoing an earlier one failed too


BATCH_FINAL: frozenset[BatchStatus] = frozenset(
    {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.ROLLBACK_FAILED}
)

S = TaskStatus

CLAIMABLE: frozenset[TaskStatus] = frozenset({S.PENDING, S.RETRYING, S.UNKNOWN})
RESOLVED: frozenset[TaskStatus] = frozenset({S.COMPLETED, S.REJECTED, S.FAILED, S.DEAD_LETTER, S.SKIPPED})
IN_FLIGHT: frozenset[TaskStatus] = frozenset({S.PENDING, S.RUNNING, S.RETRYING, S.UNKNOWN})
# Final states that nothing may remove before the retention: a dead letter waits for an operator
FINISHED: frozenset[TaskStatus] = RESOLVED - {S.DEAD_LETTER}

# Every allowed move. A claim takes `pending`/`retrying` to `running`, or, past the deadline, to
# `failed` (never sent); an `unknown` task is claimed without changing state and reconciled. A task
# of a paused account is not claimed at all (its deadline still fails it, never sent).
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.WAITING: frozenset({S.PENDING, S.SKIPPED}),
    S.PENDING: frozenset({S.RUNNING, S.FAILED}),
    S.RETRYING: frozenset({S.RUNNING, S.FAILED}),
    # failed from running: no turn under the broker's rate limits before the deadline (never sent)
    S.RUNNING: frozenset({S.COMPLETED, S.REJECTED, S.RETRYING, S.UNKNOWN, S.DEAD_LETTER, S.FAILED}),
    S.UNKNOWN: frozenset({S.UNKNOWN, S.COMPLETED, S.REJECTED, S.RETRYING, S.FAILED, S.DEAD_LETTER}),
    S.DEAD_LETTER: frozenset({S.PENDING}),
    S.COMPLETED: frozenset(),
    S.REJECTED: frozenset(),
    S.FAILED: frozenset(),
    S.SKIPPED: frozenset(),
}


def allowed(current: TaskStatus | str, new: TaskStatus | str) -> bool:
    return TaskStatus(new) in TRANSITIONS[TaskStatus(current)]


def _ordered(states: Iterable[TaskStatus]) -> list[TaskStatus]:
    """In declaration order, so rendered SQL is stable (index predicates are compared as text)."""
    wanted = set(states)
    return [s for s in TaskStatus if s in wanted]


def sql_in(states: Iterable[TaskStatus]) -> str:
    """`('pending', 'retrying', 'unknown')`: a state list as a SQL literal list."""
    return sql_values(_ordered(states))


def sql_values(values: Iterable[StrEnum]) -> str:
    return "(" + ", ".join(f"'{v.value}'" for v in values) + ")"


def sql_is(state: TaskStatus) -> str:
    """A single state as a SQL literal."""
    return f"'{state.value}'"
