"""Alembic owns the schema: upgrade, downgrade and upgrade again on an empty database, and the
migrated schema matches the table definitions the code uses."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from tests.conftest import _asyncpg_dsn, _with_database
from ticker_service.db.engine import create_engine
from ticker_service.db.migrate import alembic_config, run_migrations
from ticker_service.db.tables import metadata

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


@pytest.fixture
async def empty_database(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    yield _with_database(pg_admin_url, name)
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_upgrade_downgrade_upgrade_on_an_empty_database(empty_database: str) -> None:
    assert await tables(empty_database) == set()
    await run_migrations(empty_database)
    expected = {
        "order_tasks",
        "orders",
        "outbox_events",
        "account_seq",
        "paper_orders",
        "paper_trades",
        "paper_accounts",
        "paper_exposure",
        "alembic_version",
    }
    assert expected <= await tables(empty_database)
    await run_migrations(empty_database, "base", downgrade=True)
    assert await tables(empty_database) == {"alembic_version"}
    await run_migrations(empty_database)
    assert expected <= await tables(empty_database)


async def test_migrated_schema_matches_the_table_definitions(empty_database: str) -> None:
    await run_migrations(empty_database)
    engine = create_engine(empty_database)

    def diff(sync_conn: Connection) -> list[object]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == []


async def test_concurrent_upgrades_do_not_race(empty_database: str) -> None:
    import asyncio

    await asyncio.gather(*(run_migrations(empty_database) for _ in range(3)))
    conn = await asyncpg.connect(_asyncpg_dsn(empty_database))
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == HEAD
    finally:
        await conn.close()


async def test_plain_alembic_and_the_cli_migrate_from_database_url(empty_database: str) -> None:
    import asyncio
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": empty_database}

    async def run(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=root, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
        return out.decode()

    await run(sys.executable, "-m", "alembic", "upgrade", "head")
    assert "order_tasks" in await tables(empty_database)
    await run(sys.executable, "-m", "ticker_service", "db", "downgrade")
    assert await tables(empty_database) == {"alembic_version"}
    await run(sys.executable, "-m", "ticker_service", "db", "upgrade")
    assert "outbox_events" in await tables(empty_database)


async def test_0002_fills_the_paper_exposure_from_an_existing_book(empty_database: str) -> None:
    """An operator upgrading with orders on the books keeps the same funds check."""
    await run_migrations(empty_database, "0001")
    conn = await asyncpg.connect(_asyncpg_dsn(empty_database))
    try:
        await conn.execute("INSERT INTO paper_accounts (account_id) VALUES ('a')")
        book = [
            # order id, side, quantity, filled, status
            ("1", "BUY", 100, 100, "COMPLETE"),
            ("2", "SELL", 30, 30, "COMPLETE"),
            ("3", "BUY", 50, 0, "OPEN"),
            ("4", "SELL", 20, 0, "TRIGGER PENDING"),
            ("5", "BUY", 70, 0, "CANCELLED"),
            ("6", "BUY", 10, 0, "REJECTED"),
        ]
        for order_id, side, qty, filled, status in book:
            await conn.execute(
                "INSERT INTO paper_orders (order_id, account_id, exchange, tradingsymbol, instrument_token, "
                "transaction_type, product, order_type, variety, validity, quantity, price, trigger_price, status, "
                "filled_quantity) VALUES ($1, 'a', 'NSE', 'INFY', 408065, $2, 'CNC', 'LIMIT', 'regular', 'DAY', $3, "
                "1500, 0, $4, $5)",
                order_id,
                side,
                qty,
                status,
                filled,
            )
            if filled:
                await conn.execute(
                    "INSERT INTO paper_trades (order_id, account_id, exchange, tradingsymbol, instrument_token, "
                    "product, transaction_type, quantity, price) VALUES ($1, 'a', 'NSE', 'INFY', 408065, 'CNC', $2, "
                    "$3, 1500)",
                    order_id,
                    side,
                    filled,
                )
        await run_migrations(empty_database)
        row = await conn.fetchrow("SELECT net_quantity, open_buy, open_sell FROM paper_exposure WHERE account_id = 'a'")
        assert tuple(row) == (70, 50, 20)
    finally:
        await conn.close()
