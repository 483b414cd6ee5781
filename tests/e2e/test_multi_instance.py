"""Two server processes on one database under load: every task executed exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import SPEC_ORDER, eventually
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.slow


async def test_two_processes_execute_every_task_exactly_once(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    accounts = {
        "primary": {"broker": "paper", "latency_ms": 5, "funds": 1e12},
        "second": {"broker": "paper", "latency_ms": 5, "funds": 1e12},
    }
    a = ServerProcess(database_url, tmp_path, accounts)
    b = ServerProcess(database_url, tmp_path, accounts)
    try:
        a.start()
        b.start()
        await asyncio.gather(a.wait_healthy(), b.wait_healthy())
        semaphore = asyncio.Semaphore(32)
        n = 400

        async def one(i: int, http: dict[str, httpx.AsyncClient]) -> int:
            async with semaphore:
                client = http["a" if i % 2 else "b"]
                body = SPEC_ORDER | {"account_id": "primary" if i % 3 else "second"}
                r = await client.post("/orders/place?wait=0", json=body)
                return r.status_code

        async with (
            httpx.AsyncClient(base_url=a.url, timeout=30) as ha,
            httpx.AsyncClient(base_url=b.url, timeout=30) as hb,
        ):
            codes = await asyncio.gather(*(one(i, {"a": ha, "b": hb}) for i in range(n)))
        assert Counter(codes) == {202: n}
        await eventually(
            lambda: db.fetchval("SELECT count(*) FROM order_tasks WHERE status = 'completed'"),
            timeout=90,
        )
        await eventually(
            lambda: db.fetchval("SELECT count(*) = $1 FROM order_tasks WHERE status = 'completed'", n),
            timeout=90,
        )
        assert await db.fetchval("SELECT max(attempts) FROM order_tasks") == 1
        claims = await db.fetch(
            "SELECT task_id, count(*) AS n, min(data->>'worker') AS worker FROM outbox_events "
            "WHERE event = 'task_status' AND data->>'status' = 'running' GROUP BY task_id"
        )
        assert len(claims) == n and {r["n"] for r in claims} == {1}
        instances = {r["worker"].split(":")[0] for r in claims}
        assert len(instances) == 2, "both processes should have executed tasks"
        per_tag = await db.fetch(
            "SELECT t.task_id, count(p.order_id) AS k FROM order_tasks t "
            "LEFT JOIN paper_orders p ON p.tag = t.broker_tag GROUP BY t.task_id"
        )
        assert {r["k"] for r in per_tag} == {1}
        assert await db.fetchval("SELECT count(*) FROM paper_orders") == n
        for account in ("primary", "second"):
            seqs = [
                r["seq"]
                for r in await db.fetch("SELECT seq FROM outbox_events WHERE account_id = $1 ORDER BY seq", account)
            ]
            assert seqs == list(range(1, len(seqs) + 1))
    finally:
        a.stop()
        b.stop()
