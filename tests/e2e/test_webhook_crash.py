"""kill -9 of a real server while webhook deliveries are in flight, then restart: every event still
reaches the receiver (duplicates on the wire only with the same webhook-id), one delivery row each."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web

from tests.conftest import SPEC_ORDER, _asyncpg_dsn, eventually
from tests.e2e.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

EVENTS = ["order_placed", "order_completed", "task_status"]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A slow receiver (50 ms per request), so deliveries are in flight when the server dies."""
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(0.05)
        received.append({"id": request.headers["webhook-id"], "body": json.loads(body)})
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/hook", received
    await runner.cleanup()


async def test_kill_during_deliveries_loses_nothing(
    database_url: str, tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = receiver
    env = {
        "WEBHOOK_ALLOW_PRIVATE": "true",
        "WEBHOOK_RETRY_SCHEDULE": "0.2,0.5,1,1,1",
        "WEBHOOK_TIMEOUT": "2",
        "WEBHOOK_ENDPOINT_CONCURRENCY": "8",
    }
    server = ServerProcess(database_url, tmp_path, {"primary": {"funds": 1e12}}, **env)
    server.start()
    try:
        await server.wait_healthy()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            r = await http.post("/advanced/webhooks", json={"url": url, "account_id": "primary", "events": EVENTS})
            assert r.status_code == 201
            webhook_id = r.json()["webhook_id"]
            answers = await asyncio.gather(*(http.post("/orders/place?wait=0", json=SPEC_ORDER) for _ in range(60)))
            assert all(a.status_code == 202 for a in answers)
        await eventually(lambda: len(received) >= 20, timeout=30, interval=0.01)
        server.kill()
        got_before_kill = len(received)

        db = await asyncpg.connect(_asyncpg_dsn(database_url))
        try:
            in_flight = await db.fetchval("SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'")
            server.start()
            await server.wait_healthy()
            # every accepted order reaches a final state, and every one of its events reaches the receiver
            await eventually(
                lambda: db.fetchval("SELECT count(*) = 0 FROM order_tasks WHERE status NOT IN ('completed')"), 60
            )
            expected = {
                r["event_id"]
                for r in await db.fetch("SELECT event_id FROM outbox_events WHERE event = ANY($1::text[])", EVENTS)
            }
            assert len(expected) >= 60 * 5
            await eventually(lambda: {r["id"] for r in received} >= expected, timeout=60)
            await eventually(
                lambda: db.fetchval(
                    "SELECT count(*) = 0 FROM webhook_deliveries WHERE webhook_id = $1 AND status <> 'delivered'",
                    webhook_id,
                ),
                timeout=30,
            )
            rows = await db.fetch("SELECT event_id, status FROM webhook_deliveries WHERE webhook_id = $1", webhook_id)
        finally:
            await db.close()
        assert in_flight > 0, "the kill came after everything was delivered: the test proved nothing"
        assert got_before_kill < len(expected)
        assert {r["event_id"] for r in rows} == expected and len(rows) == len(expected)  # one row per event
        assert {r["id"] for r in received} == expected  # nothing foreign
        assert all(r["id"] == r["body"]["event_id"] for r in received)  # a resend carries the same id
    finally:
        server.stop()
