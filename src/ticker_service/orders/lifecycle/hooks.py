"""What other packages may plug into the executor's finish.

A hook runs inside the finish transaction of every task that reaches a final state, so whatever it
writes commits (or not) together with the task's own state: a batch moves to its next leg, or
starts its rollback, exactly when its leg is resolved. The executor knows hooks only by this
protocol; the runtime registers them (batches today).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import asyncpg

from ticker_service.outbox.event import NewEvent


class FinishHook(Protocol):
    def concerns(self, task: Mapping[str, Any]) -> bool:
        """Whether this hook may act when `task` is resolved. A task that concerns no hook (and
        records no order snapshot) finishes in a single statement, without an open transaction."""
        ...

    async def on_task_final(
        self,
        conn: asyncpg.Connection,
        task: Mapping[str, Any],
        status: str,
        result: Mapping[str, Any] | None,
        error: str | None,
    ) -> list[NewEvent]:
        """Called in the finish transaction of a task that has just been resolved; returns events to
        append after the task's own (a hook that has nothing to do with the task returns [])."""
        ...
