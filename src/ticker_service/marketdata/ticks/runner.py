"""Market data's part of a running instance: the hub, and the holders of the accounts' feeds.

A broker whose own connection carries ticks (Kite's ticker, held by the account's order-update
stream: `TickCarrier`) is handed the holder to run beside that stream, one holder per account. A
simulated account (`PriceModel`) has no upstream connection: its feed is the price model, held
under a lock of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import structlog

from ticker_service.accounts import feeds
from ticker_service.brokers.base import PriceModel
from ticker_service.instruments import InstrumentBook
from ticker_service.marketdata.subscriptions.limits import FeedLimits
from ticker_service.marketdata.ticks.feeds import TickFeed
from ticker_service.marketdata.ticks.feeds.paper import PaperTickFeed
from ticker_service.marketdata.ticks.holder import hold_ticks
from ticker_service.marketdata.ticks.hub import TickHub
from ticker_service.settings import Settings
from ticker_service.system import metrics
from ticker_service.timeutil import utcnow

log = structlog.get_logger("ticker.marketdata")

RECORD_EVERY = 10.0
PAPER_DETAIL = "paper price model"


class MarketData:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        market = settings.market
        self.limits = FeedLimits(market.feed_connections, market.instruments_per_connection)
        self.hub = TickHub(settings.server.instance_id, self.limits)
        self.pool: asyncpg.Pool | None = None

    def holder(self, account_id: str, pool: asyncpg.Pool) -> Callable[[TickFeed], Coroutine[Any, Any, None]]:
        """What runs an account's tick holder on a feed (the Kite stream calls it with its connections)."""
        return functools.partial(
            hold_ticks,
            account_id,
            pool=pool,
            wake=self.hub.holder_wake(account_id),
            limits=self.limits,
            origin=self.hub.origin,
            local=functools.partial(self.hub.deliver, account_id),
        )

    async def run_paper(self, account_id: str, model: PriceModel, instruments: InstrumentBook) -> None:
        """The paper account's feed, while this process holds its tick lock; records its state for health."""
        assert self.pool is not None
        pool = self.pool
        feed = PaperTickFeed(instruments, model=model, interval=self.settings.market.paper_tick_interval)
        recording = asyncio.create_task(self._record_paper(account_id, pool), name=f"paper-feed-state-{account_id}")
        _set_state(account_id, "connected")
        try:
            await self.holder(account_id, pool)(feed)
        finally:
            feed.close()
            recording.cancel()
            with contextlib.suppress(BaseException):
                await recording
            _set_state(account_id, None)
            with contextlib.suppress(Exception):
                await self._record(pool, account_id, "disconnected", "this instance stopped following the account")

    async def _record_paper(self, account_id: str, pool: asyncpg.Pool) -> None:
        while True:
            try:
                await self._record(pool, account_id, "connected", PAPER_DETAIL)
            except Exception as exc:
                log.warning("could not record the paper feed's state", account_id=account_id, error=str(exc))
            await asyncio.sleep(RECORD_EVERY)

    async def _record(self, pool: asyncpg.Pool, account_id: str, state: str, detail: str) -> None:
        await feeds.record(
            pool,
            account_id,
            state,
            detail,
            instance_id=self.settings.server.instance_id,
            reconnects=0,
            last_frame_at=utcnow() if state == "connected" else None,
        )


_STATES = ("connected", "disconnected")


def _set_state(account_id: str, state: str | None) -> None:
    for known in _STATES:
        metrics.FEED_STATE.labels(account=account_id, state=known).set(1 if known == state else 0)
