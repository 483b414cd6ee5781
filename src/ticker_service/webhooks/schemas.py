"""Webhook request and response schemas (msgspec), as the spec shows them."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from ticker_service.orders.schemas import AccountId


class CreateWebhookRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    events: Annotated[list[str], Meta(min_length=1, max_length=32)]
    account_id: AccountId = "primary"
    secret: Annotated[str, Meta(min_length=8, max_length=256)] | None = None


class WebhookView(msgspec.Struct, kw_only=True):
    webhook_id: str
    url: str
    account_id: str
    events: list[str]
    active: bool
    created_at: str | None
    disabled_reason: str | None = None
    disabled_at: str | None = None
    last_success_at: str | None = None
    failing_since: str | None = None
    secret: str | None = msgspec.field(default=None)  # only in the answer to its creation


class DeliveryView(msgspec.Struct, kw_only=True):
    delivery_id: str
    webhook_id: str
    event_id: str
    event: str
    seq: int | None
    status: str  # pending | sending | retrying | delivered | dead
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    created_at: str | None
    updated_at: str | None
    delivered_at: str | None
