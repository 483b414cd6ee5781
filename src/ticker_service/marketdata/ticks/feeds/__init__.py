"""Upstream tick feeds: what an account's holder reads ticks from (Kite's ticker, or the paper model)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from ticker_service.marketdata.packets import Mode


class TickFeed(Protocol):
    """An account's upstream: told what to carry (`apply`), yields batches of ticks (`ticks`) as Kite's
    binary packets, the one form a tick has inside the service (`marketdata.packets` reads them)."""

    async def apply(self, desired: dict[int, Mode]) -> None:
        """Carry exactly these instruments in these modes from now on (the holder's whole wish list)."""

    def ticks(self) -> AsyncIterator[list[bytes]]:
        """Batches of tick packets, until the feed is closed."""
        ...
