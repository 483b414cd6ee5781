"""The operator's command line (`ticker-service tasks ...`), run as a real subprocess against the test database."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import asyncpg

from tests.conftest import SPEC_ORDER, eventually, make_client
from tests.integration.test_relay import task_events
from tests.webhook_receiver import Receiver, receivers, start_receiver
from ticker_service.accounts import pauses
from ticker_service.accounts.states import PauseReason

__all__ = ["receivers"]  # the fixture


async def run_cli(database_url: str, *args: str, **extra: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKER_")}
    env.update(DATABASE_URL=database_url, LOG_LEVEL="WARNING", **extra)
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


async def test_tasks_cleanup_deletes_only_what_the_retention_allows(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url) as c:
        old = (await c.post("/orders/place", json=SPEC_ORDER)).json()["task_id"]
        new = (await c.post("/orders/place", json=SPEC_ORDER)).json()["task_id"]
    await db.execute("UPDATE order_tasks SET updated_at = now() - interval '30 days' WHERE task_id = $1", old)
    code, out, err = await run_cli(database_url, "tasks", "cleanup")
    assert code == 0, out + err
    assert json.loads(out)["deleted"]["tasks"] == 1
    remaining = {r["task_id"] for r in await db.fetch("SELECT task_id FROM order_tasks")}
    assert new in remaining and old not in remaining


async def test_webhooks_list_and_replay_through_the_routes_own_code(
    database_url: str, db: asyncpg.Connection, receivers: list[Receiver]
) -> None:
    receiver = await start_receiver(receivers)
    async with make_client(database_url, WEBHOOK_ALLOW_PRIVATE="true") as c:
        hook = await c.post(
            "/advanced/webhooks", json={"url": receiver.url, "events": ["order_placed"], "secret": "s3cret-value-0001"}
        )
        webhook_id = hook.json()["webhook_id"]
        delivery_id = (await c.post(f"/advanced/webhooks/{webhook_id}/test")).json()["delivery_id"]
        await eventually(lambda: db.fetchval("SELECT status = 'delivered' FROM webhook_deliveries"))
    code, out, err = await run_cli(database_url, "webhooks", "list")
    assert code == 0, out + err
    listed = json.loads(out)
    assert listed["webhook_id"] == webhook_id and listed["active"] is True
    assert "s3cret-value-0001" not in out + err

    code, out, err = await run_cli(database_url, "webhooks", "replay", webhook_id, delivery_id)
    assert code == 0, out + err
    assert await db.fetchval("SELECT status FROM webhook_deliveries WHERE delivery_id = $1", delivery_id) == "pending"
    # a delivery that is not finished does not replay; nor does one of a disabled webhook
    code, _out, err = await run_cli(database_url, "webhooks", "replay", webhook_id, delivery_id)
    assert code == 1 and "only delivered or dead ones replay" in err
    code, _out, err = await run_cli(database_url, "webhooks", "replay", webhook_id, "dl_nope")
    assert code == 1 and "no delivery" in err
    await db.execute("UPDATE webhooks SET active = false, disabled_reason = 'failing for a day'")
    code, _out, err = await run_cli(database_url, "webhooks", "replay", webhook_id, delivery_id)
    assert code == 1 and "disabled" in err


async def test_accounts_list_and_session_never_show_a_token(database_url: str, db: asyncpg.Connection) -> None:
    accounts = json.dumps({"primary": {}, "desk": {}})
    await db.execute(
        "INSERT INTO broker_sessions (account_id, access_token, token_digest, user_id, source, created_at) "
        "VALUES ('desk', 'sealed-token-bytes', 'digest', 'AB1234', 'api', now())"
    )
    await pauses.pause(db, "desk", PauseReason.TOKEN_EXPIRED, "Kite refused the token")
    code, out, err = await run_cli(database_url, "accounts", "list", TICKER_ACCOUNTS=accounts)
    assert code == 0, out + err
    rows = {r["account_id"]: r for r in map(json.loads, out.splitlines())}
    assert rows["primary"]["state"] == "active" and rows["primary"]["session_stored_at"] is None
    assert rows["desk"]["state"] == "token_expired" and rows["desk"]["session_stored_at"]
    code, out, err = await run_cli(database_url, "accounts", "session", "desk", TICKER_ACCOUNTS=accounts)
    assert code == 0, out + err
    shown = json.loads(out)
    assert shown["session"]["user_id"] == "AB1234" and shown["state"] == "token_expired"
    assert "sealed-token-bytes" not in out and "digest" not in out
    code, _out, err = await run_cli(database_url, "accounts", "session", "ghost", TICKER_ACCOUNTS=accounts)
    assert code == 1 and "unknown account" in err


async def test_db_current_downgrade_and_upgrade(database_url: str) -> None:
    code, out, err = await run_cli(database_url, "db", "current")
    assert code == 0, out + err
    head = out.strip()
    assert head and head.startswith("00")
    code, out, err = await run_cli(database_url, "db", "downgrade", "base")
    assert code == 0, out + err
    code, out, err = await run_cli(database_url, "db", "current")
    assert code == 0 and "base" in out
    code, out, err = await run_cli(database_url, "db", "upgrade")
    assert code == 0, out + err
    code, out, err = await run_cli(database_url, "db", "current")
    assert out.strip() == head
