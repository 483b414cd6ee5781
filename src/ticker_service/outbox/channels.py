"""The NOTIFY channels. A notification only wakes a listener; the data is always read from tables.

* `ticker_tasks`: a task became claimable (intake, promotion, requeue, a resend after
  reconciliation); wakes the executor's workers.
* `ticker_events` (payload `account:seq`): outbox events were committed; wakes the WebSocket
  tailers and the webhook fan-out.
* `ticker_task_done` (payload a task or batch id): it reached its final state; wakes requests
  waiting for it (`wait`).
* `ticker_webhooks`: webhook deliveries became due (fan-out, replay, test ping); wakes senders.
"""

from __future__ import annotations

TASKS_CHANNEL = "ticker_tasks"
EVENTS_CHANNEL = "ticker_events"
TASK_DONE_CHANNEL = "ticker_task_done"
DELIVERIES_CHANNEL = "ticker_webhooks"


def notify_sql(channel: str, payload: str = "''") -> str:
    """`pg_notify(...)` for a constant channel, as a SQL expression (`payload` is SQL too)."""
    return f"pg_notify('{channel}', {payload})"
