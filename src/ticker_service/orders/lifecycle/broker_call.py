"""One broker call: its timeout, its lease kept alive, and what its exception means.

Every broker maps its own failures onto the classes of `brokers.base`; `outcome_of_error` is the one
place that turns those into outcomes. Anything unexpected is treated as ambiguous: the request may
have reached the broker, so the task is reconciled by tag rather than sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import structlog

from ticker_service.brokers.base import (
    BrokerAmbiguous,
    BrokerAuthError,
    BrokerDeadline,
    BrokerOrder,
    BrokerRejected,
    BrokerUnavailable,
    ChangeAck,
    ModifyOrderParams,
    OrderNotFound,
    PlaceOrderParams,
    PlaceResult,
)
from ticker_service.orders.lifecycle.outcome import Outcome, OutcomeKind
from ticker_service.system import metrics

log = structlog.get_logger("ticker.executor")

K = OutcomeKind


def outcome_of_error(exc: BaseException) -> Outcome:
    """The outcome a broker call that raised `exc` has established."""
    if isinstance(exc, BrokerRejected | OrderNotFound):
        return Outcome(K.REJECTED, str(exc))
    if isinstance(exc, BrokerUnavailable):
        return Outcome(K.BEFORE_SEND, str(exc))
    if isinstance(exc, BrokerAuthError):
        return Outcome(K.AUTH, str(exc))
    if isinstance(exc, BrokerDeadline):
        return Outcome(K.EXPIRED, str(exc))
    if isinstance(exc, BrokerAmbiguous | TimeoutError):
        return Outcome(K.AMBIGUOUS, str(exc) or "broker call timed out")
    return Outcome(K.AMBIGUOUS, f"unexpected error: {type(exc).__name__}")


def outcome_of_result(result: PlaceResult | BrokerOrder | ChangeAck) -> Outcome:
    if isinstance(result, BrokerOrder):  # a modification or cancellation: the order as it is now
        return Outcome(K.DONE, order_id=result.order_id, order=result)
    if isinstance(result, ChangeAck):  # ... accepted; the order is read back
        return Outcome(K.DONE, order_id=result.order_id)
    return Outcome(K.PLACED, order_id=result.order_id, order=result.order)


@contextlib.asynccontextmanager
async def keep_lease(renew_after: float, renew: Callable[[], Awaitable[bool]]) -> AsyncIterator[None]:
    """Renew the task's lease every `renew_after` seconds while the block runs.

    Most calls end long before `renew_after`, so the renewer is only started (by a timer) for blocks
    still running then: no task per call on the hot path.
    """
    renewer: asyncio.Task[None] | None = None

    async def keep_renewing() -> None:
        while True:
            try:
                if not await renew():
                    log.warning("lease lost during broker call")
                    return
            except Exception:
                log.exception("lease renewal failed")
            await asyncio.sleep(renew_after)

    def start_renewer() -> None:
        nonlocal renewer
        renewer = asyncio.create_task(keep_renewing())

    timer = asyncio.get_running_loop().call_later(renew_after, start_renewer)
    try:
        yield
    finally:
        timer.cancel()
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer


async def call_broker(
    call: Callable[[], Awaitable[PlaceResult | BrokerOrder | ChangeAck]],
    *,
    operation: str,
    timeout: float,
    renew_after: float,
    renew: Callable[[], Awaitable[bool]],
    turn: Callable[[], Awaitable[None]] | None = None,
) -> Outcome:
    """Wait for the change's `turn` (rate limits), then run `call` within `timeout`; the task's
    lease is renewed throughout. The timeout covers the call only: waiting for a turn sends nothing."""
    async with keep_lease(renew_after, renew):
        if turn is not None:
            try:
                await turn()
            except BrokerDeadline as exc:
                return Outcome(K.EXPIRED, str(exc))
            except Exception as exc:  # nothing was sent: safe to try again
                log.warning("waiting for a turn failed", error=type(exc).__name__)
                return Outcome(K.BEFORE_SEND, f"could not take a turn under the rate limits: {type(exc).__name__}")
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                result = await call()
        except Exception as exc:
            outcome = outcome_of_error(exc)
            if outcome.message and outcome.message.startswith("unexpected error"):
                log.exception("unexpected broker error; treating the outcome as unknown")
            return outcome
        finally:
            metrics.BROKER_CALL_SECONDS.labels(operation=operation).observe(time.perf_counter() - started)
    return outcome_of_result(result)


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def place_params(params: dict[str, Any], broker_tag: str) -> PlaceOrderParams:
    """A stored (validated) placement as the broker takes it, with the service's tag."""
    return PlaceOrderParams(
        exchange=params["exchange"],
        tradingsymbol=params["tradingsymbol"],
        transaction_type=params["transaction_type"],
        quantity=params["quantity"],
        product=params["product"],
        order_type=params["order_type"],
        variety=params.get("variety") or "regular",
        price=_dec(params.get("price")),
        trigger_price=_dec(params.get("trigger_price")),
        validity=params.get("validity") or "DAY",
        disclosed_quantity=params.get("disclosed_quantity"),
        market_protection=_dec(params.get("market_protection")),
        validity_ttl=params.get("validity_ttl"),
        iceberg_legs=params.get("iceberg_legs"),
        iceberg_quantity=params.get("iceberg_quantity"),
        auction_number=params.get("auction_number"),
        tag=broker_tag,
    )


def modify_params(params: dict[str, Any], order_id: str) -> ModifyOrderParams:
    return ModifyOrderParams(
        order_id=order_id,
        variety=params.get("variety") or "regular",
        quantity=params.get("quantity"),
        price=_dec(params.get("price")),
        trigger_price=_dec(params.get("trigger_price")),
        order_type=params.get("order_type"),
        validity=params.get("validity"),
    )
