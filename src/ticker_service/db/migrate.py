"""Running alembic from the service: under an advisory lock, so instances starting together do not race."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ticker_service.db.engine import create_engine

MIGRATION_LOCK = 0x7469636B_0001  # "tick" + 1: the advisory lock key for migrations


def alembic_config(database_url: str | None = None) -> Config:
    candidates = [Path(p) for p in (os.environ.get("ALEMBIC_CONFIG"), "alembic.ini") if p] + [
        Path(__file__).resolve().parents[3] / "alembic.ini"
    ]
    for path in candidates:
        if path.is_file():
            cfg = Config(str(path))
            cfg.attributes["configure_logging"] = False
            if database_url:
                cfg.attributes["database_url"] = database_url
            return cfg
    raise FileNotFoundError("alembic.ini not found; run from the project directory or set ALEMBIC_CONFIG")


async def run_migrations(database_url: str, revision: str = "head", *, downgrade: bool = False) -> None:
    cfg = alembic_config(database_url)
    engine = create_engine(database_url, pool_size=1, max_overflow=0)

    def _apply(sync_conn: Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        if downgrade:
            command.downgrade(cfg, revision)
        else:
            command.upgrade(cfg, revision)

    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
            try:
                await conn.run_sync(_apply)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                await conn.commit()
    finally:
        await engine.dispose()
