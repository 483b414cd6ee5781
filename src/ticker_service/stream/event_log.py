"""Reads of the outbox by (account, seq): the only source of what a socket receives.

The stream has its own small asyncpg pool (opened on demand, at most a few connections) so that
many sockets catching up at once never take connections from the order intake's pool. Rows come
back already encoded as `order_update` messages: one encoding per row read.
"""

from __future__ import annotations

import asyncpg

from ticker_service.stream.messages import encode_update

Encoded = tuple[int, str]  # (seq, the order_update message as JSON text)

_PAGE = """
SELECT seq, event_id, created_at, data::text AS data
FROM outbox_events
WHERE account_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3
"""
_LAST_SEQ = "SELECT COALESCE((SELECT last_seq FROM account_seq WHERE account_id = $1), 0)"
_FIRST_AFTER = "SELECT min(seq) FROM outbox_events WHERE account_id = $1 AND seq > $2"


class EventLog:
    def __init__(self, dsn: str, max_connections: int = 4) -> None:
        self.dsn = dsn
        self.max_connections = max_connections
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=0,
            max_size=self.max_connections,
            max_inactive_connection_lifetime=60,
            server_settings={"application_name": "ticker-stream"},
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the event log is not open")
        return self._pool

    async def last_seq(self, account_id: str) -> int:
        """The account's highest committed seq (0: no event yet)."""
        value: int = await self.pool.fetchval(_LAST_SEQ, account_id)
        return value

    async def first_after(self, account_id: str, after: int) -> int | None:
        """The lowest seq above `after` still kept (None: none)."""
        value: int | None = await self.pool.fetchval(_FIRST_AFTER, account_id, after)
        return value

    async def page(self, account_id: str, after: int, limit: int) -> list[Encoded]:
        """Up to `limit` events with seq > `after`, in seq order, encoded.

        The writer's invariant makes the result gap-free from `after + 1` (a reader that sees seq
        N sees every seq below it), except where clean-up already deleted old events.
        """
        rows = await self.pool.fetch(_PAGE, account_id, after, limit)
        return [
            (r["seq"], encode_update(account_id, r["seq"], r["event_id"], r["created_at"], r["data"])) for r in rows
        ]
