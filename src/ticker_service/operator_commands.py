"""The operator's commands (`ticker-service tasks|webhooks|accounts|db ...`), straight on PostgreSQL.

Each one runs the same code as the matching route (a retry is `retry_dead_letter`, a replay is
`WebhookService.replay`), so the command line keeps the service's invariants: a retried task is
requeued once, with its tag, and reconciled by it like any other. They print one JSON object a line
(lists) or one line of text, never a secret: no webhook secret, no access token, no key.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ticker_service.accounts import pauses
from ticker_service.db.engine import asyncpg_dsn, create_engine
from ticker_service.db.pool import create_pool
from ticker_service.settings import Settings
from ticker_service.system.errors import ApiError

WEBHOOKS = (
    "SELECT webhook_id, account_id, url, events, active, disabled_reason, created_at FROM webhooks "
    "ORDER BY created_at, webhook_id"
)
SESSIONS = "SELECT account_id, user_id, source, created_at FROM broker_sessions"
CURRENT_REVISION = "SELECT version_num FROM alembic_version"
TASK_FIELDS = ("task_id", "account_id", "operation", "status", "attempts", "order_id", "last_error")


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row, default=str))


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[tuple[AsyncEngine, asyncpg.Pool]]:
    """The two ways the service reaches PostgreSQL (SQLAlchemy for lists, asyncpg for the hot paths),
    one connection each: the commands call the service's own functions, which take one or the other."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    pool = await create_pool(asyncpg_dsn(url), 1)
    try:
        yield engine, pool
    finally:
        await pool.close()
        await engine.dispose()


# ---- tasks -----------------------------------------------------------------------------------------


async def tasks_list(url: str, statuses: list[str] | None, limit: int) -> int:
    from ticker_service.orders.lifecycle.tasks import list_tasks

    async with connected(url) as (engine, _pool):
        for t in await list_tasks(engine, statuses=statuses, account_ids=None, limit=limit, offset=0):
            emit({k: t[k] for k in TASK_FIELDS} | {"created_at": str(t["created_at"])})
    return 0


async def tasks_retry(url: str, task_id: str) -> int:
    """`POST /tasks/{id}/retry`'s own function: only a dead letter, requeued once, with its event."""
    from ticker_service.orders.lifecycle.tasks import NotRetryable, retry_dead_letter

    async with connected(url) as (_engine, pool):
        try:
            task = await retry_dead_letter(pool, task_id)
        except NotRetryable as exc:
            return fail(str(exc))
    if task is None:
        return fail(f"no task {task_id}")
    print(f"{task_id} requeued")
    return 0


async def tasks_cleanup(url: str, settings: Settings) -> int:
    """The nightly clean-up, now (the same retention, never less than a day)."""
    from ticker_service.jobs.maintenance import cleanup

    async with connected(url) as (engine, _pool):
        counts = await cleanup(engine, settings.database.task_retention_days)
    emit({"deleted": counts, "retention_days": settings.database.task_retention_days})
    return 0


# ---- webhooks --------------------------------------------------------------------------------------


async def webhooks_list(url: str) -> int:
    async with connected(url) as (_engine, pool):
        for row in await pool.fetch(WEBHOOKS):  # never the secret
            emit(dict(row))
    return 0


async def webhooks_replay(url: str, settings: Settings, webhook_id: str, delivery_id: str) -> int:
    """`POST .../deliveries/{id}/replay`'s own checks and function: an active webhook, a finished delivery."""
    from ticker_service.webhooks.service import WebhookService
    from ticker_service.webhooks.urls import UrlGuard

    async with connected(url) as (_engine, pool):
        service = WebhookService(
            pool,
            UrlGuard(settings.webhooks.allow_private),
            set(settings.account_ids),
            settings.webhooks.max_per_account,
        )
        try:
            row = await service.get_row(webhook_id)
            if not row["active"]:
                return fail(f"webhook {webhook_id} is disabled ({row['disabled_reason']}); register it again")
            replayed = await service.replay(webhook_id, delivery_id)
        except ApiError as exc:
            return fail(exc.message)
    print(f"{replayed.delivery_id} of {webhook_id} queued again")
    return 0


# ---- accounts --------------------------------------------------------------------------------------


async def accounts_list(url: str, settings: Settings) -> int:
    """Every configured account: broker, state and why, and whether a session is stored (never the token)."""
    async with connected(url) as (_engine, pool):
        held = await pauses.every_pause(pool)
        sessions = {r["account_id"]: r for r in await pool.fetch(SESSIONS)}
    for account_id, config in settings.accounts.brokers.items():
        state, reason = pauses.state_of([p for p in held if p.account_id == account_id])
        stored = sessions.get(account_id)
        emit(
            {
                "account_id": account_id,
                "broker": config.broker,
                "state": state,
                "reason": reason,
                "session_stored_at": None if stored is None else str(stored["created_at"]),
            }
        )
    return 0


async def accounts_session(url: str, settings: Settings, account_id: str) -> int:
    """The account's stored session: who, since when, from where; never the token."""
    if account_id not in settings.accounts.brokers:
        return fail(f"account_id: unknown account {account_id!r}")
    async with connected(url) as (_engine, pool):
        state, reason = pauses.state_of(await pauses.of_account(pool, account_id))
        stored = {r["account_id"]: r for r in await pool.fetch(SESSIONS)}.get(account_id)
    emit(
        {
            "account_id": account_id,
            "state": state,
            "reason": reason,
            "session": None
            if stored is None
            else {"user_id": stored["user_id"], "source": stored["source"], "stored_at": str(stored["created_at"])},
        }
    )
    return 0


# ---- db --------------------------------------------------------------------------------------------


async def db_current(url: str) -> int:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            try:
                revision = (await conn.execute(text(CURRENT_REVISION))).scalar_one_or_none()
            except Exception:  # no alembic_version table: nothing applied yet
                revision = None
    finally:
        await engine.dispose()
    print(revision or "base (no migration applied)")
    return 0
