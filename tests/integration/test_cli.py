"""The operator's command line (`ticker-service tasks ...`), run as a real subprocess against the test database."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from tests.conftest import SPEC_ORDER, eventually, make_client
from tests.integration.test_relay import task_events


async def run_cli(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKER_")}
    env.update(DATABASE_URL=database_url, LOG_LEVEL="WARNING")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ticker_service",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_tasks_retry_requeues_a_dead_letter(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url, {"primary": {}, "flaky": {"broker": "paper", "fail_rate": 1.0}}) as c:
        r = await c.post("/orders/place?wait=0", json=SPEC_ORDER | {"account_id": "flaky"})
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        await eventually(
            lambda: db.fetchval("SELECT status = 'dead_letter' FROM order_tasks WHERE task_id = $1", task_id)
        )
        ok = await c.post("/orders/place", json=SPEC_ORDER)
        assert ok.status_code == 201, ok.text
        completed_id = ok.json()["task_id"]
    # the service is stopped: nothing picks the task up again while we look at it

    code, out, err = await run_cli(database_url, "tasks", "retry", task_id)
    assert code == 0, out + err
    assert f"{task_id} requeued" in out
    task = await db.fetchrow("SELECT * FROM order_tasks WHERE task_id = $1", task_id)
    assert task["status"] == "pending" and task["attempts"] == 0 and task["last_error"] is None
    last = (await task_events(db, task_id))[-1]
    assert last["status"] == "pending" and last["requeued"] is True

    # an unknown id, and a task that is not a dead letter: exit 1 with a message, nothing changed
    code, out, err = await run_cli(database_url, "tasks", "retry", "task_nope")
    assert code == 1
    assert "no task task_nope" in err
    code, out, err = await run_cli(database_url, "tasks", "retry", completed_id)
    assert code == 1
    assert "only dead_letter tasks can be retried" in err
    assert await db.fetchval("SELECT status FROM order_tasks WHERE task_id = $1", completed_id) == "completed"

    code, out, err = await run_cli(database_url, "tasks", "list", "--status", "pending")
    assert code == 0, out + err
    assert task_id in out and completed_id not in out
