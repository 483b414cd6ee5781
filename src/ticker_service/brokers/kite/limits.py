"""Which of Kite's limits each call takes, across every instance (the limiter is `brokers.limits`).

A change (place, modify, cancel) takes the three order limits at once (10 a second, 400 a minute,
5,000 a day), waiting for its turn while the task's deadline allows; past it the task fails unsent
(`BrokerDeadline`), never placed late. A read takes the 10-a-second budget of the other endpoints,
waiting at most the call's own timeout. The API key itself is not written to the database: the
limits are kept under a digest of it (one digest, one key's budget, whichever instance computes it).
"""

from __future__ import annotations

import contextvars
import hashlib
import time
from dataclasses import replace
from datetime import datetime

import asyncpg

from ticker_service.brokers.base import BrokerDeadline, BrokerUnavailable
from ticker_service.brokers.limits import (
    DEFAULT_MARGIN,
    KITE_HISTORICAL_LIMITS,
    KITE_ORDER_LIMITS,
    KITE_OTHER_LIMITS,
    KITE_QUOTE_LIMITS,
    CalendarDay,
    Limit,
    RateLimiter,
    Refused,
)

ORDERS_PER_DAY = next(limit for limit in KITE_ORDER_LIMITS if limit.name == "orders_per_day")

# A turn is good for this share of the margin: a request that could not leave by then (its thread was
# late, the process starved) gives the turn up rather than arrive at Kite bunched with later ones.
TURN_VALIDITY_SHARE = 0.5
# When this task's turn stops being good (monotonic); read by the thread that sends the request
send_by: contextvars.ContextVar[float | None] = contextvars.ContextVar("kite_send_by", default=None)


class TurnMissed(BrokerUnavailable):
    """The request could not leave within its turn: not sent; it takes a new turn."""


def check_turn() -> None:
    """Called on the sending thread right before the request: refuse a turn gone stale."""
    deadline = send_by.get()
    if deadline is not None and time.monotonic() > deadline:
        raise TurnMissed("the request could not leave within its rate-limit turn; not sent, it takes a new turn")


def limit_key(api_key: str) -> str:
    return "kite:" + hashlib.sha256(api_key.encode()).hexdigest()[:32]


def with_margin(limits: tuple[Limit, ...], margin: float) -> tuple[Limit, ...]:
    """The sliding windows with this margin; a calendar day keeps its own (clock offsets matter there)."""
    return tuple(limit if isinstance(limit.window, CalendarDay) else replace(limit, margin=margin) for limit in limits)


class KiteTurns:
    def __init__(self, pool: asyncpg.Pool, api_key: str, *, margin: float = DEFAULT_MARGIN) -> None:
        self.margin = margin
        self.limiter = RateLimiter(pool)
        self.key = limit_key(api_key)
        self.orders = with_margin(KITE_ORDER_LIMITS, margin)
        self.other = with_margin(KITE_OTHER_LIMITS, margin)
        self.history = with_margin(KITE_HISTORICAL_LIMITS, margin)
        self.quotes = with_margin(KITE_QUOTE_LIMITS, margin)

    async def change(self, operation: str, deadline_at: datetime) -> None:
        granted = await self.limiter.acquire(self.key, self.orders, deadline=deadline_at)
        if isinstance(granted, Refused):
            raise BrokerDeadline(f"not sent before its deadline: {granted.message}")
        send_by.set(time.monotonic() + self.margin * TURN_VALIDITY_SHARE)

    async def read(self, *, deadline_in: float) -> None:
        granted = await self.limiter.acquire(self.key, self.other, deadline=deadline_in)
        if isinstance(granted, Refused):
            raise BrokerUnavailable(f"no turn for a read under Kite's limits: {granted.message}")

    async def quote(self, *, deadline_in: float) -> None:
        """Kite's quote endpoints (quote, ohlc, ltp): one request a second per key, every instance together."""
        granted = await self.limiter.acquire(self.key, self.quotes, deadline=deadline_in)
        if isinstance(granted, Refused):
            raise BrokerUnavailable(f"no turn for a quote under Kite's limits: {granted.message}")

    async def historical(self, *, deadline_in: float) -> None:
        granted = await self.limiter.acquire(self.key, self.history, deadline=deadline_in)
        if isinstance(granted, Refused):
            raise BrokerUnavailable(f"no turn for historical data under Kite's limits: {granted.message}")

    async def orders_today(self) -> tuple[int, int]:
        return await self.limiter.used(self.key, ORDERS_PER_DAY), ORDERS_PER_DAY.count
