"""Which of Kite's limits each call takes, across every instance (the limiter is `brokers.limits`).

A change (place, modify, cancel) takes the three order limits at once (10 a second, 400 a minute,
5,000 a day), waiting for its turn while the task's deadline allows; past it the task fails unsent
(`BrokerDeadline`), never placed late. A read takes the 10-a-second budget of the other endpoints,
waiting at most the call's own timeout. The API key itself is not written to the database: the
limits are kept under a digest of it (one digest, one key's budget, whichever instance computes it).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime

import asyncpg

from ticker_service.brokers.base import BrokerDeadline, BrokerUnavailable
from ticker_service.brokers.limits import (
    DEFAULT_MARGIN,
    KITE_HISTORICAL_LIMITS,
    KITE_ORDER_LIMITS,
    KITE_OTHER_LIMITS,
    CalendarDay,
    Limit,
    RateLimiter,
    Refused,
)

ORDERS_PER_DAY = next(limit for limit in KITE_ORDER_LIMITS if limit.name == "orders_per_day")


def limit_key(api_key: str) -> str:
    return "kite:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]


def with_margin(limits: tuple[Limit, ...], margin: float) -> tuple[Limit, ...]:
    """The sliding windows with this margin; a calendar day keeps its own (clock offsets matter there)."""
    return tuple(limit if isinstance(limit.window, CalendarDay) else replace(limit, margin=margin) for limit in limits)


class KiteTurns:
    def __init__(self, pool: asyncpg.Pool, api_key: str, *, margin: float = DEFAULT_MARGIN) -> None:
        self.limiter = RateLimiter(pool)
        self.key = limit_key(api_key)
        self.orders = with_margin(KITE_ORDER_LIMITS, margin)
        self.other = with_margin(KITE_OTHER_LIMITS, margin)
        self.history = with_margin(KITE_HISTORICAL_LIMITS, margin)

    async def change(self, operation: str, deadline_at: datetime) -> None:
        granted = await self.limiter.acquire(self.key, self.orders, deadline=deadline_at)
        if isinstance(granted, Refused):
            raise BrokerDeadline(f"not sent before its deadline: {granted.message}")

    async def read(self, *, deadline_in: float) -> None:
        granted = await self.limiter.acquire(self.key, self.other, deadline=deadline_in)
        if isinstance(granted, Refused):
            raise BrokerUnavailable(f"no turn for a read under Kite's limits: {granted.message}")

    async def historical(self, *, deadline_in: float) -> None:
        granted = await self.limiter.acquire(self.key, self.history, deadline=deadline_in)
        if isinstance(granted, Refused):
            raise BrokerUnavailable(f"no turn for historical data under Kite's limits: {granted.message}")

    async def orders_today(self) -> tuple[int, int]:
        return await self.limiter.used(self.key, ORDERS_PER_DAY), ORDERS_PER_DAY.count
