"""The process's order stream: its tailers, its subscribers, NOTIFY routing, stats and shutdown.

Hand-over from catch-up to live, by seq (see `deliver`):

1. At connect, the socket's start is fixed: `since`, or the account's last committed seq. Its
   subscriber takes `next_seq = start + 1` next.
2. Catch-up: while `next_seq <= tailer.position` (the tailer has already fanned out events this
   socket has not had), the socket reads the next page from the database itself and sends it,
   paced by the socket (no backlog involved), advancing `next_seq`.
3. Join: once `next_seq > tailer.position`, the subscriber is added to the tailer's live set in
   the same synchronous step as that check. The tailer's next offer is `position + 1 <= next_seq`;
   offers below `next_seq` (which catch-up may already have read past) are skipped. So every seq
   from `start + 1` on is delivered exactly once, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from ticker_service.settings import Settings
from ticker_service.stream.close_codes import EVENTS_GONE, GOING_AWAY, INTERNAL_ERROR, reason
from ticker_service.stream.event_log import EventLog
from ticker_service.stream.subscriber import Subscriber
from ticker_service.stream.tailer import AccountTailer
from ticker_service.system import metrics

log = structlog.get_logger("ticker.stream")

CATCH_UP_PAGE = 100  # rows a catching-up socket reads (and holds) at a time: at most its backlog
READY_TIMEOUT = 10.0


class SinceAhead(Exception):
    """`since` is beyond the account's last committed seq."""

    def __init__(self, since: int, last: int) -> None:
        super().__init__(f"since={since} is beyond the account's last seq {last}")
        self.since = since
        self.last = last


class EventsGone(Exception):
    """Events right after `since` were deleted by the clean-up: they cannot be replayed."""

    def __init__(self, since: int, oldest: int | None) -> None:
        kept = f"; oldest kept seq {oldest}" if oldest is not None else ""
        super().__init__(f"events after seq {since} are no longer kept{kept}")


