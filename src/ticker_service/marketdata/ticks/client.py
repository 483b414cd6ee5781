"""One tick socket's wants and its conflating slot: never more than one pending tick per instrument.

The hub offers each new tick to every client of the account that wants the instrument; an offer
replaces the instrument's pending tick if the socket has not taken it yet. A client that stops
reading therefore holds at most one tick per instrument it wants, whatever the feed's rate: memory
stays flat, and when it reads again it gets the latest of each, which is all a tick is worth.

Wants: a client that never said what it wants follows the account's stored subscriptions
(`explicit` is None) and shares the stored list itself (never edited in place: a change replaces
it); its first control message turns the stored list into its own and edits it.

Shared messages: the hub offers each batch of ticks to every client of the account at once. A
client that takes exactly that batch (nothing was pending, it wanted every tick) and has the same
wants as another sends the same bytes, so the message is encoded once per batch and wants
(`SharedBatch`), not once per socket: with 100 sockets following one list, 100 times less work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

from ticker_service.marketdata.packets import Mode
from ticker_service.marketdata.ticks.entry import TickEntry
from ticker_service.system import metrics

_CONFLATED = metrics.TICKS_CONFLATED.labels(stage="client")

Messages = list[str | bytes]


class SharedBatch:
    """One dispatch of ticks to every client of an account, and its messages by (endpoint, wants)."""

    __slots__ = ("_covers", "_messages", "by_token", "entries")

    def __init__(self, entries: Sequence[TickEntry]) -> None:
        self.entries = entries
        self.by_token = {entry.token: entry for entry in entries}  # read-only: clients share it as pending
        self._messages: dict[tuple[str, int], tuple[dict[int, Mode], Messages]] = {}
        self._covers: dict[int, tuple[dict[int, Mode], bool]] = {}

    def covered_by(self, wants: dict[int, Mode]) -> bool:
        """Whether `wants` takes every tick of the batch (once per wants object, not per client)."""
        known = self._covers.get(id(wants))
        if known is not None and known[0] is wants:
            return known[1]
        covered = all(token in wants for token in self.by_token)
        self._covers[id(wants)] = (wants, covered)
        return covered

    def messages(self, endpoint: str, wants: dict[int, Mode], build: Callable[[], Messages]) -> Messages:
        """The messages of this batch for these wants, built by the first client that asks."""
        key = (endpoint, id(wants))
        known = self._messages.get(key)
        if known is not None and known[0] is wants:  # the same wants object, not a reused id
            return known[1]
        built = build()
        self._messages[key] = (wants, built)
        return built


class TickClient:
    __slots__ = (
        "_pending",
        "_ready",
        "_shared",
        "account_id",
        "closed",
        "conflated",
        "endpoint",
        "explicit",
        "taken_from",
        "wants",
    )

    def __init__(self, account_id: str, endpoint: str, stored: dict[int, Mode]) -> None:
        self.account_id = account_id
        self.endpoint = endpoint  # "ticks" or "kite", for metrics
        self.explicit: dict[int, Mode] | None = None
        self.wants: dict[int, Mode] = stored  # what the client gets now (the stored list is shared)
        self.conflated = 0
        self.closed = False
        self._pending: dict[int, TickEntry] = {}
        self._shared: SharedBatch | None = None  # the batch that is exactly what is pending, if one is
        self.taken_from: SharedBatch | None = None  # ... for what `take` returned last
        self._ready = asyncio.Event()

    # ---- wants ---------------------------------------------------------------------------------

    def follow_stored(self, stored: dict[int, Mode]) -> list[int]:
        """The account's stored list changed: a client that never chose follows it; the new tokens."""
        if self.explicit is not None:
            return []
        new = [t for t in stored if t not in self.wants]
        self.wants = stored
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
        unwanted = [t for t in self._pending if t not in self.wants]
        if unwanted:
            pending = self._writable_pending()
            for token in unwanted:
                del pending[token]

    def _writable_pending(self) -> dict[int, TickEntry]:
        """The pending ticks, to change: a shared batch's dict is copied first (it is everyone's)."""
        if self._shared is not None and self._pending is self._shared.by_token:
            self._pending = dict(self._pending)
        self._shared = None
        return self._pending

    # ---- ticks ---------------------------------------------------------------------------------

    def offer(self, entry: TickEntry) -> None:
        if entry.token not in self.wants or self.closed:
            return
        pending = self._writable_pending()
        if entry.token in pending:
            self.conflated += 1
            _CONFLATED.inc()
        pending[entry.token] = entry
        self._ready.set()

    def offer_all(self, entries: Iterable[TickEntry], shared: SharedBatch | None = None) -> None:
        """`offer` of each entry in turn, in one loop: the hub offers every batch to every client."""
        if self.closed:
            return
        if shared is not None and not self._pending and shared.covered_by(self.wants):
            # the common case, every socket following the same list: the batch itself is pending
            self._pending, self._shared = shared.by_token, shared
            if shared.by_token:
                self._ready.set()
            return
        wants, pending = self.wants, self._writable_pending()
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
        self.taken_from, self._shared = self._shared, None
        return taken

    def close(self) -> None:
        self.closed = True
        self._pending, self._shared = {}, None
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._pending)
