"""The holder's side of the fan-out: the feed's ticks into PostgreSQL, batched, latest per instrument.

The feed's reader only drops ticks into `pending` (one per instrument; a newer tick replaces an
unpublished one), and a single writer publishes everything pending in one transaction: the
`market_ticks` upsert and the NOTIFY payloads, which PostgreSQL delivers at commit. While the
database is slow the pending set stays one tick per instrument, so the holder's memory is flat too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import structlog

from ticker_service.marketdata.packets import packet_token
from ticker_service.marketdata.ticks import latest
from ticker_service.marketdata.ticks.channel import TICKS_CHANNEL, encode_batches
from ticker_service.system import metrics

log = structlog.get_logger("ticker.marketdata")

_NOTIFY = f"SELECT pg_notify('{TICKS_CHANNEL}', p) FROM unnest($1::text[]) AS u(p)"
_CONFLATED = metrics.TICKS_CONFLATED.labels(stage="publisher")


class TickPublisher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        account_id: str,
        *,
        origin: str,
        local: Callable[[list[bytes]], None] | None = None,
        flush_interval: float = 0.02,
    ) -> None:
        self.pool = pool
        self.account_id = account_id
        self.origin = origin  # this process's hub: it skips the notifications it sent
        self.local = local  # this process's own clients get each batch at once, not through the database
        self.flush_interval = flush_interval
        self._pending: dict[int, bytes] = {}
        self._since: float | None = None  # when the first pending packet was handed to `local`
        self._ready = asyncio.Event()
        self._in = metrics.TICKS_IN.labels(account=account_id)

    def put(self, packets: list[bytes]) -> None:
        if not packets:
            return
        pending = self._pending
        conflated = len(pending)
        for packet in packets:
            pending[packet_token(packet)] = packet
        conflated += len(packets) - len(pending)
        if conflated:
            _CONFLATED.inc(conflated)
        self._in.inc(len(packets))
        if self._since is None:
            self._since = time.monotonic()  # before the hand-over: the hub compares its clients' age with it
        if self.local is not None:  # first: the sockets' writers wake before the database writer
            self.local(packets)
        self._ready.set()

    async def run(self) -> None:
        """Publish until cancelled; a failed write is retried with what is pending then (never older)."""
        delay = 0.1
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, since, self._pending, self._since = self._pending, self._since, {}, None
            if not batch:
                continue
            try:
                await self._publish(batch, since or 0.0)
                metrics.TICKS_PUBLISHED.inc(len(batch))
                delay = 0.1
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("ticks not published; retrying", account_id=self.account_id, error=str(exc))
                for token, packet in batch.items():  # keep the newest of each instrument
                    self._pending.setdefault(token, packet)
                self._since = min(since or 0.0, self._since or float("inf"))
                self._ready.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            await asyncio.sleep(self.flush_interval)  # what arrives meanwhile goes out in the next batch

    async def _publish(self, batch: dict[int, bytes], since: float) -> None:
        payloads = encode_batches(self.origin, self.account_id, list(batch.values()), since)
        async with self.pool.acquire() as conn, conn.transaction():
            await latest.write(conn, self.account_id, batch)
            await conn.execute(_NOTIFY, payloads)
