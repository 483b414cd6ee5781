"""Run a periodic job in exactly one process, under a PostgreSQL advisory lock.

The lock is held by a dedicated connection for as long as this process runs the job; if that
connection dies the lock is released by the server and another instance takes over. The jobs are
written so that a brief overlap during such a hand-over is harmless (conditional updates,
deduplicated events): the lock is for efficiency and order, not for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import asyncpg
import structlog

log = structlog.get_logger("ticker.jobs")

MATCHER_LOCK = 0x7469636B_0002
RECONCILE_LOCK = 0x7469636B_0003
CLEANUP_LOCK = 0x7469636B_0004
WEBHOOK_FANOUT_LOCK = 0x7469636B_0005


async def _pause(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    """Sleep up to `timeout`, ending early on `stop` or on `wake` (which is then cleared)."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        if wake is not None:
            wake.clear()


async def run_singleton(
    name: str,
    dsn: str,
    lock_key: int,
    step: Callable[[], Awaitable[object]],
    interval: Callable[[], float],
    stop: asyncio.Event,
    wake: asyncio.Event | None = None,
    min_gap: float = 0.0,
) -> None:
    """Call `step` every `interval()` seconds (or when `wake` is set, but never sooner than `min_gap`
    after the last step, so a storm of wake-ups becomes one step per gap) while holding `lock_key`;
    try for the lock meanwhile."""
    while not stop.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn, server_settings={"application_name": f"ticker-{name}"})
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
                    log.info("singleton job acquired", job=name)
                    while not stop.is_set():
                        try:
                            await step()
                        except Exception:
                            log.exception("singleton job step failed", job=name)
                        await conn.fetchval("SELECT 1")  # fail fast if the lock's connection died
                        if min_gap:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(stop.wait(), min_gap)
                        await _pause(stop, wake, interval())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("singleton job lost its database connection", job=name, error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
