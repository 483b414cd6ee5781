"""Waiting for a task to resolve, for requests with `wait` > 0.

Woken by the executor of this process directly (which hands over the task as it recorded it, so
the request reads nothing back) and by NOTIFY on `ticker_task_done` from any process (then the
task is read); re-checks the database every second in case a notification was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any


class _Waiter:
    __slots__ = ("event", "row")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.row: dict[str, Any] | None = None  # the task as its finish recorded it, when handed over


class TaskWaiters:
    def __init__(self) -> None:
        self._waiters: dict[str, set[_Waiter]] = {}

    def resolve(self, task_id: str, row: dict[str, Any] | None = None) -> None:
        """Wake the requests waiting for `task_id`, with the task's final row when the caller has it."""
        if not task_id:  # an empty payload after a listener reconnect: wake everyone to re-check
            for waiters in self._waiters.values():
                for waiter in waiters:
                    waiter.event.set()
            return
        for waiter in self._waiters.get(task_id, ()):
            if row is not None:
                waiter.row = row
            waiter.event.set()

    async def wait(
        self,
        task_id: str,
        timeout: float,
        load: Callable[[], Awaitable[dict[str, Any] | None]],
        done: Callable[[dict[str, Any]], bool],
        *,
        known: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Return the task once `done(task)` holds, or its latest state when `timeout` runs out.

        `known` is the task as the caller has just read or written it (intake): the first look
        uses it instead of reading the task again.
        """
        waiter = _Waiter()
        self._waiters.setdefault(task_id, set()).add(waiter)
        deadline = time.monotonic() + timeout
        try:
            while True:
                waiter.event.clear()
                if waiter.row is not None:
                    task: dict[str, Any] | None = waiter.row
                    waiter.row = None
                elif known is not None:
                    task, known = known, None
                else:
                    task = await load()
                remaining = deadline - time.monotonic()
                if task is None or done(task) or remaining <= 0:
                    return task
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.event.wait(), min(remaining, 1.0))
        finally:
            waiters = self._waiters.get(task_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[task_id]
