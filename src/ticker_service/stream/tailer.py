"""One reader of an account's outbox per process, however many sockets follow that account.

The tailer keeps `position`, the last seq it has fanned out, and reads `seq > position` in pages
when NOTIFY says there is more (a payload at or below `position` costs no query) and every poll
interval anyway, in case a notification was lost. Each row is encoded once and the same string is
offered to every live subscriber. Rows come back gap-free because the writer commits seqs in order
(a reader that sees seq N sees every seq below it).

Fan-out of a page is synchronous, and so is a subscriber's join (`join` checks `next_seq >
position`): no event can slip between a subscriber's catch-up and its first live offer.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from ticker_service.stream.event_log import EventLog
from ticker_service.stream.subscriber import Subscriber

log = structlog.get_logger("ticker.stream")


class AccountTailer:
    def __init__(self, account_id: str, events: EventLog, poll_interval: float, page_size: int) -> None:
        self.account_id = account_id
        self.events = events
        self.poll_interval = poll_interval
        self.page_size = page_size
        self.position = 0  # the last seq fanned out; valid once `ready` is set
        self.members: set[Subscriber] = set()  # live subscribers (caught up)
        self.refs = 0  # sockets of this account in this process, live or catching up
        self.ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"stream-tailer-{self.account_id}")

    async def stop(self) -> None:
        # The flag as well as the cancel: Python 3.11's wait_for (used by asyncpg) can swallow a
        # cancellation that lands as its inner future completes.
        self._stopped = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self, seq: int | None) -> None:
        """NOTIFY: the account has committed up to `seq` (None: maybe anything)."""
        if seq is None or not self.ready.is_set() or seq > self.position:
            self._wake.set()

    def caught_up(self, subscriber: Subscriber) -> bool:
        return subscriber.next_seq > self.position

    def join(self, subscriber: Subscriber) -> bool:
        """Make a caught-up subscriber live. Synchronous with the fan-out: the next offer it gets is
        `position + 1`, and it already has everything up to `next_seq - 1 >= position`."""
        if not self.caught_up(subscriber):
            return False
        self.members.add(subscriber)
        return True

    def leave(self, subscriber: Subscriber) -> None:
        self.members.discard(subscriber)

    async def _run(self) -> None:
        delay = 0.1
        while not self.ready.is_set() and not self._stopped:
            try:
                self.position = await self.events.last_seq(self.account_id)
                self.ready.set()
            except Exception as exc:
                log.warning(
                    "stream tailer cannot read the account's seq; retrying", account_id=self.account_id, error=str(exc)
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        delay = 0.1
        while not self._stopped:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            try:
                await self._read_new()
                delay = 0.1
            except Exception as exc:
                log.warning("stream tailer read failed; retrying", account_id=self.account_id, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._wake.set()

    async def _read_new(self) -> None:
        while not self._stopped:
            rows = await self.events.page(self.account_id, self.position, self.page_size)
            if not rows:
                return
            self.fan_out(rows)
            if len(rows) < self.page_size:
                return
            await asyncio.sleep(0)  # let the sockets' pumps send this page before the next one

    def fan_out(self, rows: list[tuple[int, str]]) -> None:
        dropped: list[Subscriber] = []
        for seq, message in rows:
            if seq != self.position + 1:
                log.error("seq gap in the outbox", account_id=self.account_id, expected=self.position + 1, got=seq)
            self.position = seq
            for subscriber in self.members:
                if not subscriber.offer(seq, message):
                    dropped.append(subscriber)
            if dropped:
                for subscriber in dropped:
                    self.members.discard(subscriber)
                dropped.clear()
