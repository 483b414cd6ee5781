"""Per API key rate limits (`TICKER_RATE_LIMITS`), shared by every instance of the service.

Each API key has its own budget (without `TICKER_API_KEYS` all requests share one): at most `count`
requests in any `seconds`, for each rule. The budgets are kept in PostgreSQL by the same sliding-window
rings that keep Kite's limits (`brokers.limits.RateLimiter`, its `rate_limit_reserve` function), asked
with a deadline of now: a request either has a slot at once or is refused with 429 and `Retry-After`
(the seconds until its next slot), taking nothing. Public routes (health, metrics, documentation) and
requests that prove themselves (Kite's postbacks and login) are not counted. Off (no database work at
all) while the variable is unset.
"""

from __future__ import annotations

import math

import asyncpg

from ticker_service.brokers.limits import Granted, Limit, RateLimiter
from ticker_service.system.auth import Caller
from ticker_service.system.errors import ApiError


class ApiKeyLimits:
    def __init__(self, pool: asyncpg.Pool, rules: tuple[tuple[int, float], ...]) -> None:
        # no margin: these windows are counted where they are enforced, on the database's clock
        self.limits = [
            Limit(f"api_requests_{count}_per_{seconds:g}s", count, seconds, margin=0.0) for count, seconds in rules
        ]
        self.limiter = RateLimiter(pool)

    async def spend(self, caller: Caller) -> None:
        """Take one request from the caller's budget, or refuse it: 429 with Retry-After."""
        outcome = await self.limiter.acquire(caller.budget, self.limits, deadline=0.0)
        if isinstance(outcome, Granted):
            return
        retry_after = max(1, math.ceil(outcome.needed))
        rule = outcome.limit.describe() if outcome.limit is not None else "the rate limit"
        raise ApiError(
            429,
            f"X-API-Key: this key has used its requests ({rule}); retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
