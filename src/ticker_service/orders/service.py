"""Order use-cases: validate, write the task, optionally wait, and shape the answer.

Nothing a client sends reaches a broker before it has passed `validate_place` (or the modify and
cancel checks): the relay only ever sees parameters that were checked against the instrument.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ticker_service.brokers.base import (
    OPEN_ORDER_STATUSES,
    TERMINAL_ORDER_STATUSES,
    Broker,
    BrokerError,
    OrderNotFound,
)
from ticker_service.db.tables import orders
from ticker_service.instruments import (
    Instrument,
    InstrumentBook,
    InstrumentListing,
    ListingUnavailable,
    check_order,
    to_decimal,
)
from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.states import RESOLVED, Operation, TaskStatus
from ticker_service.orders.lifecycle.tasks import get_task, submit_task
from ticker_service.orders.mirror import mirror_row_to_order
from ticker_service.orders.schemas import ModifyOrderRequest, PlaceOrderRequest, TaskView
from ticker_service.orders.waiters import TaskWaiters
from ticker_service.settings import Settings
from ticker_service.system import metrics
from ticker_service.system.errors import ApiError, FieldError
from ticker_service.timeutil import rfc3339

log = structlog.get_logger("ticker.orders")


class Unchecked(enum.Enum):
    """A live broker's instrument list could not be had: the broker checks the order itself."""

    UNCHECKED = "unchecked"


UNCHECKED = Unchecked.UNCHECKED

MAX_MODIFICATIONS = 25  # Kite's limit per order (KITE.md); the next one is refused before anything is sent


# What `GET /orders?status=` accepts: Kite's order statuses, the working ones then the final ones
ORDER_STATUSES = (*sorted(OPEN_ORDER_STATUSES), *sorted(TERMINAL_ORDER_STATUSES))


def order_status_filter(value: str | None) -> str | None:
    """The order status to filter on, as Kite writes it (upper case); matching ignores case and
    surrounding spaces. An unknown value is a 422 naming `status`, never a silently empty list."""
    if value is None:
        return None
    wanted = " ".join(value.split()).upper()
    if wanted not in ORDER_STATUSES:
        raise FieldError("status", f"unknown order status {value!r}; one of {', '.join(ORDER_STATUSES)}")
    return wanted


def check_variety(req: PlaceOrderRequest, prefix: str = "") -> None:
    """What Kite requires of each variety, validity and market protection, refused here as Kite would."""
    mp = req.market_protection
    if mp is not None and not (mp == -1 or 0 < mp <= 100):
        raise FieldError(
            f"{prefix}market_protection",
            "must be -1 (automatic) or a percentage above 0 and at most 100; Kite rejects 0",
        )
    if (req.validity == "TTL") != (req.validity_ttl is not None):
        raise FieldError(f"{prefix}validity_ttl", "validity_ttl (minutes) goes with validity TTL, and only with it")
    iceberg = (req.iceberg_legs, req.iceberg_quantity)
    if req.variety == "iceberg":
        if None in iceberg:
            raise FieldError(
                f"{prefix}iceberg_legs", "an iceberg order needs iceberg_legs (2 to 10) and iceberg_quantity"
            )
        assert req.iceberg_legs is not None and req.iceberg_quantity is not None
        if req.iceberg_quantity * req.iceberg_legs < req.quantity or req.iceberg_quantity > req.quantity:
            raise FieldError(f"{prefix}iceberg_quantity", "iceberg_legs legs of iceberg_quantity must cover quantity")
    elif iceberg != (None, None):
        raise FieldError(f"{prefix}iceberg_legs", "iceberg_legs and iceberg_quantity go with variety iceberg only")
    if (req.variety == "auction") != (req.auction_number is not None):
        raise FieldError(f"{prefix}auction_number", "auction_number goes with variety auction, and only with it")
    if req.variety == "co":
        if req.order_type not in ("MARKET", "LIMIT"):
            raise FieldError(f"{prefix}order_type", "a cover order is MARKET or LIMIT")
        if req.trigger_price is None or req.trigger_price <= 0:
            raise FieldError(f"{prefix}trigger_price", "a cover order needs its stop-loss trigger_price")


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: TaskView


