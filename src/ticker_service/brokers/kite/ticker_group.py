"""An account's Kite ticker connections: up to 3 (Kite's limit per API key), 3,000 instruments each.

The group is the account's one upstream: it spreads the instruments it is told to carry (`apply`)
over its connections, filling the first before opening the next and keeping an instrument on the
connection it is on (a move would cost a gap in its ticks), and merges their ticks into one
conflating buffer. The first connection is always open and is the only one whose order messages
are kept (Kite sends them on every connection of the user). Each connection is a
`KiteTickerClient`, with its own watchdog, reconnect and resubscription.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec
import structlog

from ticker_service.brokers.kite.config import KITE_TICKER_ROOT
from ticker_service.brokers.kite.ticker import (
    KiteTickerClient,
    TickBuffer,
    TickerConfig,
    TickerState,
    TickerStatus,
    TokenSource,
)
from ticker_service.brokers.kite.ticker_messages import OrderUpdate
from ticker_service.marketdata.packets import Mode

log = structlog.get_logger("ticker.kite.ticker")

MAX_CONNECTIONS = 3  # KITE.md: a fourth connection of an API key fails the handshake with 429
_HEALTH_ORDER = (
    TickerState.TOKEN_EXPIRED,
    TickerState.RATE_LIMITED,
    TickerState.SILENT,
    TickerState.DISCONNECTED,
    TickerState.CONNECTING,
    TickerState.CONNECTED,
)


class KiteTickerGroup:
    def __init__(
        self,
        *,
        api_key: str,
        access_token: TokenSource,
        ticker_root: str = KITE_TICKER_ROOT,
        account_id: str | None = None,
        config: TickerConfig | None = None,
        connections: int = MAX_CONNECTIONS,
    ) -> None:
        if not 1 <= connections <= MAX_CONNECTIONS:
            raise ValueError(f"connections must be between 1 and {MAX_CONNECTIONS}")
        self.config = config or TickerConfig()
        self.max_connections = connections
        self._args: dict[str, Any] = {
            "api_key": api_key,
            "access_token": access_token,
            "ticker_root": ticker_root,
            "account_id": account_id,
        }
        self.clients: list[KiteTickerClient] = [self._new_client(primary=True)]
        self._where: dict[int, int] = {}  # instrument -> index of its connection
        self._ticks = TickBuffer(self.config.tick_buffer_size)
        self._lock = asyncio.Lock()
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._log = log.bind(account_id=account_id)

    def _new_client(self, *, primary: bool) -> KiteTickerClient:
        config = msgspec.structs.replace(self.config, order_updates=primary)
        return KiteTickerClient(config=config, **self._args)

    @property
    def capacity(self) -> int:
        return self.max_connections * self.config.max_instruments

    # ---- outputs -------------------------------------------------------------------------------

    async def ticks(self) -> AsyncIterator[list[bytes]]:
        while (batch := await self._ticks.get()) is not None:
            yield batch

    def order_updates(self) -> AsyncIterator[list[OrderUpdate]]:
        return self.clients[0].order_updates()

    def status(self) -> TickerStatus:
        """The first connection's figures, in the state of the least healthy connection."""
        statuses = [c.status() for c in self.clients]
        worst = min(statuses, key=lambda s: _HEALTH_ORDER.index(s.state)).state
        first = statuses[0]
        return msgspec.structs.replace(
            first,
            state=worst,
            reconnects=sum(s.reconnects for s in statuses),
            last_error=next((s.last_error for s in statuses if s.state == worst and s.last_error), first.last_error),
            ticks_conflated=sum(s.ticks_conflated for s in statuses) + self._ticks.conflated,
            subscriptions=len(self._where),
        )

    @property
    def subscriptions(self) -> dict[int, Mode]:
        out: dict[int, Mode] = {}
        for client in self.clients:
            out.update(client.subscriptions)
        return out

    def token_changed(self) -> None:
        for client in self.clients:
            client.token_changed()

    # ---- life cycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every connection (and those opened later) until `stop` is set."""
        self._stop = stop
        for client in self.clients:
            self._start(client)
        try:
            await stop.wait()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()

    def _start(self, client: KiteTickerClient) -> None:
        assert self._stop is not None
        self._tasks.append(asyncio.create_task(client.run(self._stop), name="kite-ticker-connection"))
        self._tasks.append(asyncio.create_task(self._pump(client), name="kite-ticker-pump"))

    async def _pump(self, client: KiteTickerClient) -> None:
        async for batch in client.ticks():
            self._ticks.put_all(batch)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        self._ticks.close()

    # ---- instruments ---------------------------------------------------------------------------

    async def apply(self, desired: dict[int, Mode]) -> None:
        """Carry exactly `desired`: unsubscribe what left, change modes, place new instruments."""
        async with self._lock:
            gone = [t for t in self._where if t not in desired]
            for index, tokens in _by_connection(gone, self._where).items():
                await self.clients[index].unsubscribe(tokens)
            for token in gone:
                del self._where[token]
            changes: dict[tuple[int, Mode], list[int]] = {}
            for token, index in self._where.items():
                if self.clients[index].subscriptions.get(token) != desired[token]:
                    changes.setdefault((index, desired[token]), []).append(token)
            for (index, mode), tokens in changes.items():
                await self.clients[index].set_mode(mode, tokens)
            additions: dict[tuple[int, Mode], list[int]] = {}
            left_off = 0
            counts = [0] * len(self.clients)
            for index in self._where.values():
                counts[index] += 1
            for token, mode in desired.items():
                if token in self._where:
                    continue
                room = self._room(counts)
                if room is None:
                    left_off += 1
                    continue
                self._where[token] = room
                counts[room] += 1
                additions.setdefault((room, mode), []).append(token)
            for (index, mode), tokens in additions.items():
                await self.clients[index].subscribe(tokens, mode)
            if left_off:
                self._log.error("instruments past the connections' capacity left off", count=left_off)

    def _room(self, counts: list[int]) -> int | None:
        """The first connection with room, opening the next one when all open ones are full."""
        for index, count in enumerate(counts):
            if count < self.config.max_instruments:
                return index
        if len(self.clients) >= self.max_connections:
            return None
        client = self._new_client(primary=False)
        self.clients.append(client)
        counts.append(0)
        if self._stop is not None:
            self._start(client)
        self._log.info("ticker connection added", connections=len(self.clients))
        return len(self.clients) - 1


def _by_connection(tokens: Iterable[int], where: dict[int, int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for token in tokens:
        out.setdefault(where[token], []).append(token)
    return out
