"""The service's state read from PostgreSQL, for `/health` and for the gauges `/metrics` shows.

The gauges are sampled when they are read (a scrape, a health probe), so every instance shows the
shared state as it is now, whatever it did itself: tasks by status, the relay's lag, the webhook
backlog, the outbox events not yet turned into deliveries and the age of the oldest, the disabled
endpoints and each account's state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ticker_service.accounts import feeds, pauses
from ticker_service.accounts.states import AccountState
from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.states import TaskStatus
from ticker_service.orders.lifecycle.tasks import count_by_status
from ticker_service.system import metrics

WAITING_DELIVERIES = ("pending", "sending", "retrying")
DELIVERIES_BY_STATUS = (
    "SELECT status, count(*) FROM webhook_deliveries "
    "WHERE status IN ('pending', 'sending', 'retrying', 'dead') GROUP BY status"
)
ENDPOINTS_DISABLED = "SELECT count(*) FROM webhooks WHERE NOT active"
# Outbox events that the webhook fan-out has still to turn into deliveries (accounts with an active
# endpoint, past the cursor and past the endpoints' start), and the age of the oldest of them
OUTBOX_BACKLOG = """
WITH due AS (
    SELECT s.account_id, s.last_seq, GREATEST(COALESCE(c.last_seq, 0), w.start_seq) AS done
    FROM account_seq AS s
    JOIN (SELECT account_id, min(start_seq) AS start_seq FROM webhooks WHERE active GROUP BY account_id) AS w
        ON w.account_id = s.account_id
    LEFT JOIN webhook_cursor AS c ON c.account_id = s.account_id
    WHERE s.last_seq > GREATEST(COALESCE(c.last_seq, 0), w.start_seq)
)
SELECT COALESCE(sum(due.last_seq - due.done), 0)::bigint AS events,
       COALESCE(EXTRACT(EPOCH FROM now() - min(e.created_at)), 0)::float8 AS oldest_seconds
FROM due LEFT JOIN outbox_events AS e ON e.account_id = due.account_id AND e.seq = due.done + 1
"""


@dataclass(frozen=True, slots=True)
class Sample:
    tasks: dict[str, int]  # every task state, 0 where none
    lag_seconds: float
    deliveries: dict[str, int]  # pending, sending, retrying, dead
    endpoints_disabled: int
    outbox_backlog: int
    outbox_oldest_seconds: float
    accounts: dict[str, tuple[AccountState, str | None]]  # state and why, of every configured account
    feeds: Mapping[str, Mapping[str, Any]]  # account -> its feed's record, where one is followed
    latency_ms: float

    @property
    def deliveries_waiting(self) -> int:
        return sum(self.deliveries.get(s, 0) for s in WAITING_DELIVERIES)


async def take(engine: AsyncEngine, pool: asyncpg.Pool, account_ids: list[str]) -> Sample:
    """Read everything once; raises what the database raises when it cannot be reached."""
    started = time.perf_counter()
    async with engine.connect() as conn:
        counts = await count_by_status(conn)
        lag = (await conn.execute(text(queries.EXECUTOR_LAG))).scalar_one()
        deliveries = {status: int(n) for status, n in await conn.execute(text(DELIVERIES_BY_STATUS))}
        disabled = (await conn.execute(text(ENDPOINTS_DISABLED))).scalar_one()
        backlog, oldest = (await conn.execute(text(OUTBOX_BACKLOG))).one()
    held = await pauses.every_pause(pool)
    followed = await feeds.of_accounts(pool, account_ids)
    return Sample(
        tasks={status.value: counts.get(status, 0) for status in TaskStatus},
        lag_seconds=float(lag),
        deliveries=deliveries,
        endpoints_disabled=int(disabled),
        outbox_backlog=int(backlog),
        outbox_oldest_seconds=float(oldest),
        accounts={a: pauses.state_of([p for p in held if p.account_id == a]) for a in account_ids},
        feeds=followed,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )


def publish(sample: Sample) -> None:
    """Set the sampled gauges (every state of every series, so a value that went back to 0 shows 0)."""
    for status, n in sample.tasks.items():
        metrics.TASKS_BY_STATUS.labels(status=status).set(n)
    metrics.RELAY_LAG_SECONDS.set(sample.lag_seconds)
    metrics.WEBHOOK_PENDING.set(sample.deliveries_waiting)
    metrics.WEBHOOK_DEAD.set(sample.deliveries.get("dead", 0))
    metrics.WEBHOOK_ENDPOINTS_DISABLED.set(sample.endpoints_disabled)
    metrics.OUTBOX_BACKLOG.set(sample.outbox_backlog)
    metrics.OUTBOX_OLDEST_SECONDS.set(sample.outbox_oldest_seconds)
    for account_id, (state, _why) in sample.accounts.items():
        for each in AccountState:
            metrics.ACCOUNT_STATE.labels(account=account_id, state=each.value).set(1 if each == state else 0)