class OrderService:
    def __init__(
        self,
        engine: AsyncEngine,
        pool: asyncpg.Pool,
        settings: Settings,
        instruments: InstrumentBook,
        brokers: Mapping[str, Broker],
        waiters: TaskWaiters,
        on_new_task: Callable[[], None] | None = None,
        listing: InstrumentListing | None = None,
        paper_accounts: frozenset[str] | None = None,
    ) -> None:
        self.engine = engine
        self.pool = pool  # the request path's asyncpg pool: intake and task reads
        self.settings = settings
        self.instruments = instruments
        # where a live broker's account looks up the instruments its orders name (its own broker's list:
        # the shipped paper list knows a handful); the paper accounts keep the in-memory list, no await
        self.listing = listing
        self.paper_accounts = paper_accounts if paper_accounts is not None else frozenset(brokers)
        self.brokers = brokers
        self.waiters = waiters
        # wakes this process's executor at once; others learn of the task by a NOTIFY naming this instance
        self.on_new_task = on_new_task or (lambda: None)

    # ---- validation ----------------------------------------------------------------------------

    def broker(self, account_id: str, field: str = "account_id") -> Broker:
        broker = self.brokers.get(account_id)
        if broker is None:
            raise FieldError(field, f"unknown account {account_id!r}")
        return broker

    async def instrument_of(self, account_id: str, exchange: str, tradingsymbol: str) -> Instrument | Unchecked | None:
        """The instrument as the account's broker lists it; None when it does not; `UNCHECKED` when a
        live broker's list cannot be had now (the broker checks the order itself: no refusal here
        for want of a list)."""
        if self.listing is None or account_id in self.paper_accounts:
            return self.instruments.get(exchange, tradingsymbol)
        try:
            return await self.listing.lookup(account_id, exchange, tradingsymbol)
        except ListingUnavailable:
            return UNCHECKED

    async def validate_place(self, req: PlaceOrderRequest, prefix: str = "") -> dict[str, Any]:
        """Check an order against its account and instrument; returns the parameters to store."""
        self.broker(req.account_id, f"{prefix}account_id")
        instrument = await self.instrument_of(req.account_id, req.exchange, req.tradingsymbol)
        if instrument is None:
            raise FieldError(f"{prefix}tradingsymbol", f"unknown instrument {req.exchange}:{req.tradingsymbol}")
        cover = req.variety == "co"  # a cover order's trigger_price is its stop-loss, whatever its type
        problems = (
            []
            if instrument is UNCHECKED
            else check_order(
                instrument,
                quantity=req.quantity,
                order_type=req.order_type,
                price=to_decimal(req.price),
                trigger_price=None if cover else to_decimal(req.trigger_price),
                disclosed_quantity=req.disclosed_quantity,
                field_prefix=prefix,
            )
        )
        if problems:
            raise FieldError(*problems[0])
        check_variety(req, prefix)
        params = msgspec.to_builtins(req)
        params.pop("expires_in", None)
        params.pop("account_id", None)
        params.pop("autoslice", None)
        if req.order_type in ("MARKET", "SL-M") and req.market_protection is None:
            params["market_protection"] = -1
        if req.order_type not in ("LIMIT", "SL"):
            params.pop("price", None)
        if req.order_type not in ("SL", "SL-M") and not cover:
            params.pop("trigger_price", None)
        return {k: v for k, v in params.items() if v is not None}

    # ---- answers -------------------------------------------------------------------------------

    async def _order_row(self, account_id: str, order_id: str | None) -> dict[str, Any] | None:
        if order_id is None:
            return None
        row = await self.pool.fetchrow(
            "SELECT * FROM orders WHERE account_id = $1 AND order_id = $2", account_id, order_id
        )
        return mirror_row_to_order(dict(row)) if row else None

    async def view(self, task: Mapping[str, Any]) -> TaskView:
        order = await self._order_row(task["account_id"], task.get("order_id"))
        message = task.get("last_error")
        if order is not None and order.get("status") == "REJECTED" and task["operation"] == Operation.PLACE:
            message = order.get("status_message") or message
        return TaskView(
            task_id=task["task_id"],
            status=task["status"],
            order_id=task.get("order_id"),
            account_id=task["account_id"],
            operation=task["operation"],
            attempts=task["attempts"],
            max_attempts=task["max_attempts"],
            tag=task["params"].get("tag"),
            broker_tag=task["broker_tag"],
            error=task.get("last_error"),
            created_at=rfc3339(task.get("created_at")),
            updated_at=rfc3339(task.get("updated_at")),
            deadline_at=rfc3339(task.get("deadline_at")),
            params=task["params"],
            result=task.get("result"),
            order=order,
            order_status=order.get("status") if order else None,
            message=message,
        )

    @staticmethod
    def status_code(view: TaskView) -> int:
        """201 placed, 200 modified/cancelled, 422 refused, 503 given up, 202 still in flight."""
        if view.status == TaskStatus.COMPLETED:
            if view.operation == Operation.PLACE:
                return 422 if view.order_status == "REJECTED" else 201
            return 200
        if view.status == TaskStatus.REJECTED:
            return 422
        if view.status in RESOLVED:
            return 503
        return 202

    async def _answer(self, task: dict[str, Any], wait: float, *, created: bool) -> Answer:
        """The task as the client sees it, after waiting up to `wait` seconds for it to resolve."""
        if created:
            metrics.ORDER_REQUESTS.labels(operation=task["operation"], account=task["account_id"]).inc()
            self.on_new_task()
        if wait > 0 and task["status"] not in RESOLVED:
            started = time.perf_counter()
            waited = await self.waiters.wait(
                task["task_id"],
                wait,
                load=lambda: get_task(self.pool, task["task_id"]),
                done=lambda t: t["status"] in RESOLVED,
                known=task,
            )
            task = waited or task
            if task["status"] in RESOLVED:
                metrics.ORDER_EXECUTION_SECONDS.labels(operation=task["operation"]).observe(
                    time.perf_counter() - started
                )
        view = await self.view(task)
        return Answer(self.status_code(view), view)

    # ---- use-cases -----------------------------------------------------------------------------

    async def place(self, req: PlaceOrderRequest, idempotency_key: str | None, wait: float) -> Answer:
        params = await self.validate_place(req)
        task, created = await submit_task(
            self.pool,
            account_id=req.account_id,
            operation=Operation.PLACE,
            params=params,
            idempotency_key=idempotency_key,
            expires_in=req.expires_in or self.settings.execution.default_expires_in,
            max_attempts=self.settings.execution.max_attempts,
            written_by=self.settings.server.instance_id,
        )
        return await self._answer(task, wait, created=created)

    async def find_order(self, order_id: str, account_id: str) -> dict[str, Any]:
        """The order as the account's broker has it now (the mirror when the broker cannot answer);
        404, naming neither the account nor anything else, when the account has no such order."""
        mirrored = await self._order_row(account_id, order_id)
        broker = self.broker(account_id)
        try:
            live = (await broker.get_order(order_id)).to_dict()
        except OrderNotFound:
            raise ApiError(404, f"order_id: no order {order_id!r}") from None
        except BrokerError as exc:
            if mirrored is None:
                raise ApiError(
                    503, f"the broker is unavailable and order {order_id!r} is not known locally: {exc}"
                ) from None
            return mirrored | {"source": "mirror"}
        live["broker_tag"] = live.pop("tag", None)
        live.update(
            tag=mirrored["tag"] if mirrored else None,
            task_id=mirrored["task_id"] if mirrored else None,
            account_id=account_id,
        )
        return live

    async def modify(
        self, order_id: str, req: ModifyOrderRequest, account: str, key: str | None, wait: float
    ) -> Answer:
        changes = {k: v for k, v in msgspec.to_builtins(req).items() if v is not None and k != "expires_in"}
        if not changes:
            raise FieldError("body", "nothing to modify: give quantity, price, trigger_price, order_type or validity")
        order = await self.find_order(order_id, account)
        if order["status"] not in OPEN_ORDER_STATUSES:
            raise FieldError("order_id", f"order {order_id} is {order['status']}; only open orders can be modified")
        made = await self.pool.fetchval(queries.MODIFICATIONS, account, order_id)
        if made >= MAX_MODIFICATIONS:
            raise FieldError(
                "order_id",
                f"order {order_id} has been modified {made} times, Kite's most: cancel it and place a new order",
            )
        instrument = await self.instrument_of(account, order["exchange"], order["tradingsymbol"])
        if isinstance(instrument, Instrument):
            order_type = changes.get("order_type", order["order_type"])
            price = to_decimal(changes.get("price", order.get("price") or None))
            trigger = to_decimal(changes.get("trigger_price", order.get("trigger_price") or None))
            problems = check_order(
                instrument,
                quantity=changes.get("quantity", order["quantity"]),
                order_type=order_type,
                price=price if order_type in ("LIMIT", "SL") else None,
                trigger_price=trigger if order_type in ("SL", "SL-M") else None,
            )
            if problems:
                raise FieldError(*problems[0])
        changes["variety"] = order.get("variety") or "regular"
        task, created = await submit_task(
            self.pool,
            account_id=account,
            operation=Operation.MODIFY,
            params=changes,
            idempotency_key=key,
            expires_in=req.expires_in or self.settings.execution.default_expires_in,
            max_attempts=self.settings.execution.max_attempts,
            order_id=order_id,
            written_by=self.settings.server.instance_id,
        )
        return await self._answer(task, wait, created=created)

    async def cancel(self, order_id: str, account: str, key: str | None, wait: float) -> Answer:
        order = await self.find_order(order_id, account)
        if order["status"] not in OPEN_ORDER_STATUSES:
            raise FieldError("order_id", f"order {order_id} is {order['status']}; only open orders can be cancelled")
        task, created = await submit_task(
            self.pool,
            account_id=account,
            operation=Operation.CANCEL,
            params={"variety": order.get("variety") or "regular"},
            idempotency_key=key,
            expires_in=self.settings.execution.default_expires_in,
            max_attempts=self.settings.execution.max_attempts,
            order_id=order_id,
            written_by=self.settings.server.instance_id,
        )
        return await self._answer(task, wait, created=created)

    async def order_book(
        self, account_id: str, status: str | None, limit: int | None, offset: int
    ) -> list[dict[str, Any]]:
        """The broker's order book, whole by default, each order with its broker tag."""
        broker = self.broker(account_id)
        status = order_status_filter(status)
        try:
            book = await broker.orders()
        except BrokerError as exc:
            raise ApiError(503, f"the broker's order book is unavailable: {exc}") from None
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(orders.c.order_id, orders.c.client_tag, orders.c.task_id).where(
                    orders.c.account_id == account_id
                )
            )
            known = {r.order_id: (r.client_tag, r.task_id) for r in rows}
        out = []
        for order in book:
            if status is not None and order.status != status:
                continue
            data = order.to_dict()
            data["broker_tag"] = data.pop("tag", None)
            client_tag, task_id = known.get(order.order_id, (None, None))
            data.update(tag=client_tag, task_id=task_id, account_id=account_id)
            out.append(data)
        return out[offset : offset + limit if limit is not None else None]


async def accounts_of_order(pool: asyncpg.Pool, order_id: str) -> list[str]:
    """The accounts whose mirror holds this order id (the row lookup of the order routes)."""
    rows = await pool.fetch("SELECT account_id FROM orders WHERE order_id = $1", order_id)
    return [r["account_id"] for r in rows]