class StreamHub:
    def __init__(self, settings: Settings, dsn: str) -> None:
        self.settings = settings
        self.events = EventLog(dsn)
        self.backlog = settings.stream.backlog
        # a live page must fit a backlog twice over, or a single burst would close normal readers
        self.page_size = max(1, min(500, settings.stream.backlog // 2))
        # a catching-up socket holds one page: never more than a live socket may hold in its backlog
        self.catch_up_page = max(1, min(CATCH_UP_PAGE, settings.stream.backlog))
        self._tailers: dict[str, AccountTailer] = {}
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._empty = asyncio.Event()
        self._empty.set()
        self._closing = False
        self._stopping: set[asyncio.Task[None]] = set()

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._closing = False
        await self.events.open()

    async def close_all(self, code: int = GOING_AWAY, timeout: float = 5.0) -> None:
        """Ask every socket to close with `code`, and wait (up to `timeout`) until they have."""
        self._closing = True
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.request_close(code)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._empty.wait()

    async def stop(self) -> None:
        await self.close_all(GOING_AWAY)
        for tailer in list(self._tailers.values()):
            await tailer.stop()
        self._tailers.clear()
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        await self.events.close()

    # ---- NOTIFY ---------------------------------------------------------------------------------

    def on_notify(self, payload: str) -> None:
        """`"<account_id>:<last seq>"` from the writer; empty after a listener reconnect (check all)."""
        account_id, _, raw = payload.rpartition(":")
        if not account_id:
            for tailer in self._tailers.values():
                tailer.wake(None)
            return
        found = self._tailers.get(account_id)
        if found is not None:
            try:
                seq: int | None = int(raw)
            except ValueError:
                seq = None
            found.wake(seq)

    # ---- subscribers ----------------------------------------------------------------------------

    async def subscribe(self, account_id: str, since: int | None) -> tuple[Subscriber, AccountTailer]:
        """Register a socket of `account_id` starting after `since` (None: after the last seq now)."""
        if self._closing:
            raise ConnectionAbortedError("the server is shutting down")
        last = await self.events.last_seq(account_id)
        if since is not None and since > last:
            raise SinceAhead(since, last)
        if since is not None and since < last:
            oldest = await self.events.first_after(account_id, since)
            if oldest != since + 1:
                raise EventsGone(since, oldest)
        if self._closing:  # close_all ran while we awaited: it cannot have asked this one to close
            raise ConnectionAbortedError("the server is shutting down")
        subscriber = Subscriber(account_id, last if since is None else since, self.backlog)
        tailer = self._tailers.get(account_id)
        if tailer is None:
            tailer = AccountTailer(account_id, self.events, self.settings.execution.poll_interval, self.page_size)
            self._tailers[account_id] = tailer
            tailer.start()
        tailer.refs += 1
        self._subscribers.setdefault(account_id, set()).add(subscriber)
        self._empty.clear()
        metrics.ACTIVE_WEBSOCKETS.labels(account=account_id).inc()
        return subscriber, tailer

    def unsubscribe(self, subscriber: Subscriber, tailer: AccountTailer) -> None:
        account_id = subscriber.account_id
        tailer.leave(subscriber)
        subscribers = self._subscribers.get(account_id, set())
        if subscriber in subscribers:
            subscribers.discard(subscriber)
            metrics.ACTIVE_WEBSOCKETS.labels(account=account_id).dec()
            if not subscribers:
                del self._subscribers[account_id]
        tailer.refs -= 1
        if tailer.refs <= 0 and self._tailers.get(account_id) is tailer:
            del self._tailers[account_id]  # the next socket starts a fresh tailer at the seq of its time
            task = asyncio.get_running_loop().create_task(tailer.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        if not self._subscribers:
            self._empty.set()

    async def deliver(
        self, subscriber: Subscriber, tailer: AccountTailer, send: Callable[[str], Awaitable[None]]
    ) -> None:
        """Send the subscriber's stream until a close is requested (see the module's hand-over).

        Returns when the subscriber was asked to close; raises whatever `send` raises.
        """
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await tailer.ready.wait()
        except TimeoutError:
            subscriber.request_close(INTERNAL_ERROR)
            return
        account_id = subscriber.account_id
        while not tailer.join(subscriber):
            try:
                rows = await self.events.page(account_id, subscriber.next_seq - 1, self.catch_up_page)
            except Exception as exc:
                log.warning("stream catch-up read failed", account_id=account_id, error=str(exc))
                subscriber.request_close(INTERNAL_ERROR)
                return
            if not rows or rows[0][0] != subscriber.next_seq:  # deleted since the socket's start was checked
                gone = EventsGone(subscriber.next_seq - 1, rows[0][0] if rows else None)
                subscriber.request_close(EVENTS_GONE, reason(str(gone)))
                return
            for seq, message in rows:
                if subscriber.close_code is not None:
                    return
                if seq != subscriber.next_seq:
                    subscriber.request_close(EVENTS_GONE, reason(str(EventsGone(subscriber.next_seq - 1, seq))))
                    return
                await send(message)
                subscriber.next_seq = seq + 1
                subscriber.delivered_seq = seq
        while (item := await subscriber.take()) is not None:
            seq, message = item
            await send(message)
            subscriber.delivered_seq = seq

    # ---- stats ----------------------------------------------------------------------------------

    def connections(self) -> dict[str, int]:
        return {account_id: len(subs) for account_id, subs in self._subscribers.items()}

    def stats(self, account_ids: list[str]) -> dict[str, Any]:
        """This instance's sockets, for the accounts in `account_ids` (all configured ones by default)."""
        counts = self.connections()
        accounts = {a: counts.get(a, 0) for a in account_ids}
        tailers = {
            a: {
                "position": t.position,
                "live": len(t.members),
                "catching_up": max(0, t.refs - len(t.members)),
                "max_backlog": max((m.backlog for m in t.members), default=0),
            }
            for a, t in self._tailers.items()
            if a in accounts
        }
        return {
            "total_connections": sum(accounts.values()),
            "accounts": accounts,
            "instance_id": self.settings.server.instance_id,
            "backlog_limit": self.backlog,
            "tailers": tailers,
        }
