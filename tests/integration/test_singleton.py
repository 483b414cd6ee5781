"""A singleton job under its advisory lock: one process runs it; when the lock's connection dies the
job stops at once and the lock is taken again, here or by another process."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from tests.conftest import eventually
from ticker_service.db.engine import asyncpg_dsn
from ticker_service.jobs.singleton import hold_singleton

LOCK = 0x7469636B_7E57


async def test_one_of_two_holders_runs_the_job_and_a_killed_lock_connection_hands_it_over(
    database_url: str, db: asyncpg.Connection
) -> None:
    dsn = asyncpg_dsn(database_url)
    running: list[str] = []
    started: list[str] = []
    cancelled: list[str] = []

    def job(name: str) -> object:
        async def run() -> None:
            started.append(name)
            running.append(name)
            try:
                await asyncio.Event().wait()  # a stream: runs until cancelled
            except asyncio.CancelledError:
                cancelled.append(name)
                raise
            finally:
                running.remove(name)

        return run

    stop = asyncio.Event()
    holders = [
        asyncio.create_task(hold_singleton(name, dsn, LOCK, job(name), stop, check_every=0.2, restart_after=0.1))
        for name in ("a", "b")
    ]
    try:
        await eventually(lambda: len(running) == 1)
        first = running[0]
        await asyncio.sleep(0.5)
        assert running == [first] and started == [first]  # the other one only tries for the lock

        killed = await db.fetchval(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", f"ticker-{first}"
        )
        assert killed
        await eventually(lambda: cancelled == [first])  # noticed when the connection closed, not at a poll
        await eventually(lambda: len(running) == 1)  # and the job runs again under the lock, in one process
        assert len(started) == 2
    finally:
        stop.set()
        for holder in holders:
            holder.cancel()
        for holder in holders:
            with contextlib.suppress(BaseException):
                await holder
