"""Two server processes on one database: a socket on either one sees every event, whichever one committed it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import pytest

from tests.conftest import SPEC_ORDER, eventually
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.slow

ACCOUNTS = {"primary": {"broker": "paper", "funds": 1e12}}


async def collect(ws: aiohttp.ClientWebSocketResponse, into: list[dict[str, Any]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        msg = await ws.receive()
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"socket ended: {msg!r}")
        message = json.loads(msg.data)
        if message["type"] == "order_update":
            into.append(message)


async def test_a_socket_on_one_process_sees_every_event_committed_through_another(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    # A executes no orders at all (API only): every event its socket gets was committed by B
    a = ServerProcess(database_url, tmp_path, ACCOUNTS, TICKER_RELAY_WORKERS="0")
    b = ServerProcess(database_url, tmp_path, ACCOUNTS)
    try:
        a.start()
        b.start()
        await asyncio.gather(a.wait_healthy(), b.wait_healthy())
        on_a: list[dict[str, Any]] = []
        on_b: list[dict[str, Any]] = []
        stop = asyncio.Event()
        n = 120
        async with aiohttp.ClientSession() as session, httpx.AsyncClient(base_url=b.url, timeout=30) as http:
            ws_a = await session.ws_connect(f"ws://127.0.0.1:{a.port}/advanced/ws/orders/primary")
            ws_b = await session.ws_connect(f"ws://127.0.0.1:{b.port}/advanced/ws/orders/primary")
            for ws in (ws_a, ws_b):
                assert json.loads((await ws.receive()).data)["type"] == "connected"
            readers = [asyncio.create_task(collect(ws_a, on_a, stop)), asyncio.create_task(collect(ws_b, on_b, stop))]
            sem = asyncio.Semaphore(16)

            async def one() -> None:
                async with sem:
                    r = await http.post("/orders/place?wait=0", json=SPEC_ORDER)
                    assert r.status_code == 202, r.text

            await asyncio.gather(*(one() for _ in range(n)))
            await eventually(
                lambda: db.fetchval("SELECT count(*) = $1 FROM order_tasks WHERE status = 'completed'", n), timeout=120
            )
            final = await db.fetchval("SELECT last_seq FROM account_seq WHERE account_id = 'primary'")
            await eventually(lambda: len(on_a) >= final and len(on_b) >= final, timeout=60)
            stop.set()
            for task in readers:
                assert not task.done(), task.exception()
                task.cancel()
            await ws_a.close()
            await ws_b.close()

        assert [m["seq"] for m in on_a] == list(range(1, final + 1))
        assert [m["event_id"] for m in on_a] == [m["event_id"] for m in on_b]
        rows = await db.fetch("SELECT seq, event_id, data FROM outbox_events WHERE account_id = 'primary' ORDER BY seq")
        assert [(r["seq"], r["event_id"], r["data"]) for r in rows] == [
            (m["seq"], m["event_id"], m["data"]) for m in on_a
        ]
        workers = {r["data"]["worker"].split(":")[0] for r in rows if r["data"].get("status") == "running"}
        assert len(workers) == 1, "only B executes orders"
        assert final >= 5 * n
    finally:
        a.stop()
        b.stop()
