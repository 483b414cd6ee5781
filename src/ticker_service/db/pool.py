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


def _encode(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


async def _init(conn: asyncpg.Connection) -> None:
    for name in ("jsonb", "json"):
        await conn.set_type_codec(name, encoder=_encode, decoder=_decode, schema="pg_catalog")


async def create_pool(dsn: str, size: int) -> asyncpg.Pool:
    """min = max: a connection is never opened or closed on the request path."""
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=size,
        max_size=size,
        init=_init,
        server_settings={"application_name": "ticker-service"},
    )
    return pool
