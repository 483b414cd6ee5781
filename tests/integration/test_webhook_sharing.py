"""Webhook send slots shared fairly: between accounts first, then between endpoints; an endpoint that
keeps timing out is backed off; an account has at most `WEBHOOK_MAX_PER_ACCOUNT` endpoints; a healthy
endpoint records its last success. Real receivers on loopback, real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from tests.conftest import eventually, make_client
from tests.webhook_receiver import Receiver, receivers, start_receiver

__all__ = ["receivers"]  # the fixture

TWO_ACCOUNTS = {"alice": {"broker": "paper"}, "bob": {"broker": "paper"}}
ENV = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_RETRY_SCHEDULE": "0.1,0.2,0.2,0.2,0.2,0.2"}


async def register(c: AsyncTestClient[Any], url: str, account_id: str) -> dict[str, Any]:
    r = await c.post("/advanced/webhooks", json={"url": url, "account_id": account_id, "events": ["order_completed"]})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def ping(c: AsyncTestClient[Any], webhook_id: str) -> None:
    assert (await c.post(f"/advanced/webhooks/{webhook_id}/test")).status_code == 202


async def test_an_account_whose_receiver_hangs_does_not_delay_another_accounts_deliveries(
    database_url: str, receivers: list[Receiver]
) -> None:
    """Alice's endpoints, all on a receiver that hangs, are as many as it takes to fill every slot of
    the process under per-endpoint limits alone (4 x 4 = 16). Bob's delivery latency with them
    hanging is compared with his own latency measured first in the same test."""
    healthy = await start_receiver(receivers)
    hanging = await start_receiver(receivers, mode="hang")
    env = ENV | {"WEBHOOK_TIMEOUT": "5", "WEBHOOK_CONCURRENCY": "16", "WEBHOOK_ENDPOINT_CONCURRENCY": "4"}
    async with make_client(database_url, TWO_ACCOUNTS, **env) as c:
        bobs = await register(c, healthy.url, "bob")

        async def bobs_latency() -> float:
            before = len(healthy.received)
            started = time.monotonic()
            await ping(c, bobs["webhook_id"])
            await eventually(lambda: len(healthy.received) > before, interval=0.005)
            return time.monotonic() - started

        baseline = sorted([await bobs_latency() for _ in range(5)])[2]
        alices = [await register(c, f"{hanging.url}?n={i}", "alice") for i in range(4)]
        for hook in alices:
            for _ in range(8):
                await ping(c, hook["webhook_id"])
        await eventually(lambda: len(hanging.received) >= 4)
        await asyncio.sleep(0.3)  # every claim that alice's deliveries could make has been made
        loaded = sorted([await bobs_latency() for _ in range(5)])[2]
        # delayed by no more than its own latency (the 50 ms absorb scheduling noise on a shared 2-core
        # machine); waiting for one of alice's slots would cost the 5 s timeout
        assert loaded <= baseline * 2 + 0.05, (baseline, loaded)


async def test_an_endpoint_that_keeps_timing_out_is_backed_off(
    database_url: str, db: asyncpg.Connection, receivers: list[Receiver]
) -> None:
    """Once its requests time out, the endpoint gets one request at a time (a probe) instead of a slot
    for each due delivery, and the deliveries behind the probe keep their attempts; when the receiver
    answers again every delivery goes through and the endpoint is healthy."""
    receiver = await start_receiver(receivers, mode="hang")
    env = ENV | {"WEBHOOK_TIMEOUT": "0.5", "WEBHOOK_ENDPOINT_CONCURRENCY": "4"}
    async with make_client(database_url, **env) as c:
        hook = await register(c, receiver.url, "primary")
        for _ in range(12):
            await ping(c, hook["webhook_id"])
        await eventually(lambda: len(receiver.spans) >= 4)  # the first requests timed out
        first_timeouts = max(end for _, end in receiver.spans[:4])
        await eventually(lambda: len([s for s in receiver.spans if s[0] > first_timeouts]) >= 3, timeout=30)
        assert receiver.peak_concurrency(after=first_timeouts) == 1
        attempts = await db.fetch(
            "SELECT attempts FROM webhook_deliveries WHERE webhook_id = $1 AND status <> 'sending'", hook["webhook_id"]
        )
        # each request after the first timeouts spent one delivery's attempt, no more
        spent = sum(r["attempts"] for r in attempts)
        assert spent <= len(receiver.received), (spent, len(receiver.received))
        assert sum(1 for r in attempts if r["attempts"] == 0) >= 12 - len(receiver.received)
        receiver.mode = "ok"
        await eventually(
            lambda: db.fetchval(
                "SELECT count(*) = 12 FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'delivered'",
                hook["webhook_id"],
            ),
            timeout=30,
        )
        record = (await c.get(f"/advanced/webhooks/{hook['webhook_id']}")).json()
        assert record["active"] is True and record["failing_since"] is None and record["last_success_at"]


async def test_a_healthy_endpoint_records_its_last_success(database_url: str, receivers: list[Receiver]) -> None:
    receiver = await start_receiver(receivers)
    async with make_client(database_url, **ENV) as c:
        hook = await register(c, receiver.url, "primary")
        assert hook["last_success_at"] is None
        await ping(c, hook["webhook_id"])

        async def last_success() -> str | None:
            record = (await c.get(f"/advanced/webhooks/{hook['webhook_id']}")).json()
            return record["last_success_at"]  # type: ignore[no-any-return]

        assert (await eventually(last_success)).endswith("Z")


async def test_an_account_has_at_most_webhook_max_per_account_endpoints(database_url: str) -> None:
    env = {"WEBHOOK_ALLOW_PRIVATE": "true", "WEBHOOK_MAX_PER_ACCOUNT": "3"}
    async with make_client(database_url, TWO_ACCOUNTS, **env) as c:
        events = ["order_completed"]
        bodies = [{"url": f"http://127.0.0.1:9/hook/{i}", "account_id": "alice", "events": events} for i in range(6)]
        answers = await asyncio.gather(*(c.post("/advanced/webhooks", json=body) for body in bodies))  # at once
        assert sorted(r.status_code for r in answers) == [201, 201, 201, 409, 409, 409]
        made = [r.json() for r in answers if r.status_code == 201]
        refused = next(r.json() for r in answers if r.status_code == 409)
        assert refused["field"] == "account_id" and "WEBHOOK_MAX_PER_ACCOUNT" in refused["detail"]
        await register(c, "http://127.0.0.1:9/hook/bob", "bob")  # another account is not affected
        assert (await c.delete(f"/advanced/webhooks/{made[0]['webhook_id']}")).status_code == 200
        await register(c, "http://127.0.0.1:9/hook/5", "alice")
        listed = (await c.get("/advanced/webhooks?account_id=alice")).json()
        assert len(listed) == 3
