"""The rate limiter's rules as PostgreSQL runs them (migration 0010): when a ring allows its next grant.

Rings are written directly, with instants a minute or more ahead of the database's clock, so the
bound a ring sets is later than "now" and the function's answer is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from ticker_service.brokers.limits import IST_DAY, Limit
from ticker_service.timeutil import IST

SECOND = Limit("per_second", 10, 1.0, margin=0.1)
DAY = Limit("per_day", 5, IST_DAY, margin=0.1)
KEY = "rules"


async def next_allowed(conn: asyncpg.Connection, limit: Limit, earlier: datetime) -> datetime:
    window, margin, tz = limit.sql_rule()
    at: datetime = await conn.fetchval("SELECT rate_limit_next_allowed($1, $2, $3, $4)", earlier, window, margin, tz)
    return at


async def ring(
    conn: asyncpg.Connection,
    limit: Limit,
    seq: int,
    *,
    last: datetime | None = None,
    predecessor: datetime | None = None,
    trimmed: datetime | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO rate_limit_rings (api_key, limit_name, seq, last_at, trimmed_at) VALUES ($1, $2, $3, $4, $5)",
        KEY,
        limit.name,
        seq,
        last,
        trimmed,
    )
    if predecessor is not None:
        await conn.execute(
            "INSERT INTO rate_limit_grants (api_key, limit_name, seq, at) VALUES ($1, $2, $3, $4)",
            KEY,
            limit.name,
            seq + 1 - limit.count,
            predecessor,
        )


async def reserve(conn: asyncpg.Connection, limits: Sequence[Limit], *, deadline_in: float = 10**6) -> asyncpg.Record:
    ordered = sorted(limits, key=lambda limit: limit.name)
    rules = [limit.sql_rule() for limit in ordered]
    row: asyncpg.Record = await conn.fetchrow(
        "SELECT * FROM rate_limit_reserve($1, $2, $3, $4, $5, $6, NULL, $7, 0, 32)",
        KEY,
        [limit.name for limit in ordered],
        [limit.count for limit in ordered],
        [r[0] for r in rules],
        [r[1] for r in rules],
        [r[2] for r in rules],
        float(deadline_in),
    )
    return row


async def ahead(conn: asyncpg.Connection, seconds: float = 60.0) -> datetime:
    now: datetime = await conn.fetchval("SELECT clock_timestamp()")
    return now + timedelta(seconds=seconds)


async def test_a_sliding_window_waits_for_the_grant_count_places_back_plus_the_margin(
    db: asyncpg.Connection,
) -> None:
    earlier = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    assert await next_allowed(db, SECOND, earlier) == earlier + timedelta(seconds=1.1)


async def test_a_calendar_day_waits_for_the_next_ist_midnight(db: asyncpg.Connection) -> None:
    assert await next_allowed(db, DAY, datetime(2026, 3, 2, 6, 0, tzinfo=UTC)) == datetime(2026, 3, 3, tzinfo=IST)


async def test_a_grant_just_before_midnight_counts_against_the_next_day_too(db: asyncpg.Connection) -> None:
    """It may arrive at Kite after midnight: the day it bounds is the one after the margin."""
    late = datetime(2026, 3, 2, 23, 59, 59, 950000, tzinfo=IST)
    assert await next_allowed(db, DAY, late) == datetime(2026, 3, 4, tzinfo=IST)
    assert await next_allowed(db, DAY, late - timedelta(seconds=1)) == datetime(2026, 3, 3, tzinfo=IST)


async def test_a_ring_not_yet_full_allows_a_grant_now(db: asyncpg.Connection) -> None:
    now: datetime = await db.fetchval("SELECT clock_timestamp()")
    await ring(db, SECOND, 9, last=now - timedelta(seconds=0.5))
    row = await reserve(db, [SECOND])
    assert (row["o_outcome"], row["o_at"], row["o_binding"]) == ("granted", row["o_now"], None)
    assert await db.fetchval("SELECT seq FROM rate_limit_rings WHERE api_key = $1", KEY) == 10


async def test_a_full_ring_is_bound_by_its_predecessor(db: asyncpg.Connection) -> None:
    t = await ahead(db)
    await ring(db, SECOND, 10, last=t, predecessor=t - timedelta(seconds=0.5))
    row = await reserve(db, [SECOND])
    assert (row["o_outcome"], row["o_at"], row["o_binding"]) == ("granted", t + timedelta(seconds=0.6), SECOND.name)


async def test_no_grant_comes_before_the_latest_reservation(db: asyncpg.Connection) -> None:
    t = await ahead(db)
    await ring(db, SECOND, 3, last=t)
    row = await reserve(db, [SECOND])
    assert (row["o_at"], row["o_binding"]) == (t, SECOND.name)


async def test_a_trimmed_predecessor_is_replaced_by_the_newest_trimmed_grant(db: asyncpg.Connection) -> None:
    t = await ahead(db)
    await ring(db, SECOND, 10, last=t + timedelta(seconds=0.1), trimmed=t)
    assert (await reserve(db, [SECOND]))["o_at"] == t + timedelta(seconds=1.1)


async def test_the_latest_bound_of_all_rings_wins_and_is_named(db: asyncpg.Connection) -> None:
    t = await ahead(db)
    day_start = t.astimezone(IST).replace(hour=0, minute=0, second=0, microsecond=0)
    await ring(db, SECOND, 10, last=t, predecessor=t - timedelta(seconds=0.5))
    # the day's grants all inside t's IST day (an hour back crossed midnight when run just after it)
    await ring(db, DAY, 5, last=t, predecessor=day_start + (t - day_start) / 2)
    row = await reserve(db, [SECOND, DAY])
    assert (row["o_binding"], row["o_at"]) == (DAY.name, IST_DAY.next_start(t))


async def test_a_slot_past_the_deadline_is_refused_and_takes_nothing(db: asyncpg.Connection) -> None:
    t = await ahead(db)
    await ring(db, SECOND, 10, last=t, predecessor=t - timedelta(seconds=0.5))
    row = await reserve(db, [SECOND], deadline_in=30.0)
    assert (row["o_outcome"], row["o_binding"]) == ("refused", SECOND.name)
    assert await db.fetchval("SELECT seq FROM rate_limit_rings WHERE api_key = $1", KEY) == 10
    assert await db.fetchval("SELECT count(*) FROM rate_limit_grants WHERE api_key = $1", KEY) == 1


async def test_a_missing_ring_is_reported_not_created(db: asyncpg.Connection) -> None:
    """Rings are created outside the locking transaction, so locks are always taken in one order."""
    assert (await reserve(db, [SECOND]))["o_outcome"] == "missing"
    assert await db.fetchval("SELECT count(*) FROM rate_limit_rings") == 0
