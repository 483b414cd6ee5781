"""The request path's raw asyncpg pool.

Intake is one statement per order; through SQLAlchemy's async adapter it cost about a third of the
service's CPU per order (greenlet hops, result wrapping), and its overflow connections were opened
and closed under load. A fixed-size asyncpg pool runs the cached prepared statement directly. The
engine (SQLAlchemy Core) stays for everything else, where it reads well and costs little.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

_decode = msgspec.json.decode
CONNECT_TIMEOUT_SECONDS = 10.0


def _encode(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


async def _init(conn: asyncpg.Connection) -> None:
    for name in ("jsonb", "json"):
        await conn.set_type_codec(name, encoder=_encode, decoder=_decode, schema="pg_catalog")


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Return a connection to the pool without asyncpg's default reset query.

    By default every release runs `RESET ALL; UNLISTEN *; pg_advisory_unlock_all(); CLOSE ALL`, a
    round trip per acquire that was about 7 % of the CPU under load. Connections of this pool hold
    no session state to undo: nothing here LISTENs, takes session advisory locks (the listener and
    the singleton jobs have connections of their own), sets parameters or keeps cursors. asyncpg
    still rolls back an open transaction before calling this.
    """


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    """min = max: a connection is never opened or closed on the request path."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=size,
        max_size=size,
        init=_init,
        reset=_keep_session,
        server_settings={"application_name": "ticker-service"},
        # a database host that does not answer (rather than refusing) fails a request within this,
        # as a 503, instead of after asyncpg's default minute
        timeout=CONNECT_TIMEOUT_SECONDS,
    )
    return pool
