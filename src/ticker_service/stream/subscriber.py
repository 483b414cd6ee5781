"""One socket's place in its account's stream: the next seq it takes, and its bounded backlog.

The tailer offers every event of the account, in seq order, to every live subscriber. An offer
below `next_seq` was already delivered (by the subscriber's own catch-up) and is skipped, so the
hand-over from catch-up to live never duplicates. A subscriber whose backlog is full when an offer
arrives has fallen too far behind: its backlog is dropped (memory stays bounded) and it is asked
to close; the client reconnects with `since=<the last seq it received>` and catches up from the
database.
"""

from __future__ import annotations

import asyncio
from collections import deque

import structlog

from ticker_service.stream.close_codes import BACKLOG_EXCEEDED

log = structlog.get_logger("ticker.stream")


class Subscriber:
    __slots__ = (
        "_backlog",
        "_ready",
        "account_id",
        "close_code",
        "close_reason",
        "closing",
        "delivered_seq",
        "limit",
        "next_seq",
    )

    def __init__(self, account_id: str, since: int, limit: int) -> None:
        self.account_id = account_id
        self.limit = limit
        self.next_seq = since + 1  # the next seq this subscriber takes (from catch-up or the tailer)
        self.delivered_seq = since  # the last seq handed to the socket
        self._backlog: deque[tuple[int, str]] = deque()
        self._ready = asyncio.Event()
        self.closing = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None  # None: the session words it at close time

    # ---- the tailer's side ------------------------------------------------------------------

    def offer(self, seq: int, message: str) -> bool:
        """Queue one live event; False when this subscriber must leave the fan-out."""
        if seq < self.next_seq:
            return True  # delivered by catch-up already
        if self.close_code is not None:
            return False
        if seq > self.next_seq:  # the writer's invariant rules this out; say so loudly if it happens
            log.error("seq gap in the live stream", account_id=self.account_id, expected=self.next_seq, got=seq)
        if len(self._backlog) >= self.limit:
            self.request_close(BACKLOG_EXCEEDED)
            return False
        self._backlog.append((seq, message))
        self.next_seq = seq + 1
        self._ready.set()
        return True

    # ---- the socket's side --------------------------------------------------------------------

    def request_close(self, code: int, reason: str | None = None) -> None:
        """Ask the session to close the socket (first request wins)."""
        if self.close_code is None:
            self.close_code = code
            self.close_reason = reason
            self._backlog.clear()
        self.closing.set()
        self._ready.set()

    async def take(self) -> tuple[int, str] | None:
        """The next queued event, oldest first (waits for one); None once a close was requested.

        One at a time, so the backlog's length is how far behind the socket is.
        """
        while not self._backlog:
            if self.close_code is not None:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self.close_code is not None:
            return None
        return self._backlog.popleft()

    @property
    def backlog(self) -> int:
        return len(self._backlog)
