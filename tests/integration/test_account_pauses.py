"""A paused account's tasks wait without spending attempts, expire unsent, and flow again on resume;
stored tokens are encrypted; the login nonce is single use. Real PostgreSQL, the paper broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from cryptography.fernet import Fernet

from tests.conftest import SPEC_ORDER, eventually, make_client
from ticker_service.accounts import login, pauses
from ticker_service.accounts.sessions import SessionStore, digest
from ticker_service.accounts.states import AccountState, PauseReason
from ticker_service.db.engine import asyncpg_dsn
from ticker_service.db.pool import create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The test's own pool (the app's lives on the test client's loop)."""
    made = await create_pool(asyncpg_dsn(database_url), 2)
    yield made
    await made.close()


async def test_a_paused_accounts_orders_wait_then_flow_on_resume(
    database_url: str, db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    async with make_client(database_url, {"primary": {}, "other": {}}) as c:
        await pauses.pause(pool, "primary", PauseReason.TOKEN_EXPIRED, "Kite refused the access token")
        waiting = await c.post("/orders/place?wait=0", json=SPEC_ORDER | {"expires_in": 60})
        other = await c.post("/orders/place?wait=5", json=SPEC_ORDER | {"account_id": "other"})
        assert waiting.status_code == 202 and other.status_code == 201  # only the paused account waits
        await asyncio.sleep(1.0)  # several polls of the workers
        task_id = waiting.json()["task_id"]
        row = await db.fetchrow("SELECT status, attempts FROM order_tasks WHERE task_id = $1", task_id)
        assert (row["status"], row["attempts"]) == ("pending", 0)
        health = (await c.get("/health")).json()
        assert health["status"] == "degraded" and health["accounts"]["primary"]["state"] == "token_expired"
        assert any("primary" in p and "token expired" in p for p in health["problems"])
        assert await pauses.resume(pool, "primary", PauseReason.TOKEN_EXPIRED)
        await eventually(
            lambda: db.fetchval("SELECT status = 'completed' FROM order_tasks WHERE task_id = $1", task_id)
        )
        assert await db.fetchval("SELECT attempts FROM order_tasks WHERE task_id = $1", task_id) == 1


async def test_a_paused_accounts_order_past_its_deadline_fails_unsent(
    database_url: str, db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    async with make_client(database_url) as c:
        await pauses.pause(pool, "primary", PauseReason.BREAKER_OPEN, "5 network failures in a row", probe_in=60)
        r = await c.post("/orders/place?wait=0", json=SPEC_ORDER | {"expires_in": 1})
        task_id = r.json()["task_id"]
        await eventually(lambda: db.fetchval("SELECT status = 'failed' FROM order_tasks WHERE task_id = $1", task_id))
        assert await db.fetchval("SELECT count(*) FROM paper_orders") == 0
        failed = await db.fetchval(
            "SELECT count(*) FROM outbox_events WHERE task_id = $1 AND event = 'order_failed'", task_id
        )
        assert failed == 1


async def test_pause_state_shows_the_reason_an_operator_acts_on_first(database_url: str) -> None:
    pool = await create_pool(asyncpg_dsn(database_url), 2)
    try:
        await pauses.pause(pool, "a", PauseReason.BREAKER_OPEN, "network")
        assert pauses.state_of(await pauses.of_account(pool, "a")) == (AccountState.BREAKER_OPEN, "network")
        await pauses.pause(pool, "a", PauseReason.TOKEN_EXPIRED, "token")
        assert pauses.state_of(await pauses.of_account(pool, "a")) == (AccountState.TOKEN_EXPIRED, "token")
        assert not await pauses.pause(pool, "a", PauseReason.TOKEN_EXPIRED, "token again")  # idempotent
        assert await pauses.resume(pool, "a", PauseReason.TOKEN_EXPIRED, PauseReason.BREAKER_OPEN)
        assert pauses.state_of(await pauses.of_account(pool, "a")) == (AccountState.ACTIVE, None)
    finally:
        await pool.close()


async def test_stored_tokens_are_encrypted_and_read_back_only_with_the_key(
    database_url: str, db: asyncpg.Connection
) -> None:
    key = Fernet.generate_key().decode()
    pool = await create_pool(asyncpg_dsn(database_url), 2)
    try:
        store = SessionStore(pool, key)
        await pauses.pause(pool, "k", PauseReason.TOKEN_EXPIRED, "expired")
        await store.save("k", "plain-access-token-123", user_id="AB1234", source="api")
        raw = await db.fetchrow("SELECT * FROM broker_sessions WHERE account_id = 'k'")
        assert "plain-access-token-123" not in str(dict(raw))
        assert raw["token_digest"] == digest("plain-access-token-123")
        loaded = await store.load("k")
        assert loaded is not None and (loaded.access_token, loaded.user_id) == ("plain-access-token-123", "AB1234")
        assert await pauses.of_account(pool, "k") == []  # a new token lifts the session pauses
        assert await SessionStore(pool, Fernet.generate_key().decode()).load("k") is None  # another key reads nothing
    finally:
        await pool.close()


async def test_a_login_nonce_is_spent_once_and_only_for_its_account(database_url: str) -> None:
    pool = await create_pool(asyncpg_dsn(database_url), 2)
    try:
        nonce = await login.new_nonce(pool, "k")
        assert not await login.use_nonce(pool, "other", nonce)
        assert await login.use_nonce(pool, "k", nonce)
        assert not await login.use_nonce(pool, "k", nonce)
        assert not await login.use_nonce(pool, "k", "made-up")
    finally:
        await pool.close()
