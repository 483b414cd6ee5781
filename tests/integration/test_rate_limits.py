"""Kite's rate limits per API key, kept in PostgreSQL for every process (brokers/limits.py).

Grant instants are the database's clock (`clock_timestamp()`), as the limiter records them. Where
a test needs a particular time of day (an IST midnight, or safely far from one), it shifts the
clock the limiter reads instead of waiting for the day to turn.

Run as a script (`python -m tests.integration.test_rate_limits DSN KEY COROUTINES EACH`), this module
is one of the worker processes of the multi-process test.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from ticker_service.brokers.limits import IST_DAY, Granted, Limit, RateLimiter, Refused
from ticker_service.db.engine import asyncpg_dsn
from ticker_service.db.pool import create_pool

ROOT = Path(__file__).resolve().parents[2]
TEN_A_SECOND = Limit("orders_per_second", 10, 1.0, margin=0.1)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(asyncpg_dsn(database_url), 4)
    yield p
    await p.close()


def assert_sliding(times: list[datetime], limit: Limit) -> None:
    """No window of `limit.window` seconds, wherever it starts, holds more than `limit.count` grants;
    and the margin is kept on top: `count` + 1 consecutive grants span at least window + margin."""
    times = sorted(times)
    assert isinstance(limit.window, float)
    span = timedelta(seconds=limit.window + limit.margin)
    for i, (earlier, later) in enumerate(zip(times, times[limit.count :], strict=False)):
        assert later - earlier >= span, f"{limit.name}: grants {i} and {i + limit.count} only {later - earlier} apart"


def granted(outcome: Granted | Refused) -> Granted:
    assert isinstance(outcome, Granted), outcome
    return outcome


async def db_now(pool: asyncpg.Pool) -> datetime:
    now: datetime = await pool.fetchval("SELECT clock_timestamp()")
    return now


async def shift_to(pool: asyncpg.Pool, target: Callable[[datetime], datetime]) -> float:
    """The clock shift that puts the limiter's "now" at `target(database now)`."""
    now = await db_now(pool)
    return (target(now) - now).total_seconds()


def ist_noon(now: datetime) -> datetime:
    """Far from any IST midnight, so a daily limit cannot reset in the middle of a test."""
    return IST_DAY.start(now) + timedelta(hours=12)


async def grant_rows(db: asyncpg.Connection, key: str, name: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await db.fetch(
        "SELECT seq, at FROM rate_limit_grants WHERE api_key = $1 AND limit_name = $2 ORDER BY seq", key, name
    )
    return rows


async def wait_for_rows(db: asyncpg.Connection, key: str, name: str, count: int) -> None:
    """Until `count` grants (reservations included) are recorded: a waiter has its place."""
    for _ in range(2000):
        if len(await grant_rows(db, key, name)) == count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{name} never held {count} grants")


# ---- the worker process ----


async def _worker(dsn: str, key: str, coroutines: int, each: int) -> None:
    pool = await create_pool(dsn, 3)
    limiter = RateLimiter(pool)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def one() -> None:
        for _ in range(each):
            outcome = await limiter.acquire(key, [TEN_A_SECOND], deadline=60.0)
            woke = await db_now(pool)  # when the caller could send, on the database's clock
            record = {"pid": os.getpid(), "woke": woke.isoformat()}
            if isinstance(outcome, Granted):
                record["at"] = outcome.at.isoformat()
            else:
                record["refused"] = outcome.message
            print(json.dumps(record), flush=True)

    await asyncio.gather(*(one() for _ in range(coroutines)))
    await pool.close()


async def test_two_processes_with_concurrent_coroutines_never_exceed_ten_a_second(database_url: str) -> None:
    dsn = asyncpg_dsn(database_url)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.test_rate_limits",
            dsn,
            "api-key-1",
            "5",  # coroutines per process
            "5",  # acquisitions per coroutine, one after the other
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 120)).strip() == b"ready"
    outputs = await asyncio.gather(*(proc.communicate(b"go\n") for proc in procs))
    assert [proc.returncode for proc in procs] == [0, 0]

    records = [json.loads(line) for out, _ in outputs for line in out.decode().splitlines() if line.startswith("{")]
    assert len(records) == 50
    assert [r for r in records if "refused" in r] == []
    assert len({r["pid"] for r in records}) == 2
    grants = sorted(datetime.fromisoformat(r["at"]) for r in records)
    assert_sliding(grants, TEN_A_SECOND)
    # Nobody went before its slot.
    assert all(datetime.fromisoformat(r["woke"]) >= datetime.fromisoformat(r["at"]) for r in records)
    # Not much slower than the limit requires: 50 at 10 a second (with the margin) is about 5 s.
    ideal = 50 / 10 * (1.0 + TEN_A_SECOND.margin)
    assert (grants[-1] - grants[0]).total_seconds() < 2 * ideal


