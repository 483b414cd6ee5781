"""The account's Kite ticker connection as its order-update stream, and its state for `/health`.

Runs in the one process that follows the account (an advisory lock, `jobs.singleton`): it owns the
account's ticker socket (`ticker.KiteTickerClient`), turns each order message into a `BrokerOrder`
for the mirror, and keeps the connection's state in `account_feeds`, where every instance's
`/health` and `GET /accounts` read it. Order messages cover orders from every platform, so orders
placed on Kite web or the app reach the order stream too (as external: no task).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from ticker_service.accounts import feeds
from ticker_service.brokers.base import BrokerOrder
from ticker_service.brokers.kite.mapping import PSEUDO_UPDATE, to_order
from ticker_service.brokers.kite.ticker import TickerConfig, TickerState, TickerStatus
from ticker_service.brokers.kite.ticker_group import KiteTickerGroup
from ticker_service.brokers.kite.ticker_messages import OrderUpdate
from ticker_service.system import metrics

if TYPE_CHECKING:
    from ticker_service.brokers.kite.broker import KiteBroker

log = structlog.get_logger("ticker.kite")

RECORD_EVERY = 1.0  # seconds between looks at the connection's state (written when it changed, or every 10 s)


def update_to_order(update: OrderUpdate) -> BrokerOrder | None:
    data: dict[str, Any] = msgspec.to_builtins(update)
    try:
        return to_order(
            {**data, "order_timestamp": update.order_timestamp, "exchange_timestamp": update.exchange_timestamp}
        )
    except (KeyError, TypeError, ValueError):
        log.warning("ticker order message without an order's fields; skipped", order_id=update.order_id)
        return None


async def ticker_orders(broker: KiteBroker) -> AsyncIterator[list[BrokerOrder]]:
    connections, per_connection = broker.feed_limits
    client = KiteTickerGroup(
        api_key=broker.config.api_key,
        access_token=broker.session.token,
        ticker_root=broker.config.ticker_root,
        account_id=broker.account_id,
        config=TickerConfig(silence_timeout=broker.silence_timeout, max_instruments=per_connection),
        connections=connections,
    )
    broker.ticker = client
    stop = asyncio.Event()
    running = asyncio.create_task(client.run(stop), name=f"kite-ticker-{broker.account_id}")
    recording = asyncio.create_task(_record_states(broker, client), name=f"kite-feed-state-{broker.account_id}")
    # the account's ticks ride the same connections: their holder runs while this process follows it
    ticks: asyncio.Task[None] | None = (
        asyncio.create_task(broker.tick_holder(client), name=f"kite-ticks-{broker.account_id}")
        if broker.tick_holder is not None
        else None
    )
    try:
        async for updates in client.order_updates():
            orders = []
            for update in updates:
                order = update_to_order(update)
                if order is not None and order.status == PSEUDO_UPDATE:
                    order = await broker.current(order.order_id)
                if order is not None:
                    orders.append(order)
            if orders:
                yield orders
    finally:
        stop.set()
        broker.ticker = None
        for task in (recording, ticks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        await client.close()
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        with contextlib.suppress(Exception):
            await _record(broker, "disconnected", "this instance stopped following the account", None)


async def _record(broker: KiteBroker, state: str, detail: str | None, status: TickerStatus | None) -> None:
    await feeds.record(
        broker.pool,
        broker.account_id,
        state,
        detail,
        instance_id=broker.instance_id,
        reconnects=status.reconnects if status else 0,
        last_frame_at=status.last_frame_at if status else None,
    )


async def _record_states(broker: KiteBroker, client: KiteTickerGroup) -> None:
    seen: tuple[str, str | None] | None = None
    unchanged = 0
    while True:
        status = client.status()
        now = (status.state.value, status.last_error)
        for state in TickerState:  # no secrets in labels: the account and the state's name only
            metrics.FEED_STATE.labels(account=broker.account_id, state=state.value).set(state == status.state)
        unchanged += 1
        if now != seen or unchanged >= 10:
            try:
                await _record(broker, status.state.value, status.last_error, status)
                seen, unchanged = now, 0
            except Exception as exc:
                log.warning("could not record the ticker's state", account_id=broker.account_id, error=str(exc))
        await asyncio.sleep(RECORD_EVERY)
