"""Waiting for a task to resolve, for requests with `wait` > 0.

Woken by the relay of this process directly and by NOTIFY on `ticker_task_done` from any process;
re-checks the database every second in case a notification was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any


class TaskWaiters:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def resolve(self, task_id: str) -> None:
        if not task_id:  # an empty payload after a listener reconnect: wake everyone to re-check
            for events in self._waiters.values():
                for event in events:
                    event.set()
            return
        for event in self._waiters.get(task_id, ()):
            event.set()

    async def wait(
        self,
        task_id: str,
        timeout: float,
        load: Callable[[], Awaitable[dict[str, Any] | None]],
        done: Callable[[dict[str, Any]], bool],
    ) -> dict[str, Any] | None:
        """Return the task once `done(task)` holds, or its latest state when `timeout` runs out."""
        event = asyncio.Event()
        self._waiters.setdefault(task_id, set()).add(event)
        deadline = time.monotonic() + timeout
        try:
            while True:
                event.clear()
                task = await load()
                remaining = deadline - time.monotonic()
                if task is None or done(task) or remaining <= 0:
                    return task
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, 1.0))
        finally:
            events = self._waiters.get(task_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[task_id]