async def test_second_minute_and_daily_limits_hold_together(pool: asyncpg.Pool) -> None:
    per_second = Limit("per_second", 10, 1.0, margin=0.05)
    per_minute = Limit("per_minute", 3, 2.0, margin=0.05)  # the per-minute limit, shortened
    per_day = Limit("per_day", 5, IST_DAY, margin=0.05)
    limits = [per_second, per_minute, per_day]
    limiter = RateLimiter(pool, clock_shift=await shift_to(pool, ist_noon))

    outcomes = await asyncio.gather(*(limiter.acquire("k", limits, deadline=10.0) for _ in range(7)))

    granted = [o.at for o in outcomes if isinstance(o, Granted)]
    refused = [o for o in outcomes if isinstance(o, Refused)]
    assert len(granted) == 5
    assert_sliding(granted, per_second)
    assert_sliding(granted, per_minute)
    assert len(refused) == 2
    for refusal in refused:
        assert refusal.limit == per_day
        assert refusal.needed > 10.0  # the next IST day: refused at once, not after waiting
        assert "per_day" in refusal.message
    assert await limiter.used("k", per_day) == 5


async def test_the_daily_count_resets_at_ist_midnight(pool: asyncpg.Pool) -> None:
    per_second = Limit("per_second", 10, 1.0, margin=0.05)
    per_day = Limit("per_day", 5, IST_DAY, margin=0.05)
    limits = [per_second, per_day]
    limiter = RateLimiter(
        pool, clock_shift=await shift_to(pool, lambda now: IST_DAY.next_start(now) - timedelta(seconds=4))
    )

    first = [granted(await limiter.acquire("k", limits, deadline=1.0)) for _ in range(5)]
    midnight = IST_DAY.next_start(first[0].at)
    assert all(g.at < midnight for g in first)
    assert await limiter.used("k", per_day) == 5

    early = await limiter.acquire("k", limits, deadline=0.2)
    assert isinstance(early, Refused)
    assert early.limit == per_day
    assert early.needed > early.allowed

    after = await limiter.acquire("k", limits, deadline=10.0)
    assert isinstance(after, Granted)
    assert after.at >= midnight
    assert IST_DAY.start(after.at) == midnight
    assert await limiter.used("k", per_day) == 1


