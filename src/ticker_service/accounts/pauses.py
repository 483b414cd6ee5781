"""Pausing an account: one row per (account, reason) in `account_pauses`, shared by every instance.

The executor's claim skips the tasks of a paused account (see `orders.lifecycle.queries.CLAIM`), so
they wait without spending attempts; pausing and resuming NOTIFY the workers so nothing waits for
a poll. Whoever learns the reason writes the row: the Kite adapter on a refused token, the circuit
breaker on repeated network failures; a new token or a successful probe removes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ticker_service.accounts.states import SHOWN_FIRST, AccountState, PauseReason
from ticker_service.outbox.channels import TASKS_CHANNEL, notify_sql

_PAUSE = """
INSERT INTO account_pauses (account_id, reason, detail, token_digest, probe_at)
VALUES ($1, $2, $3, $4, CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $5::float8) END)
ON CONFLICT (account_id, reason) DO UPDATE SET detail = EXCLUDED.detail, token_digest = EXCLUDED.token_digest,
    probe_at = EXCLUDED.probe_at
RETURNING (xmax = 0) AS created
"""
_RESUME = f"""
WITH gone AS (DELETE FROM account_pauses WHERE account_id = $1 AND reason = ANY($2::text[]) RETURNING 1)
SELECT count(*) AS n, CASE WHEN count(*) > 0 THEN {notify_sql(TASKS_CHANNEL)} END FROM gone
"""
_OF_ACCOUNT = "SELECT * FROM account_pauses WHERE account_id = $1"
_ALL = "SELECT * FROM account_pauses ORDER BY account_id, reason"
_PROBE_DUE = (
    "SELECT coalesce(probe_at <= now(), false) AS due FROM account_pauses WHERE account_id = $1 AND reason = $2"
)
_NEXT_PROBE = (
    "UPDATE account_pauses SET probe_at = now() + make_interval(secs => $3) WHERE account_id = $1 AND reason = $2"
)


@dataclass(frozen=True, slots=True)
class Pause:
    account_id: str
    reason: PauseReason
    detail: str | None
    token_digest: str | None
    since: datetime
    probe_at: datetime | None


def _pause(row: asyncpg.Record) -> Pause:
    return Pause(
        row["account_id"], PauseReason(row["reason"]), row["detail"], row["token_digest"], row["since"], row["probe_at"]
    )


async def pause(
    pool: asyncpg.Pool | asyncpg.Connection,
    account_id: str,
    reason: PauseReason,
    detail: str,
    *,
    token_digest: str | None = None,
    probe_in: float | None = None,
) -> bool:
    """Pause the account for `reason` (idempotent); True when it was not paused for it before."""
    created = await pool.fetchval(_PAUSE, account_id, reason, detail, token_digest, probe_in)
    return bool(created)


async def resume(pool: asyncpg.Pool | asyncpg.Connection, account_id: str, *reasons: PauseReason) -> bool:
    """Lift these pauses (and wake the workers); True when one was lifted."""
    row = await pool.fetchrow(_RESUME, account_id, list(reasons))
    return bool(row and row["n"])


async def of_account(pool: asyncpg.Pool | asyncpg.Connection, account_id: str) -> list[Pause]:
    return [_pause(r) for r in await pool.fetch(_OF_ACCOUNT, account_id)]


async def every_pause(pool: asyncpg.Pool | asyncpg.Connection) -> list[Pause]:
    return [_pause(r) for r in await pool.fetch(_ALL)]


async def probe_due(pool: asyncpg.Pool, account_id: str, reason: PauseReason) -> bool | None:
    """None when the account is not paused for `reason`; else whether its probe is due."""
    row = await pool.fetchrow(_PROBE_DUE, account_id, reason)
    return None if row is None else bool(row["due"])


async def probe_later(pool: asyncpg.Pool, account_id: str, reason: PauseReason, seconds: float) -> None:
    await pool.execute(_NEXT_PROBE, account_id, reason, float(seconds))


def state_of(pauses: Sequence[Pause]) -> tuple[AccountState, str | None]:
    """The account's state and why, from its pauses."""
    by_reason = {p.reason: p for p in pauses}
    for reason in SHOWN_FIRST:
        if reason in by_reason:
            return AccountState(reason.value), by_reason[reason].detail
    return AccountState.ACTIVE, None
