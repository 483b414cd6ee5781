"""kill -9 of a real server process, then restart: nothing accepted is lost, nothing placed twice.

The paper broker's own book (`paper_orders`, committed independently of the service) is the
witness: it must hold exactly one order per accepted task, and every accepted task must end final.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import SPEC_ORDER, eventually
from tests.e2e.server import ServerProcess
from ticker_service.brokers.paper.prices import price_at
from ticker_service.instruments import load_instruments

pytestmark = pytest.mark.slow


@pytest.fixture
async def servers(database_url: str, tmp_path: Path) -> AsyncIterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


async def burst_then_kill(server: ServerProcess, n: int, kill_after: int) -> set[str]:
    """Send `n` orders (20 at a time); SIGKILL the server once `kill_after` were accepted."""
    accepted: set[str] = set()
    killed = asyncio.Event()
    semaphore = asyncio.Semaphore(20)

    async def one(i: int, http: httpx.AsyncClient) -> None:
        async with semaphore:
            if killed.is_set():
                return
            try:
                r = await http.post("/orders/place?wait=0", json=SPEC_ORDER, headers={"Idempotency-Key": f"burst-{i}"})
            except httpx.TransportError:
                return  # the server died under us: not accepted, the client would retry
            if r.status_code in (201, 202):
                accepted.add(r.json()["task_id"])
                if len(accepted) >= kill_after and not killed.is_set():
                    killed.set()
                    server.kill()

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        await asyncio.gather(*(one(i, http) for i in range(n)))
    assert killed.is_set(), "the burst ended before the kill"
    return accepted


async def assert_exactly_once(db: asyncpg.Connection, accepted: set[str]) -> None:
    await eventually(
        lambda: db.fetchval(
            "SELECT count(*) = 0 FROM order_tasks "
            "WHERE status NOT IN ('completed', 'rejected', 'failed', 'dead_letter')"
        ),
        timeout=90,
    )
    final = {
        r["task_id"]: r["status"]
        for r in await db.fetch("SELECT task_id, status FROM order_tasks WHERE task_id = ANY($1)", list(accepted))
    }
    assert set(final) == accepted, "an accepted task is missing"
    assert set(final.values()) == {"completed"}, final
    per_task = await db.fetch(
        "SELECT t.task_id, t.order_id, count(p.order_id) AS n, min(p.order_id) AS paper_id FROM order_tasks t "
        "LEFT JOIN paper_orders p ON p.tag = t.broker_tag GROUP BY t.task_id, t.order_id"
    )
    assert [r["task_id"] for r in per_task if r["n"] != 1] == [], "a task was placed twice or never"
    assert all(r["order_id"] == r["paper_id"] for r in per_task)
    assert await db.fetchval("SELECT count(*) FROM paper_orders WHERE tag IS NULL") == 0
    placed = await db.fetch(
        "SELECT order_id, count(*) AS n FROM outbox_events WHERE event = 'order_placed' GROUP BY order_id"
    )
    assert {r["n"] for r in placed} == {1}
    assert len(placed) == await db.fetchval("SELECT count(*) FROM paper_orders")


@pytest.mark.parametrize("lose_response_rate", [0.0, 0.3])
async def test_kill_9_during_a_burst_loses_nothing_and_places_nothing_twice(
    database_url: str,
    db: asyncpg.Connection,
    tmp_path: Path,
    servers: list[ServerProcess],
    lose_response_rate: float,
) -> None:
    accounts = {
        "primary": {"broker": "paper", "latency_ms": 15, "lose_response_rate": lose_response_rate, "funds": 1e12}
    }
    server = ServerProcess(database_url, tmp_path, accounts)
    servers.append(server)
    server.start()
    await server.wait_healthy()
    accepted = await burst_then_kill(server, n=300, kill_after=120)
    in_flight = await db.fetchval("SELECT count(*) FROM order_tasks WHERE status IN ('pending', 'running')")
    assert in_flight > 0, "the kill should leave work in flight"
    server.start()
    await server.wait_healthy()
    await assert_exactly_once(db, accepted)


async def test_crash_between_paper_place_and_recording_it(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = ServerProcess(database_url, tmp_path)
    servers.append(server)
    server.start(TICKER_FAILPOINTS="paper.after_place_commit")
    await server.wait_healthy()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await http.post("/orders/place?wait=0", json=SPEC_ORDER)
    assert r.status_code == 202
    task_id = r.json()["task_id"]
    await server.wait_exit()
    # the broker has the order; the service never heard back
    assert await db.fetchval("SELECT count(*) FROM paper_orders WHERE status = 'COMPLETE'") == 1
    assert await db.fetchval("SELECT status FROM order_tasks WHERE task_id = $1", task_id) == "running"
    assert await db.fetchval("SELECT count(*) FROM outbox_events WHERE event = 'order_placed'") == 0

    server.start()
    await server.wait_healthy()
    await assert_exactly_once(db, {task_id})
    statuses = [
        r["data"]["status"]
        for r in await db.fetch(
            "SELECT data FROM outbox_events WHERE task_id = $1 AND event = 'task_status' ORDER BY seq", task_id
        )
    ]
    assert statuses == ["pending", "running", "unknown", "completed"]
    events = [
        r["event"] for r in await db.fetch("SELECT event FROM outbox_events WHERE event LIKE 'order_%' ORDER BY seq")
    ]
    assert events == ["order_placed", "order_completed"]


def crossing_limit(seed: int = 0) -> tuple[str, float] | None:
    """A LIMIT on NIFTY25NOVFUT that rests now (for 3 s) and is crossed within the next 15 s."""
    instrument = load_instruments().get("NFO", "NIFTY25NOVFUT")
    assert instrument is not None
    now = time.time()
    soon = [price_at(instrument, now + i * 0.25, seed) for i in range(0, 13)]
    later = [price_at(instrument, now + 3 + i * 0.25, seed) for i in range(0, 49)]
    if min(later) < min(soon):
        return "BUY", float(min(later))
    if max(later) > max(soon):
        return "SELL", float(max(later))
    return None


async def test_crash_between_a_matcher_fill_and_its_event_is_repaired_by_reconciliation(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = ServerProcess(database_url, tmp_path)
    servers.append(server)
    server.start(TICKER_FAILPOINTS="paper.after_match_commit")
    await server.wait_healthy()
    limit: tuple[str, float] | None = await eventually(crossing_limit, timeout=30, interval=0.5)
    assert limit is not None
    side, price = limit
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await http.post(
            "/orders/place", json=SPEC_ORDER | {"order_type": "LIMIT", "price": price, "transaction_type": side}
        )
    assert r.status_code == 201, r.text
    assert r.json()["order"]["status"] == "OPEN"
    order_id = r.json()["order_id"]
    await server.wait_exit(timeout=30)  # the matcher filled it and the process died before recording
    assert await db.fetchval("SELECT status FROM paper_orders WHERE order_id = $1", order_id) == "COMPLETE"
    assert await db.fetchval("SELECT status FROM orders WHERE order_id = $1", order_id) == "OPEN"

    server.start()
    await server.wait_healthy()
    await eventually(lambda: db.fetchval("SELECT status = 'COMPLETE' FROM orders WHERE order_id = $1", order_id))
    events = [
        r["event"]
        for r in await db.fetch(
            "SELECT event FROM outbox_events WHERE order_id = $1 AND event <> 'task_status' ORDER BY seq", order_id
        )
    ]
    assert events == ["order_placed", "order_completed"]
    row: Any = await db.fetchrow("SELECT filled_quantity, average_price FROM orders WHERE order_id = $1", order_id)
    assert row["filled_quantity"] == 50 and float(row["average_price"]) == price
