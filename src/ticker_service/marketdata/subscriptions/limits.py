"""Kite's instrument limits: 3,000 per ticker connection, 3 connections per API key (KITE.md).

The feed spreads an account's instruments over its connections, so the account's ceiling is their
product; a request that would pass it is refused up front with a message that says so, instead of
being accepted and silently left off the feed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class LimitExceeded(ValueError):
    """Subscribing these instruments would pass the account's ceiling."""


@dataclass(frozen=True, slots=True)
class FeedLimits:
    connections: int = 3
    per_connection: int = 3000

    @property
    def total(self) -> int:
        return self.connections * self.per_connection

    def check(self, current: Iterable[int], adding: Iterable[int]) -> None:
        have = set(current)
        new = {t for t in adding if t not in have}
        if len(have) + len(new) > self.total:
            raise LimitExceeded(
                f"instrument_token: at most {self.total} instruments per account "
                f"({self.connections} connections x {self.per_connection} instruments, Kite's limits); "
                f"{len(have)} already subscribed, {len(new)} more asked"
            )
