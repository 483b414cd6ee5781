"""Run a periodic job in exactly one process, under a PostgreSQL advisory lock.

The lock is held by a dedicated connection for as long as this process runs the job; if that
connection dies the lock is released by the server and another instance takes over. The jobs are
written so that a brief overlap during such a hand-over is harmless (conditional updates,
deduplicated events): the lock is for efficiency and order, not for correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Callable, Iterable

import asyncpg
import structlog

log = structlog.get_logger("ticker.jobs")

HEARTBEAT_EVERY = 15.0  # seconds between checks that a held lock's quiet connection still answers
HEARTBEAT_TIMEOUT = 5.0

RECONCILE_LOCK = 0x7469636B_0003
CLEANUP_LOCK = 0x7469636B_0004
WEBHOOK_FANOUT_LOCK = 0x7469636B_0005
_ACCOUNT_LOCKS = 0x7469636C_00000000  # + a 32-bit hash of the account id: one lock per account
_TICK_LOCKS = 0x7469636D_00000000  # the same, for a paper account's tick feed


def account_lock(account_id: str) -> int:
    """The advisory lock of an account's singleton (its broker's order-update stream)."""
    return _ACCOUNT_LOCKS + zlib.crc32(account_id.encode())


def tick_lock(account_id: str) -> int:
    """The advisory lock of a paper account's tick feed (a Kite account's rides its order stream's)."""
    return _TICK_LOCKS + zlib.crc32(account_id.encode())


def check_account_locks(account_ids: Iterable[str]) -> None:
    """Two accounts whose locks collide would have one stream never run: refuse such a pair up front."""
    seen: dict[int, str] = {}
    for account_id in account_ids:
        other = seen.setdefault(account_lock(account_id), account_id)
        if other != account_id:
            raise ValueError(f"TICKER_ACCOUNTS: accounts {other!r} and {account_id!r} share a lock key; rename one")


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

    async def every_interval() -> None:
        while not stop.is_set():
            try:
                await step()
            except Exception:
                log.exception("singleton job step failed", job=name)
            if min_gap:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min_gap)
            await _pause(stop, wake, interval())

    await hold_singleton(name, dsn, lock_key, every_interval, stop)


async def hold_singleton(
    name: str,
    dsn: str,
    lock_key: int,
    run: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    *,
    restart_after: float = 1.0,
    check_every: float = 2.0,
) -> None:
    """Run the long-lived `run()` in exactly one process, while holding `lock_key`.

    For a job that is a stream rather than a step (a broker's order updates): it runs as long as the
    lock's connection lives; if it ends or raises it is started again after `restart_after`; if the
    connection dies it is cancelled, the server releases the lock and another instance takes over.
    """
    while not stop.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn, server_settings={"application_name": f"ticker-{name}"})
            while not stop.is_set():
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key):
                    log.info("singleton job acquired", job=name)
                    await _run_while_locked(name, conn, run, stop, restart_after)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), check_every)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("singleton job lost its database connection", job=name, error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), restart_after)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)


async def _run_while_locked(
    name: str,
    conn: asyncpg.Connection,
    run: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    restart_after: float,
) -> None:
    """Run the job while the lock's connection lives. A closed connection is noticed at once (asyncpg's
    termination listener); a silent one (no RST: a network partition) by a heartbeat with a timeout
    every `HEARTBEAT_EVERY`. A `SELECT 1` every two seconds per held lock, with no timeout, was most of
    an idle instance's queries and caught neither case faster."""
    lost = asyncio.Event()

    def on_terminated(_conn: object) -> None:
        lost.set()

    conn.add_termination_listener(on_terminated)
    job: asyncio.Task[object] | None = None
    try:
        while not stop.is_set():
            if job is None:
                job = asyncio.ensure_future(run())
            watchers = [asyncio.ensure_future(lost.wait()), asyncio.ensure_future(stop.wait())]
            try:
                done, _ = await asyncio.wait({job, *watchers}, timeout=HEARTBEAT_EVERY, return_when=FIRST_COMPLETED)
            finally:
                for watcher in watchers:
                    watcher.cancel()
            if lost.is_set() or conn.is_closed():
                raise ConnectionResetError("the lock's connection closed")
            if job in done:
                if not job.cancelled() and job.exception() is not None:
                    log.error("singleton job failed; restarting", job=name, error=repr(job.exception()))
                job = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), restart_after)
            elif not done:
                await conn.fetchval("SELECT 1", timeout=HEARTBEAT_TIMEOUT)  # a silent connection: TimeoutError
    finally:
        conn.remove_termination_listener(on_terminated)
        if job is not None:
            job.cancel()
            with contextlib.suppress(BaseException):
                await job
