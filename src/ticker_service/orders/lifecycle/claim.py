"""Taking a task: the claim (one statement) and keeping its lease while the broker call runs."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import asyncpg

from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.states import TaskStatus


class Work(StrEnum):
    EXECUTE = "execute"  # claimed `running`: call the broker
    RECONCILE = "reconcile"  # claimed `unknown`: look for its effect at the broker first
    EXPIRE = "expire"  # claimed past its deadline without ever being sent: it fails


@dataclass(frozen=True, slots=True)
class Claimed:
    work: Work
    task: dict[str, Any]
    deadline_mono: float  # the task's deadline on this process's monotonic clock

    def past_deadline(self) -> bool:
        """Whether the deadline has passed, on the database's clock as read by the claim (carried on
        the monotonic clock since), so the finish needs no second look at the row to know it."""
        return time.monotonic() >= self.deadline_mono


async def claim(pool: asyncpg.Pool, owner: str, lease_seconds: float) -> Claimed | None:
    """Lock the next due task, take its lease and, unless it is `unknown` or past its deadline, mark
    it `running` (its next attempt) with its `task_status` event: one statement, one transaction."""
    row = await pool.fetchrow(queries.CLAIM, owner, float(lease_seconds), str(uuid.uuid4()))
    if row is None:
        return None
    task = dict(row)
    task.pop("notified", None)
    deadline_mono = time.monotonic() + (task["deadline_at"] - task.pop("claimed_now")).total_seconds()
    if task["status"] == TaskStatus.UNKNOWN:
        return Claimed(Work.RECONCILE, task, deadline_mono)
    if task["status"] == TaskStatus.RUNNING:
        return Claimed(Work.EXECUTE, task, deadline_mono)
    # pending or retrying, past its deadline: never sent, never will be
    return Claimed(Work.EXPIRE, task, deadline_mono)


async def renew_lease(pool: asyncpg.Pool, task: dict[str, Any], owner: str, lease_seconds: float) -> bool:
    """Extend the lease of a call in flight; False when the task is no longer ours."""
    renewed = await pool.fetchval(queries.RENEW, task["task_id"], owner, task["attempts"], float(lease_seconds))
    return renewed is not None


async def next_due_in(pool: asyncpg.Pool) -> float | None:
    """Seconds until the next claimable task is due (negative: overdue; None: nothing waits)."""
    value = await pool.fetchval(queries.NEXT_DUE)
    return None if value is None else float(value)
