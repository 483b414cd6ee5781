"""The account's feed holder: keeps the upstream feed's instruments in line with everyone's wants,
and publishes its ticks and the minute candles built from them.

Runs in the one process that holds the account's feed (an advisory lock: the Kite account's order
stream, which owns the ticker connections, or the paper account's tick lock). Wants are re-read
from PostgreSQL whenever a wants notification wakes it and every `SYNC_EVERY` seconds anyway (a lost
notification, a lease that ran out), so the database, not any instance's memory, decides what the
upstream carries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog

from ticker_service.marketdata.packets import Mode
from ticker_service.marketdata.subscriptions import leases
from ticker_service.marketdata.subscriptions.limits import FeedLimits
from ticker_service.marketdata.ticks.candles import TickCandleBuilder
from ticker_service.marketdata.ticks.feeds import TickFeed
from ticker_service.marketdata.ticks.publisher import TickPublisher
from ticker_service.system import metrics

log = structlog.get_logger("ticker.marketdata")

SYNC_EVERY = 2.0


async def hold_ticks(
    account_id: str,
    feed: TickFeed,
    *,
    pool: asyncpg.Pool,
    wake: asyncio.Event,
    limits: FeedLimits,
    origin: str,
    local: Callable[[list[bytes]], None] | None = None,
) -> None:
    """Until cancelled (or until the feed or the database fails: the caller restarts it). `local`
    hands each batch to this process's own clients; other instances get it through PostgreSQL."""
    publisher = TickPublisher(pool, account_id, origin=origin, local=local)
    candles = TickCandleBuilder(pool, account_id)

    async def pump() -> None:
        async for batch in feed.ticks():
            candles.add(batch)  # every tick, before the publisher keeps only the newest per instrument
            publisher.put(batch)

    async def sync() -> None:
        applied: dict[int, Mode] | None = None
        while True:
            wake.clear()
            desired = await leases.desired(pool, account_id)
            if len(desired) > limits.total:  # refused at the door; a race between instances can still pass it
                log.error("wants pass the feed's ceiling; the excess is left off", account_id=account_id)
                desired = dict(list(desired.items())[: limits.total])
            if desired != applied:
                await feed.apply(desired)
                applied = desired
                metrics.FEED_SUBSCRIPTIONS.labels(account=account_id).set(len(desired))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SYNC_EVERY):
                    await wake.wait()

    tasks = [
        asyncio.create_task(pump(), name=f"ticks-pump-{account_id}"),
        asyncio.create_task(publisher.run(), name=f"ticks-publish-{account_id}"),
        asyncio.create_task(candles.run(), name=f"tick-candles-{account_id}"),
        asyncio.create_task(sync(), name=f"ticks-wants-{account_id}"),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a failure propagates to the caller, which restarts the holder
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        metrics.FEED_SUBSCRIPTIONS.labels(account=account_id).set(0)
