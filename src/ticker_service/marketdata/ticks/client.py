"""One tick socket's wants and its conflating slot: never more than one pending tick per instrument.

The hub offers each new tick to every client of the account that wants the instrument; an offer
replaces the instrument's pending tick if the socket has not taken it yet. A client that stops
reading therefore holds at most one tick per instrument it wants, whatever the feed's rate: memory
stays flat, and when it reads again it gets the latest of each, which is all a tick is worth.

Wants: a client that never said what it wants follows the account's stored subscriptions
(`explicit` is None); its first control message turns the stored list into its own and edits it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from ticker_service.marketdata.packets import Mode
from ticker_service.marketdata.ticks.entry import TickEntry
from ticker_service.system import metrics

_CONFLATED = metrics.TICKS_CONFLATED.labels(stage="client")


class TickClient:
    __slots__ = ("_pending", "_ready", "account_id", "closed", "conflated", "endpoint", "explicit", "wants")

    def __init__(self, account_id: str, endpoint: str, stored: dict[int, Mode]) -> None:
        self.account_id = account_id
        self.endpoint = endpoint  # "ticks" or "kite", for metrics
        self.explicit: dict[int, Mode] | None = None
        self.wants: dict[int, Mode] = dict(stored)  # what the client gets now
        self.conflated = 0
        self.closed = False
        self._pending: dict[int, TickEntry] = {}
        self._ready = asyncio.Event()

    # ---- wants ---------------------------------------------------------------------------------

    def follow_stored(self, stored: dict[int, Mode]) -> list[int]:
        """The account's stored list changed: a client that never chose follows it; the new tokens."""
        if self.explicit is not None:
            return []
        new = [t for t in stored if t not in self.wants]
        self.wants = dict(stored)
        self._drop_unwanted()
        return new

    def subscribe(self, tokens: Iterable[int], mode: Mode | None) -> list[int]:
        """Add instruments (new ones in `mode`, default quote, as Kite does); the tokens that are new."""
        wants = self._own()
        new = []
        for token in tokens:
            if token not in wants:
                new.append(token)
                wants[token] = mode or "quote"
            elif mode is not None:
                wants[token] = mode
        self.wants = dict(wants)
        return new

    def unsubscribe(self, tokens: Iterable[int]) -> None:
        wants = self._own()
        for token in tokens:
            wants.pop(token, None)
        self.wants = dict(wants)
        self._drop_unwanted()

    def set_mode(self, mode: Mode, tokens: Iterable[int]) -> list[int]:
        """Kite ignores a mode for instruments not subscribed; so does this. The tokens changed."""
        wants = self._own()
        changed = [t for t in tokens if t in wants and wants[t] != mode]
        for token in changed:
            wants[token] = mode
        self.wants = dict(wants)
        return changed

    def _own(self) -> dict[int, Mode]:
        if self.explicit is None:
            self.explicit = dict(self.wants)
        return self.explicit

    def _drop_unwanted(self) -> None:
        for token in [t for t in self._pending if t not in self.wants]:
            del self._pending[token]

    # ---- ticks ---------------------------------------------------------------------------------

    def offer(self, entry: TickEntry) -> None:
        if entry.token not in self.wants or self.closed:
            return
        if entry.token in self._pending:
            self.conflated += 1
            _CONFLATED.inc()
        self._pending[entry.token] = entry
        self._ready.set()

    def offer_all(self, entries: Iterable[TickEntry]) -> None:
        """`offer` of each entry in turn, in one loop: the hub offers every batch to every client."""
        if self.closed:
            return
        wants, pending = self.wants, self._pending
        conflated = offered = 0
        for entry in entries:
            token = entry.token
            if token in wants:
                if token in pending:
                    conflated += 1
                pending[token] = entry
                offered += 1
        if conflated:
            self.conflated += conflated
            _CONFLATED.inc(conflated)
        if offered:
            self._ready.set()

    async def take(self, timeout: float | None = None) -> dict[int, TickEntry]:
        """Everything pending (waits up to `timeout` for something; empty after a timeout or close)."""
        if not self._pending and not self.closed:
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return {}
        taken, self._pending = self._pending, {}
        return taken

    def close(self) -> None:
        self.closed = True
        self._pending.clear()
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._pending)
