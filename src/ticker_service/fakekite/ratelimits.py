"""Kite's per-key request limits, enforced when the fake is asked to (off by default).

Orders 10/s, 400/min and 5,000/day; quotes 1/s; historical 3/s; every other call 10/s (KITE.md). A
refused request answers 429 and is not executed, as Kite's. Off by default so that tests of a
client's own pacing see what it sends, not what the fake let through.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

ORDER_ROUTES = ("order.place", "order.modify", "order.cancel")
QUOTE_ROUTES = ("market.quote", "market.quote.ohlc", "market.quote.ltp")
UNLIMITED_ROUTES = ("login", "api.token", "api.token.invalidate", "ticker")

# per category: (window seconds, most requests in it)
LIMITS: dict[str, tuple[tuple[float, int], ...]] = {
    "order": ((1.0, 10), (60.0, 400), (86400.0, 5000)),
    "quote": ((1.0, 1),),
    "historical": ((1.0, 3),),
    "other": ((1.0, 10),),
}


def category(route: str) -> str | None:
    if route in UNLIMITED_ROUTES:
        return None
    if route in ORDER_ROUTES:
        return "order"
    if route in QUOTE_ROUTES:
        return "quote"
    if route == "market.historical":
        return "historical"
    return "other"


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def allow(self, route: str, now: float | None = None) -> bool:
        """Count the request if every window of its category has room; False (not counted) if not.

        `now` is the request's arrival, so that the decision can be checked against the request log."""
        cat = category(route)
        if cat is None:
            return True
        now = self._clock() if now is None else now
        seen = self._seen.setdefault(cat, deque())
        longest = max(window for window, _ in LIMITS[cat])
        while seen and now - seen[0] >= longest:
            seen.popleft()
        for window, most in LIMITS[cat]:
            if sum(1 for t in seen if now - t < window) >= most:
                return False
        seen.append(now)
        return True
