"""This instance's tick fan-out: NOTIFY in, every local tick socket out, and the lease of their wants.

One hub per process. Tick notifications (`channel`) carry the packets themselves, so a tick reaches
a socket on any instance with no query; each is kept as the account's latest tick of that
instrument (for snapshots) and offered to every local client of the account, whose conflating slot
(`client.TickClient`) keeps memory flat whatever the client's speed. Only accounts with local
clients are kept: a tick of an account nobody here follows costs a decode and nothing else.

The other direction: what the local clients want is written as this instance's lease row of the
account (`subscriptions.leases`), promptly after a change and renewed meanwhile, and the feed's
holder (on whichever instance) is woken by the same notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import asyncpg
import structlog

from ticker_service.marketdata.packets import Mode, packet_token
from ticker_service.marketdata.subscriptions import leases, store
from ticker_service.marketdata.subscriptions.limits import FeedLimits
from ticker_service.marketdata.ticks import latest
from ticker_service.marketdata.ticks.channel import decode_notice, decode_packets
from ticker_service.marketdata.ticks.client import SharedBatch, TickClient
from ticker_service.marketdata.ticks.entry import TickEntry
from ticker_service.marketdata.ticks.wire import highest
from ticker_service.system import metrics

log = structlog.get_logger("ticker.marketdata")

LEASE_SECONDS = 15.0  # a lease row of a dead instance stops counting after this
RENEW_EVERY = LEASE_SECONDS / 3

# which of these tokens the account may subscribe (the instrument catalogue's answer)
KnownTokens = Callable[[str, list[int]], Awaitable[set[int]]]


class _Account:
    __slots__ = ("clients", "created", "latest", "stored")

    def __init__(self) -> None:
        self.created = time.monotonic()  # the publisher's `since` is on the same clock
        self.clients: set[TickClient] = set()
        self.latest: dict[int, TickEntry] = {}
        self.stored: dict[int, Mode] | None = None


class TickHub:
    def __init__(self, instance_id: str, limits: FeedLimits) -> None:
        self.instance_id = instance_id
        self.origin = uuid.uuid4().hex  # names this process's hub in the tick notifications it causes
        self.limits = limits
        self.pool: asyncpg.Pool | None = None
        self.known_tokens: KnownTokens | None = None
        self._accounts: dict[str, _Account] = {}
        self._holder_wakes: dict[str, asyncio.Event] = {}
        self._dirty: set[str] = set()
        self._leased: set[str] = set()
        self._lease_wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reloads: set[asyncio.Task[Any]] = set()
        self._closing = False

    # ---- life cycle ----------------------------------------------------------------------------

    async def start(self, pool: asyncpg.Pool, known_tokens: KnownTokens) -> None:
        self.pool = pool
        self.known_tokens = known_tokens
        self._closing = False
        self._task = asyncio.create_task(self._lease_loop(), name="tick-leases")

    async def stop(self) -> None:
        """Close every client (their sessions end their sockets), then give up this instance's leases."""
        self._closing = True
        for account in self._accounts.values():
            for client in account.clients:
                client.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._reloads):
            task.cancel()
        if self.pool is not None:
            for account_id in list(self._leased):
                with contextlib.suppress(Exception):
                    await leases.write(self.pool, self.instance_id, account_id, {}, LEASE_SECONDS, notify=True)

    @property
    def closing(self) -> bool:
        return self._closing

    def _pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("the tick hub is not started")
        return self.pool

    # ---- notifications -------------------------------------------------------------------------

    def on_ticks(self, payload: str) -> None:
        if not payload:
            return  # the listener reconnected: ticks are latest-value data, the next ones repair it
        try:
            notice = decode_notice(payload)
            account = self._accounts.get(notice.account_id)
            if account is None:
                return  # nobody here follows the account: not even decoded
            if notice.origin == self.origin and notice.since > account.created:
                # this process's holder handed these over directly (`deliver`), before the database, and
                # the account's clients here were here then: they and the latest-tick cache have them
                return
            packets = decode_packets(notice.encoded)
        except ValueError as exc:
            log.warning("tick notification skipped", error=str(exc))
            return
        if notice.origin == self.origin:
            # handed over before these clients came: only those whose snapshot read the table before
            # the commit lack them, and the cache says which ticks it has not seen
            known = account.latest
            packets = [p for p in packets if (e := known.get(packet_token(p))) is None or e.packet != p]
            if not packets:
                return
        self.deliver(notice.account_id, packets)

    def deliver(self, account_id: str, packets: list[bytes]) -> None:
        """A batch of the account's ticks to every client of it here, and the latest-tick cache."""
        account = self._accounts.get(account_id)
        if account is None:
            return
        entries = [TickEntry(packet) for packet in packets]
        for entry in entries:
            account.latest[entry.token] = entry
        shared = SharedBatch(entries)  # clients with the same wants share its messages
        for client in account.clients:  # the whole batch to each client: one call, not one per tick
            client.offer_all(entries, shared)

    def on_wants(self, payload: str) -> None:
        """`<account> <kind>`; empty after a listener reconnect (every account, every kind)."""
        account_id, _, kind = payload.partition(" ")
        targets = [account_id] if account_id else list(self._holder_wakes)
        for target in targets:
            wake = self._holder_wakes.get(target)
            if wake is not None:
                wake.set()
        if kind in ("", store.STORED):
            for target in [account_id] if account_id else list(self._accounts):
                if target in self._accounts:
                    self._in_background(self._reload_stored(target))

    def holder_wake(self, account_id: str) -> asyncio.Event:
        """Set whenever the account's wants may have changed (for the account's feed holder)."""
        return self._holder_wakes.setdefault(account_id, asyncio.Event())

    # ---- clients -------------------------------------------------------------------------------

    async def connect(self, account_id: str, endpoint: str, *, follow_stored: bool = True) -> TickClient:
        """A new client of the account: following the stored list (or wanting nothing), snapshot queued."""
        if self._closing:
            raise ConnectionAbortedError("the server is shutting down")
        account = self._accounts.setdefault(account_id, _Account())
        if account.stored is None:
            stored = await store.stored(self._pool(), account_id)
            account = self._accounts.setdefault(account_id, account)  # (gone if its last client left meanwhile)
            if account.stored is None:  # clients connecting together share the first list read, so
                account.stored = stored  # their messages are built once (`SharedBatch` keys on the object)
        client = TickClient(account_id, endpoint, account.stored if follow_stored else {})
        if not follow_stored:
            client.explicit = {}
        account.clients.add(client)
        metrics.TICK_CLIENTS.labels(account=account_id, endpoint=endpoint).inc()
        self.wants_changed(account_id)
        await self.snapshot(client, list(client.wants))
        return client

    def disconnect(self, client: TickClient) -> None:
        client.close()
        account = self._accounts.get(client.account_id)
        if account is None or client not in account.clients:
            return
        account.clients.discard(client)
        metrics.TICK_CLIENTS.labels(account=client.account_id, endpoint=client.endpoint).dec()
        if not account.clients:
            del self._accounts[client.account_id]  # its cache too: the table has the latest ticks
        self.wants_changed(client.account_id)

    async def snapshot(self, client: TickClient, tokens: Iterable[int]) -> None:
        """Queue the latest tick of each instrument for the client, ahead of any change that follows."""
        account = self._accounts.get(client.account_id)
        if account is None:
            return
        wanted = list(tokens)
        missing = [t for t in wanted if t not in account.latest]
        if missing:
            for packet in await latest.read(self._pool(), client.account_id, missing):
                entry = TickEntry(packet)
                account.latest.setdefault(entry.token, entry)  # a live tick that came meanwhile is newer
        client.offer_all(account.latest[t] for t in wanted if t in account.latest)

    async def unknown(self, account_id: str, tokens: list[int]) -> list[int]:
        """The tokens the account's instrument catalogue does not know."""
        if self.known_tokens is None:
            raise RuntimeError("the tick hub is not started")
        known = await self.known_tokens(account_id, tokens)
        return [t for t in tokens if t not in known]

    async def check_limit(self, account_id: str, tokens: list[int]) -> None:
        """LimitExceeded when adding these instruments would pass the account's feed ceiling."""
        current = set(await leases.desired(self._pool(), account_id)) | set(self.local_wants(account_id))
        self.limits.check(current, tokens)

    def local_wants(self, account_id: str) -> dict[int, Mode]:
        out: dict[int, Mode] = {}
        account = self._accounts.get(account_id)
        seen: set[int] = set()
        for client in account.clients if account else ():
            if id(client.wants) in seen:  # clients following the stored list share it: once is enough
                continue
            seen.add(id(client.wants))
            for token, mode in client.wants.items():
                out[token] = highest(out[token], mode) if token in out else mode
        return out

    def wants_changed(self, account_id: str) -> None:
        self._dirty.add(account_id)
        self._lease_wake.set()

    def stats(self) -> dict[str, int]:
        return {account_id: len(account.clients) for account_id, account in self._accounts.items()}

    # ---- background ----------------------------------------------------------------------------

    async def _reload_stored(self, account_id: str) -> None:
        try:
            stored = await store.stored(self._pool(), account_id)
        except Exception as exc:
            log.warning("stored subscriptions not re-read", account_id=account_id, error=str(exc))
            return
        account = self._accounts.get(account_id)
        if account is None:
            return
        account.stored = stored
        for client in list(account.clients):
            new = client.follow_stored(stored)
            if new:
                await self.snapshot(client, new)

    async def _lease_loop(self) -> None:
        """Write changed wants at once; renew the others every `RENEW_EVERY`."""
        last_renew = asyncio.get_running_loop().time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RENEW_EVERY):
                    await self._lease_wake.wait()
            self._lease_wake.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                for account_id in dirty:
                    wants = self.local_wants(account_id)
                    await leases.write(self._pool(), self.instance_id, account_id, wants, LEASE_SECONDS, notify=True)
                    if wants:
                        self._leased.add(account_id)
                    else:
                        self._leased.discard(account_id)
                now = asyncio.get_running_loop().time()
                if self._leased and now - last_renew >= RENEW_EVERY:
                    await leases.renew(self._pool(), self.instance_id, sorted(self._leased), LEASE_SECONDS)
                    last_renew = now
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("tick wants not written; retrying", error=str(exc))
                self._dirty |= dirty
                await asyncio.sleep(0.5)
                self._lease_wake.set()

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)
