"""Engine creation. One async engine per process; asyncpg underneath."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10, **kwargs: Any) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "ticker-service"}, "timeout": 10.0},
        **kwargs,
    )


def asyncpg_dsn(url: str) -> str:
    """The plain libpq-style DSN asyncpg wants, from an SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
