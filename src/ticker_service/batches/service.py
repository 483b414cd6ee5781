"""Batch intake and answers.

Every leg is validated before anything is written; then the batch row and all its leg tasks are
written in one transaction (the first leg `pending`, the others `waiting`), with the first leg's
event. From there the relay runs the legs one after another (see `progress`).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import asyncpg
import msgspec

from ticker_service.batches.schemas import BatchLeg, BatchOrdersRequest, BatchView
from ticker_service.batches.views import FINAL, load_view
from ticker_service.instruments import Instrument
from ticker_service.market_rules import MAX_AUTOSLICES, slices
from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.events import task_status_event
from ticker_service.orders.lifecycle.states import BatchStatus, Operation, TaskStatus
from ticker_service.orders.lifecycle.tasks import IdempotencyConflict, new_broker_tag, new_task_id
from ticker_service.orders.schemas import PlaceOrderRequest
from ticker_service.orders.service import OrderService
from ticker_service.orders.waiters import TaskWaiters
from ticker_service.outbox.writer import append_events
from ticker_service.system import metrics
from ticker_service.system.errors import FieldError

_encoder = msgspec.json.Encoder(order="sorted")

_BATCH = f"""
INSERT INTO batches (batch_id, account_id, idempotency_key, request_hash, rollback_on_failure, rollback_mode, total,
    status)
VALUES ($1, $2, $3, $4, $5, $6, $7, '{BatchStatus.RUNNING.value}')
ON CONFLICT (account_id, idempotency_key) DO NOTHING
RETURNING batch_id
"""


class BatchService:
    def __init__(self, pool: asyncpg.Pool, orders: OrderService, waiters: TaskWaiters) -> None:
        self.pool = pool
        self.orders = orders
        self.waiters = waiters

    async def validate(self, req: BatchOrdersRequest) -> list[dict[str, Any]]:
        """Every leg against its instrument; the first bad one is a 422 naming its 0-based index."""
        self.orders.broker(req.account_id)
        legs = []
        for i, leg in enumerate(req.orders):
            order = PlaceOrderRequest(**msgspec.structs.asdict(leg), account_id=req.account_id)
            try:
                legs.append(await self.orders.validate_place(order, prefix=f"orders[{i}]."))
            except FieldError as exc:
                raise FieldError(exc.field, f"Order {i} failed validation: {exc.message}") from None
        return legs

    async def submit(self, req: BatchOrdersRequest, idempotency_key: str | None) -> tuple[str, bool]:
        legs = await self.validate(req)
        settings = self.orders.settings
        batch_id = f"batch_{uuid.uuid4().hex}"
        request = {k: v for k, v in msgspec.to_builtins(req).items() if k != "orders"} | {"orders": legs}
        digest = hashlib.sha256(_encoder.encode(["batch", request])).hexdigest()
        key = idempotency_key or batch_id
        expires_in = float(req.expires_in or settings.execution.default_expires_in)
        async with self.pool.acquire() as conn, conn.transaction():
            created = await conn.fetchval(
                _BATCH, batch_id, req.account_id, key, digest, req.rollback_on_failure, req.rollback_mode, len(legs)
            )
            if created is None:
                existing = await conn.fetchrow(
                    "SELECT batch_id, request_hash FROM batches WHERE account_id = $1 AND idempotency_key = $2",
                    req.account_id,
                    key,
                )
                if existing["request_hash"] != digest:
                    raise IdempotencyConflict(
                        "Idempotency-Key was already used with a different batch; use a new key for a new batch"
                    )
                return str(existing["batch_id"]), False
            tasks = await conn.fetch(
                queries.INSERT_LEGS,
                digest,
                settings.execution.max_attempts,
                req.account_id,
                expires_in,
                batch_id,
                [new_task_id() for _ in legs],
                [_encoder.encode(leg).decode() for leg in legs],
                [new_broker_tag() for _ in legs],
                list(range(len(legs))),
            )
            first = next(t for t in tasks if t["batch_index"] == 0)
            await conn.execute(queries.WAKE_WORKERS)
            await append_events(conn, req.account_id, [task_status_event(first, TaskStatus.PENDING)])
        # every leg is an order accepted for placement, as a single order is (never on a replay)
        metrics.ORDER_REQUESTS.labels(operation=Operation.PLACE, account=req.account_id).inc(len(legs))
        return batch_id, True

    async def autoslices(self, req: PlaceOrderRequest) -> BatchOrdersRequest | None:
        """Kite's autoslice: the order as a batch of slices at most the freeze quantity each (every slice
        stands on its own, as Kite's do: no rollback), or None when it needs no slicing. More than
        Kite's 10 slices is a 422 naming `quantity`."""
        if not req.autoslice:
            return None
        instrument = await self.orders.instrument_of(req.account_id, req.exchange, req.tradingsymbol)
        parts = slices(instrument, req.quantity) if isinstance(instrument, Instrument) else None
        if parts is None:
            return None
        if len(parts) > MAX_AUTOSLICES:
            raise FieldError(
                "quantity",
                f"autoslice would need {len(parts)} slices of at most {parts[0]}; Kite slices an order into "
                f"at most {MAX_AUTOSLICES}",
            )
        fields = {k: v for k, v in msgspec.structs.asdict(req).items() if k in BatchLeg.__struct_fields__}
        legs = [BatchLeg(**(fields | {"quantity": quantity})) for quantity in parts]
        return BatchOrdersRequest(
            orders=legs, account_id=req.account_id, rollback_on_failure=False, expires_in=req.expires_in
        )

    async def view(self, batch_id: str) -> BatchView | None:
        return await load_view(self.pool, batch_id)

    async def answer(self, batch_id: str, wait: float) -> BatchView:
        if wait > 0:
            await self.waiters.wait(
                batch_id,
                wait,
                load=lambda: self._status(batch_id),
                done=lambda b: b["status"] in FINAL,
            )
        view = await self.view(batch_id)
        assert view is not None
        return view

    async def _status(self, batch_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT status FROM batches WHERE batch_id = $1", batch_id)
        return dict(row) if row else None


async def accounts_of_batch(pool: asyncpg.Pool, batch_id: str) -> list[str]:
    """The account of a batch (the row lookup of its route)."""
    account = await pool.fetchval("SELECT account_id FROM batches WHERE batch_id = $1", batch_id)
    return [account] if account is not None else []
