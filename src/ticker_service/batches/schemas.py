"""Batch request and answer schemas (msgspec), as the spec shows them plus `legs`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from ticker_service.orders.schemas import AccountId, ExpiresIn, OrderFields


class BatchLeg(OrderFields, forbid_unknown_fields=True, kw_only=True):
    """One leg: an order's fields (account, deadline and market protection are the batch's)."""


class BatchOrdersRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    orders: Annotated[list[BatchLeg], Meta(min_length=1, max_length=20)]
    account_id: AccountId = "primary"
    rollback_on_failure: bool = True
    # square_off (the default): a filled leg is undone by an opposite MARKET order, as the spec's
    # all-or-nothing promise needs; cancel: open legs are cancelled, filled ones reported as they are
    rollback_mode: Literal["cancel", "square_off"] = "square_off"
    expires_in: ExpiresIn | None = None  # per leg, from when it becomes the one to place


class LegView(msgspec.Struct, kw_only=True):
    index: int
    task_id: str
    order_id: str | None
    status: str  # the leg task's state (waiting, pending, ..., completed, rejected, skipped)
    order_status: str | None
    error: str | None
    rollback: dict[str, Any] | None  # {"outcome": cancelled|squared_off|not_rolled_back|failed|pending, ...}


class BatchView(msgspec.Struct, kw_only=True):
    batch_id: str
    success: bool
    status: str  # running | rolling_back | completed | failed | rollback_failed
    total_orders: int
    succeeded: int
    failed: int
    created_at: str | None
    completed_at: str | None
    error: str | None
    account_id: str
    rollback_on_failure: bool
    rollback_mode: str
    legs: list[LegView]
