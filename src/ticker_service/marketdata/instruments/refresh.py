"""Kite's instrument dump, fetched once a day by one process for every instance.

Kite publishes the day's dump before the market opens (instruments expire, new strikes appear): a
stored dump is stale once an 08:30 IST has passed since it was fetched. A singleton job (advisory
lock, as `jobs/`) checks every minute, so a dump is fetched after 08:30 each day and at start-up
when the stored one is older than the last 08:30. A request that finds no dump at all fetches it at
once; both paths fetch under one per-account advisory lock and look again once they hold it, so
instances that ask together still fetch once.

The lock is a session lock on a pooled connection: no transaction is open during the broker call.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import datetime, time, timedelta
from typing import Any, Protocol, runtime_checkable

import asyncpg
import structlog

from ticker_service.marketdata.instruments.store import fetched_at, parse_dump_row, replace_dump
from ticker_service.timeutil import IST, utcnow

log = structlog.get_logger("ticker.instruments")

REFRESH_AT = time(8, 30)  # IST
REFRESH_JOB_LOCK = 0x7469636B_0010  # the singleton job
_DUMP_LOCKS = 0x74696364_00000000  # + a 32-bit hash of the account id: one fetch at a time per account
JOB_INTERVAL = 60.0


@runtime_checkable
class DumpSource(Protocol):
    """A broker that lists its instruments (Kite's `instruments()`), under its own rate limits."""

    async def instrument_dump(self) -> list[dict[str, Any]]: ...


def dump_lock(account_id: str) -> int:
    return _DUMP_LOCKS + zlib.crc32(account_id.encode())


def last_refresh_time(now: datetime) -> datetime:
    """The latest 08:30 IST at or before `now`."""
    local = now.astimezone(IST)
    today = datetime.combine(local.date(), REFRESH_AT, IST)
    return today if local >= today else today - timedelta(days=1)


def is_stale(fetched: datetime | None, now: datetime) -> bool:
    return fetched is None or fetched < last_refresh_time(now)


async def refresh_dump(
    pool: asyncpg.Pool, account_id: str, source: DumpSource, *, only_if_missing: bool = False
) -> bool:
    """Fetch and store the account's dump if it is stale (or, with `only_if_missing`, absent).
    Returns True when this call fetched it."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", dump_lock(account_id))
        try:
            fetched = await fetched_at(conn, account_id)
            if fetched is not None and (only_if_missing or not is_stale(fetched, utcnow())):
                return False  # another process fetched it while this one waited for the lock
            rows = await source.instrument_dump()
            await replace_dump(conn, account_id, [parse_dump_row(r) for r in rows])
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", dump_lock(account_id))
    log.info("instrument dump stored", account_id=account_id, instruments=len(rows))
    return True


async def refresh_stale_dumps(pool: asyncpg.Pool, sources: Mapping[str, DumpSource]) -> int:
    """The job's step: every account whose dump is stale is fetched again; returns how many were."""
    fetched = 0
    for account_id, source in sources.items():
        if not is_stale(await fetched_at(pool, account_id), utcnow()):
            continue
        try:
            fetched += await refresh_dump(pool, account_id, source)
        except Exception as exc:  # a dead session or Kite down: try again next minute, others go on
            log.warning("could not fetch the instrument dump", account_id=account_id, error=repr(exc))
    return fetched
