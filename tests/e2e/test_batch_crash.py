"""kill -9 in the middle of a batch, then restart: the batch finishes, its rollback included, and no
leg is placed twice. The paper broker's own book is the witness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import eventually
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.slow

LEG = {"exchange": "NFO", "transaction_type": "BUY", "product": "NRML"}
RESTING = LEG | {"tradingsymbol": "NIFTY25NOVFUT", "quantity": 50, "order_type": "LIMIT", "price": 19000.0}
SMALL_LEG = LEG | {"tradingsymbol": "NIFTY25DECFUT", "quantity": 50, "order_type": "LIMIT", "price": 19000.0}
TOO_BIG = LEG | {"tradingsymbol": "BANKNIFTY25NOVFUT", "quantity": 25, "order_type": "MARKET"}


@pytest.fixture
async def servers() -> AsyncIterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


async def test_kill_mid_batch_then_restart_finishes_it_with_its_rollback(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    # funds for two resting NIFTY lots (~146,600 each), not for the BANKNIFTY leg after them
    server = ServerProcess(database_url, tmp_path, {"primary": {"funds": 350_000}})
    servers.append(server)
    # the process dies right after the broker committed the second leg, before it heard back
    server.start(TICKER_FAILPOINTS="paper.after_place_commit@2")
    await server.wait_healthy()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        r = await http.post(
            "/advanced/batch-orders?wait=0",
            json={"orders": [RESTING, SMALL_LEG, TOO_BIG, RESTING], "rollback_on_failure": True},
        )
    assert r.status_code == 202
    batch_id = r.json()["batch_id"]
    await server.wait_exit()
    assert await db.fetchval("SELECT count(*) FROM paper_orders") == 2  # two legs reached the broker
    assert await db.fetchval("SELECT status FROM batches WHERE batch_id = $1", batch_id) == "running"

    server.start()
    await server.wait_healthy()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        body = await eventually(lambda: _final(http, batch_id), timeout=60)
    assert body["success"] is False and body["status"] == "failed"
    assert body["error"].startswith("Order 2 failed: Insufficient funds")
    assert body["error"].endswith("Rolled back 2 orders.")
    legs = body["legs"]
    assert [leg["rollback"]["outcome"] for leg in legs[:2]] == ["cancelled", "cancelled"]
    assert legs[2]["order_status"] == "REJECTED" and legs[3]["status"] == "skipped"
    # the witness: one paper order per leg that was sent (three), none twice, the first two cancelled
    rows = await db.fetch("SELECT tag, status, tradingsymbol FROM paper_orders ORDER BY order_id")
    assert [(r["tradingsymbol"], r["status"]) for r in rows] == [
        ("NIFTY25NOVFUT", "CANCELLED"),
        ("NIFTY25DECFUT", "CANCELLED"),
        ("BANKNIFTY25NOVFUT", "REJECTED"),
    ]
    assert len({r["tag"] for r in rows}) == 3
    leg1 = await db.fetch(
        "SELECT data->>'status' AS s FROM outbox_events WHERE task_id = $1 AND event = 'task_status' ORDER BY seq",
        legs[1]["task_id"],
    )
    assert [r["s"] for r in leg1] == ["pending", "running", "unknown", "completed"]  # reconciled by tag
    assert await db.fetchval("SELECT count(*) FROM outbox_events WHERE event = 'batch_failed'") == 1


async def _final(http: httpx.AsyncClient, batch_id: str) -> dict[str, object] | None:
    body = (await http.get(f"/advanced/batch-orders/{batch_id}")).json()
    return body if body["status"] in ("completed", "failed", "rollback_failed") else None