async def test_a_deadline_shorter_than_the_wait_is_refused_and_takes_no_slot(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    fast = Limit("fast", 10, 1.0, margin=0.1)
    slow = Limit("slow", 2, 2.0, margin=0.1)
    limiter = RateLimiter(pool)
    a = await limiter.acquire("k", [fast, slow], deadline=5.0)
    b = await limiter.acquire("k", [fast, slow], deadline=5.0)
    assert isinstance(a, Granted) and isinstance(b, Granted)

    refused = await limiter.acquire("k", [fast, slow], deadline=0.3)
    assert isinstance(refused, Refused)
    assert refused.limit == slow
    assert refused.allowed < refused.needed <= 2.1
    assert "slow" in refused.message
    assert len(await grant_rows(db, "k", "slow")) == 2
    assert len(await grant_rows(db, "k", "fast")) == 2

    # The slot the refused request would have had is still free: the next one gets exactly it.
    d = await limiter.acquire("k", [fast, slow], deadline=a.at + timedelta(seconds=10))
    assert isinstance(d, Granted)
    assert d.at == a.at + timedelta(seconds=2.1)

    past = await limiter.acquire("k", [fast], deadline=a.at)
    assert isinstance(past, Refused)
    assert "deadline" in past.message


async def test_a_cancelled_waiter_gives_its_slot_back(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    one = Limit("one", 1, 2.0, margin=0.1)
    limiter = RateLimiter(pool)
    a = await limiter.acquire("k", [one], deadline=5.0)
    assert isinstance(a, Granted)

    waiter = asyncio.create_task(limiter.acquire("k", [one], deadline=5.0))
    await wait_for_rows(db, "k", "one", 2)
    reserved = (await grant_rows(db, "k", "one"))[1]["at"]
    assert reserved == a.at + timedelta(seconds=2.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert [r["at"] for r in await grant_rows(db, "k", "one")] == [a.at]
    c = await limiter.acquire("k", [one], deadline=5.0)
    assert isinstance(c, Granted)
    assert c.at == reserved  # the cancelled waiter's slot, not the one after it


async def test_waiters_cancelled_at_any_moment_leave_only_the_others_grants(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    three = Limit("three", 3, 1.0, margin=0.05)
    limiter = RateLimiter(pool)
    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(limiter.acquire("k", [three], deadline=30.0)) for _ in range(12)]
    # Every other waiter is cancelled: before its reservation, during it, or while it sleeps.
    for task, delay in zip(tasks[1::2], (0.0, 0.002, 0.005, 0.01, 0.03, 0.3), strict=True):
        loop.call_later(delay, task.cancel)
    results = await asyncio.gather(*tasks, return_exceptions=True)

    granted = [r for r in results if isinstance(r, Granted)]
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) >= 1
    assert len(granted) + sum(isinstance(r, asyncio.CancelledError) for r in results) == 12
    rows = await grant_rows(db, "k", "three")
    assert [r["seq"] for r in rows] == list(range(1, len(granted) + 1))
    assert sorted(r["at"] for r in rows) == sorted(g.at for g in granted)
    ring = await db.fetchrow("SELECT seq, last_at FROM rate_limit_rings WHERE api_key = 'k' AND limit_name = 'three'")
    assert (ring["seq"], ring["last_at"]) == (len(granted), max(g.at for g in granted))
    assert_sliding([g.at for g in granted], three)


async def test_waiters_are_served_in_the_order_they_arrive(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    """A steady stream of newcomers never overtakes a waiter: its place is fixed when it arrives."""
    one = Limit("fifo", 1, 0.2, margin=0.0)
    limiter = RateLimiter(pool)
    arrivals = []
    for n in range(1, 13):
        arrivals.append(asyncio.create_task(limiter.acquire("k", [one], deadline=30.0)))
        await wait_for_rows(db, "k", "fifo", n)
    outcomes = await asyncio.gather(*arrivals)
    times = [o.at for o in outcomes if isinstance(o, Granted)]
    assert len(times) == 12
    assert times == sorted(times)
    assert all(later - earlier >= timedelta(seconds=0.2) for earlier, later in itertools.pairwise(times))


async def test_used_counts_grants_due_in_the_current_window(pool: asyncpg.Pool, db: asyncpg.Connection) -> None:
    per_two_seconds = Limit("u_two_seconds", 4, 2.0, margin=0.05)
    per_day = Limit("u_day", 6, IST_DAY, margin=0.05)
    limits = [per_two_seconds, per_day]
    limiter = RateLimiter(pool, clock_shift=await shift_to(pool, ist_noon))
    assert await limiter.used("k", per_day) == 0

    for _ in range(4):
        assert isinstance(await limiter.acquire("k", limits, deadline=5.0), Granted)
    assert await limiter.used("k", per_two_seconds) == 4
    assert await limiter.used("k", per_day) == 4

    fifth = asyncio.create_task(limiter.acquire("k", limits, deadline=5.0))
    await wait_for_rows(db, "k", "u_day", 5)
    assert await limiter.used("k", per_day) == 4  # reserved, not yet due
    assert isinstance(await fifth, Granted)
    assert await limiter.used("k", per_day) == 5
    assert await limiter.used("other-key", per_day) == 0

    for _ in range(200):  # the window passes; the day's count stays
        if await limiter.used("k", per_two_seconds) == 0:
            break
        await asyncio.sleep(0.05)
    assert await limiter.used("k", per_two_seconds) == 0
    assert await limiter.used("k", per_day) == 5


async def test_rings_keep_a_bounded_number_of_rows_and_idle_ones_are_purged(
    pool: asyncpg.Pool, db: asyncpg.Connection
) -> None:
    tiny = Limit("tiny", 5, 0.2, margin=0.0)
    limiter = RateLimiter(pool, spare=2)
    grants = [granted(await limiter.acquire("k", [tiny], deadline=10.0)) for _ in range(20)]
    assert_sliding([g.at for g in grants], tiny)
    rows = await grant_rows(db, "k", "tiny")
    assert [r["seq"] for r in rows] == list(range(14, 21))  # count + spare
    trimmed_at = await db.fetchval("SELECT trimmed_at FROM rate_limit_rings WHERE api_key = 'k'")
    assert trimmed_at == grants[12].at

    for _ in range(200):
        if await limiter.purge_idle():
            break
        await asyncio.sleep(0.05)
    assert await db.fetchval("SELECT count(*) FROM rate_limit_rings WHERE api_key = 'k'") == 0
    assert await grant_rows(db, "k", "tiny") == []
    again = await limiter.acquire("k", [tiny], deadline=1.0)
    assert isinstance(again, Granted)
    assert [r["seq"] for r in await grant_rows(db, "k", "tiny")] == [1]


if __name__ == "__main__":
    asyncio.run(_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
