"""Webhook endpoints and their deliveries: create, read, delete, replay, test.

Creating a webhook records the account's current seq as its start: it receives the events that
come after it, each exactly once as a delivery row (the fan-out makes them).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec

from ticker_service.batches.progress import BATCH_EVENTS
from ticker_service.orders.lifecycle.events import ORDER_EVENTS, TASK_EVENTS
from ticker_service.outbox.channels import DELIVERIES_CHANNEL
from ticker_service.system.errors import ApiError, FieldError
from ticker_service.timeutil import rfc3339, utcnow
from ticker_service.webhooks import signing
from ticker_service.webhooks.schemas import CreateWebhookRequest, DeliveryView, WebhookView
from ticker_service.webhooks.urls import UnsafeUrl, UrlGuard

SUBSCRIBABLE = (*ORDER_EVENTS, *TASK_EVENTS, *BATCH_EVENTS)
_encoder = msgspec.json.Encoder()


def webhook_view(row: Mapping[str, Any], *, secret: str | None = None) -> WebhookView:
    return WebhookView(
        webhook_id=row["webhook_id"],
        url=row["url"],
        account_id=row["account_id"],
        events=list(row["events"]),
        active=row["active"],
        created_at=rfc3339(row["created_at"]),
        disabled_reason=row["disabled_reason"],
        disabled_at=rfc3339(row["disabled_at"]),
        last_success_at=rfc3339(row["last_success_at"]),
        failing_since=rfc3339(row["failing_since"]),
        secret=secret,
    )


def delivery_view(row: Mapping[str, Any]) -> DeliveryView:
    return DeliveryView(
        delivery_id=row["delivery_id"],
        webhook_id=row["webhook_id"],
        event_id=row["event_id"],
        event=row["event"],
        seq=row["seq"],
        status=row["status"],
        attempts=row["attempts"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        next_attempt_at=rfc3339(row["next_attempt_at"]) if row["status"] in ("pending", "retrying") else None,
        created_at=rfc3339(row["created_at"]),
        updated_at=rfc3339(row["updated_at"]),
        delivered_at=rfc3339(row["delivered_at"]),
    )


def delivery_body(
    *, event: str, event_id: str, account_id: str, data: Any, timestamp: str | None, seq: int | None
) -> str:
    """The POST body: the spec's fields plus `event_id` and `seq` (webhooks are unordered)."""
    body = {
        "event": event,
        "event_id": event_id,
        "account_id": account_id,
        "data": data,
        "timestamp": timestamp,
        "seq": seq,
    }
    return _encoder.encode(body).decode()


# One account's creations one at a time (a transaction-scoped advisory lock), so two at once cannot
# both pass the WEBHOOK_MAX_PER_ACCOUNT check
_LOCK_ACCOUNT_WEBHOOKS = "SELECT pg_advisory_xact_lock(hashtextextended('webhooks:' || $1, 0))"
_CREATE = """
INSERT INTO webhooks (webhook_id, account_id, url, events, secret, start_seq)
SELECT $1, $2, $3, $4, $5, COALESCE((SELECT last_seq FROM account_seq WHERE account_id = $2), 0)
WHERE (SELECT count(*) FROM webhooks WHERE account_id = $2) < $6
RETURNING *
"""
_REPLAY = """
UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now(),
    lease_owner = NULL, lease_expires_at = NULL
WHERE delivery_id = $1 AND webhook_id = $2 AND status IN ('delivered', 'dead')
RETURNING *
"""
_TEST = """
INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, event, account_id, seq, body, status)
VALUES ($1, $2, $3, 'ping', $4, NULL, $5, 'pending')
RETURNING *
"""


class WebhookService:
    def __init__(self, pool: asyncpg.Pool, guard: UrlGuard, accounts: set[str], max_per_account: int) -> None:
        self.pool = pool
        self.guard = guard
        self.accounts = accounts
        self.max_per_account = max_per_account

    async def create(self, req: CreateWebhookRequest) -> WebhookView:
        if req.account_id not in self.accounts:
            raise FieldError("account_id", f"unknown account {req.account_id!r}")
        unknown = [e for e in req.events if e not in SUBSCRIBABLE]
        if unknown:
            raise FieldError("events", f"unknown event {unknown[0]!r}; one of {', '.join(SUBSCRIBABLE)}")
        try:
            await self.guard.check(req.url)
        except UnsafeUrl as exc:
            raise FieldError("url", str(exc).removeprefix("url: ")) from None
        secret = req.secret or signing.generate_secret()
        try:
            signing.signing_key(secret)
        except ValueError as exc:
            raise FieldError("secret", str(exc)) from None
        events = list(dict.fromkeys(req.events))
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK_ACCOUNT_WEBHOOKS, req.account_id)
            row = await conn.fetchrow(
                _CREATE, f"wh_{uuid.uuid4().hex}", req.account_id, req.url, events, secret, self.max_per_account
            )
        if row is None:
            raise FieldError(
                "account_id",
                f"the account already has {self.max_per_account} webhooks (WEBHOOK_MAX_PER_ACCOUNT); delete one first",
                status_code=409,
            )
        return webhook_view(row, secret=secret)

    async def get_row(self, webhook_id: str) -> Mapping[str, Any]:
        row = await self.pool.fetchrow("SELECT * FROM webhooks WHERE webhook_id = $1", webhook_id)
        if row is None:
            raise ApiError(404, f"webhook_id: no webhook {webhook_id!r}")
        return row  # type: ignore[no-any-return]

    async def list_for(self, account_ids: list[str]) -> list[WebhookView]:
        rows = await self.pool.fetch(
            "SELECT * FROM webhooks WHERE account_id = ANY($1) ORDER BY created_at, webhook_id", account_ids
        )
        return [webhook_view(r) for r in rows]

    async def delete(self, webhook_id: str) -> None:
        if await self.pool.fetchval("DELETE FROM webhooks WHERE webhook_id = $1 RETURNING 1", webhook_id) is None:
            raise ApiError(404, f"webhook_id: no webhook {webhook_id!r}")

    async def deliveries(self, webhook_id: str, status: str | None, limit: int, offset: int) -> list[DeliveryView]:
        rows = await self.pool.fetch(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = $1 AND ($2::text IS NULL OR status = $2) "
            "ORDER BY created_at DESC, delivery_id LIMIT $3 OFFSET $4",
            webhook_id,
            status,
            limit,
            offset,
        )
        return [delivery_view(r) for r in rows]

    async def replay(self, webhook_id: str, delivery_id: str) -> DeliveryView:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_REPLAY, delivery_id, webhook_id)
            if row is None:
                current = await conn.fetchrow(
                    "SELECT status FROM webhook_deliveries WHERE delivery_id = $1 AND webhook_id = $2",
                    delivery_id,
                    webhook_id,
                )
                if current is None:
                    raise ApiError(404, f"delivery_id: no delivery {delivery_id!r} of webhook {webhook_id!r}")
                raise ApiError(409, f"delivery_id: delivery is {current['status']}; only delivered or dead ones replay")
            await conn.execute("SELECT pg_notify($1, '')", DELIVERIES_CHANNEL)
        return delivery_view(row)

    async def test(self, webhook: Mapping[str, Any]) -> DeliveryView:
        event_id = str(uuid.uuid4())
        body = delivery_body(
            event="ping",
            event_id=event_id,
            account_id=webhook["account_id"],
            data={"webhook_id": webhook["webhook_id"], "message": "test delivery"},
            timestamp=rfc3339(utcnow()),
            seq=None,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _TEST, f"dl_{uuid.uuid4().hex}", webhook["webhook_id"], event_id, webhook["account_id"], body
            )
            await conn.execute("SELECT pg_notify($1, '')", DELIVERIES_CHANNEL)
        return delivery_view(row)


async def accounts_of_webhook(pool: asyncpg.Pool, webhook_id: str) -> list[str]:
    """The account of a webhook (the row lookup of its routes)."""
    account = await pool.fetchval("SELECT account_id FROM webhooks WHERE webhook_id = $1", webhook_id)
    return [account] if account is not None else []
