"""Zerodha Kite Connect behind the `Broker` protocol.

REST goes through the official `kiteconnect` client (`client`), each failure is mapped once
(`errors`), every change waits for its turn under Kite's per-key limits across all instances
(`brokers.limits`), and the account's token comes from `session`. Order updates arrive three ways,
all into the order mirror, deduplicated there: the ticker's order messages (`order_updates`, one
process per account), postbacks (`postbacks`) and reconciliation of the order book.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import structlog
from kiteconnect import KiteConnect

from ticker_service.accounts.breaker import Breaker
from ticker_service.accounts.sessions import SessionStore
from ticker_service.brokers.base import (
    BrokerAuthError,
    BrokerError,
    BrokerOrder,
    BrokerRejected,
    BrokerSession,
    ChangeAck,
    ModifyOrderParams,
    PlaceOrderParams,
    PlaceResult,
)
from ticker_service.brokers.kite.client import KiteCalls, kite_kwargs
from ticker_service.brokers.kite.config import KiteAccount
from ticker_service.brokers.kite.errors import change_error, is_network_failure, read_error
from ticker_service.brokers.kite.feed import ticker_orders
from ticker_service.brokers.kite.limits import KiteTurns, TurnMissed, check_turn, send_by
from ticker_service.brokers.kite.mapping import jsonable, latest, to_order
from ticker_service.brokers.kite.session import AccountSession
from ticker_service.brokers.kite.ticker_group import KiteTickerGroup
from ticker_service.brokers.registry import BrokerContext
from ticker_service.timeutil import IST

log = structlog.get_logger("ticker.kite")
KITE_TIME = "%Y-%m-%d %H:%M:%S"
# How long a quote may wait for its turn under Kite's 1-a-second quote limit (requests queue behind it)
QUOTE_WAIT = 10.0
T = TypeVar("T")


def _price(value: Any) -> float | None:
    return None if value is None else float(value)


def _protection(value: Any) -> int | float | None:
    """Kite takes -1 (automatic) or a percentage; sent as `-1`, not `-1.0`."""
    if value is None:
        return None
    number = float(value)
    return int(number) if number.is_integer() else number


class KiteBroker:
    def __init__(self, account_id: str, config: KiteAccount, context: BrokerContext) -> None:
        settings = context.settings
        self.account_id = account_id
        self.config = config
        self.configured_user_id = config.user_id
        self.pool = context.pool
        self.calls = KiteCalls(
            account_id, config.api_key, config.root, threads=config.threads, timeout=settings.execution.broker_timeout
        )
        self.store = SessionStore(context.pool, settings.accounts.secret_key)
        self.session = AccountSession(account_id, config.access_token, self.store, context.pool)
        self.breaker = Breaker(
            context.pool,
            account_id,
            threshold=settings.execution.breaker_failures,
            probe_after=settings.execution.breaker_probe_seconds,
        )
        self.turns = KiteTurns(context.pool, config.api_key, margin=settings.execution.rate_margin_seconds)
        self.read_timeout = settings.execution.broker_timeout
        self.silence_timeout = settings.execution.feed_silence_seconds
        self.instance_id = settings.server.instance_id
        self.ticker: KiteTickerGroup | None = None  # while this process follows the account
        self.feed_limits = (settings.market.feed_connections, settings.market.instruments_per_connection)
        # set by the runtime: runs the account's tick holder on the ticker connections while followed
        self.tick_holder: Callable[[KiteTickerGroup], Coroutine[Any, Any, None]] | None = None

    # ---- calls ---------------------------------------------------------------------------------

    async def _change(self, call: Callable[[KiteConnect], T]) -> T:
        token = await self.session.token()
        if token is None:
            raise BrokerAuthError("no Kite session for this account")

        def checked(kite: KiteConnect) -> T:
            check_turn()  # on the sending thread, right before the request leaves
            return call(kite)

        try:
            result = await self.calls.run(token, checked)
        except TurnMissed:
            raise
        except Exception as exc:
            error = change_error(exc)
            await self._failed(error, token)
            raise error from None
        finally:
            send_by.set(None)  # a turn is good for one request
        self.breaker.succeeded()
        return result

    async def _read(
        self, call: Callable[[KiteConnect], T], *, history_wait: float | None = None, quote: bool = False
    ) -> T:
        """A read under the 10/s budget of Kite's other endpoints, with `quote` under the 1/s quote
        budget, or, with `history_wait`, under the 3/s historical budget (waiting that long at most)."""
        token = await self.session.token()
        if token is None:
            raise BrokerAuthError("no Kite session for this account")
        if history_wait is not None:
            await self.turns.historical(deadline_in=history_wait)
        elif quote:
            await self.turns.quote(deadline_in=max(self.read_timeout, QUOTE_WAIT))
        else:
            await self.turns.read(deadline_in=self.read_timeout)
        try:
            result = await self.calls.run(token, call)
        except Exception as exc:
            error = read_error(exc)
            await self._failed(error, token)
            raise error from None
        self.breaker.succeeded()
        return result

    async def _failed(self, error: BrokerError, token: str) -> None:
        if isinstance(error, BrokerAuthError):
            await self.session.refused(token, str(error))
        elif is_network_failure(error):
            await self.breaker.failed(str(error))

    # ---- ticks (TickCarrier) ------------------------------------------------------------------

    def carry_ticks(self, holder: Callable[[KiteTickerGroup], Coroutine[Any, Any, None]]) -> None:
        """Market data's holder runs on the ticker connections the order-update stream holds."""
        self.tick_holder = holder

    async def owns_ticker_credentials(self, api_key: str, access_token: str) -> bool:
        if not hmac.compare_digest(self.config.api_key.encode(), api_key.encode()):
            return False
        current = await self.session.token()
        return current is not None and hmac.compare_digest(current.encode(), access_token.encode())

    # ---- the Broker protocol -------------------------------------------------------------------

    async def wait_for_turn(self, operation: str, deadline_at: datetime) -> None:
        await self.turns.change(operation, deadline_at)

    async def orders_today(self) -> tuple[int, int]:
        return await self.turns.orders_today()

    async def place_order(self, params: PlaceOrderParams) -> PlaceResult:
        kwargs = kite_kwargs(
            variety=params.variety,
            exchange=params.exchange,
            tradingsymbol=params.tradingsymbol,
            transaction_type=params.transaction_type,
            quantity=params.quantity,
            product=params.product,
            order_type=params.order_type,
            price=_price(params.price),
            trigger_price=_price(params.trigger_price),
            validity=params.validity,
            validity_ttl=params.validity_ttl,
            disclosed_quantity=params.disclosed_quantity or None,
            iceberg_legs=params.iceberg_legs,
            iceberg_quantity=params.iceberg_quantity,
            auction_number=params.auction_number,
            market_protection=_protection(params.market_protection),
            tag=params.tag,
        )
        order_id = await self._change(lambda kite: kite.place_order(**kwargs))
        return PlaceResult(order_id=str(order_id))

    async def modify_order(self, params: ModifyOrderParams) -> ChangeAck:
        kwargs = kite_kwargs(
            variety=params.variety,
            order_id=params.order_id,
            quantity=params.quantity,
            price=_price(params.price),
            trigger_price=_price(params.trigger_price),
            order_type=params.order_type,
            validity=params.validity,
        )
        order_id = await self._change(lambda kite: kite.modify_order(**kwargs))
        return ChangeAck(order_id=str(order_id or params.order_id))

    async def cancel_order(self, order_id: str, variety: str = "regular") -> ChangeAck:
        done = await self._change(lambda kite: kite.cancel_order(variety=variety, order_id=order_id))
        return ChangeAck(order_id=str(done or order_id))

    async def get_order(self, order_id: str) -> BrokerOrder:
        history = await self._read(lambda kite: kite.order_history(order_id))
        return latest(history)

    async def current(self, order_id: str) -> BrokerOrder | None:
        """The order as Kite's book has it now; None when it cannot be read (reconciliation will)."""
        try:
            return await self.get_order(order_id)
        except Exception as exc:
            log.warning("could not read an updated order back", order_id=order_id, error=type(exc).__name__)
            return None

    async def order_history(self, order_id: str) -> list[dict[str, Any]]:
        history = await self._read(lambda kite: kite.order_history(order_id))
        return [jsonable(h) for h in history]

    async def order_trades(self, order_id: str) -> list[dict[str, Any]]:
        trades = await self._read(lambda kite: kite.order_trades(order_id))
        return [jsonable(t) for t in trades]

    async def orders(self, skip: Collection[str] = frozenset()) -> list[BrokerOrder]:
        # mapped on the worker thread: a day's book is thousands of orders, too many to map on the event loop
        return await self._read(lambda kite: [to_order(o) for o in kite.orders() if str(o["order_id"]) not in skip])

    async def orders_by_tag(self, tag: str) -> list[BrokerOrder]:
        """Kite has no lookup by tag: the day's book is filtered (the service's tags are unique)."""
        return [o for o in await self.orders() if o.tag == tag]

    async def positions(self) -> Mapping[str, list[dict[str, Any]]]:
        positions: dict[str, list[dict[str, Any]]] = jsonable(await self._read(lambda kite: kite.positions()))
        return positions

    async def holdings(self) -> list[dict[str, Any]]:
        holdings: list[dict[str, Any]] = jsonable(await self._read(lambda kite: kite.holdings()))
        return holdings

    async def margins(self) -> dict[str, Any]:
        margins: dict[str, Any] = jsonable(await self._read(lambda kite: kite.margins()))
        return margins

    # ---- market data ---------------------------------------------------------------------------

    async def quotes(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        quotes: dict[str, dict[str, Any]] = jsonable(await self._read(lambda kite: kite.quote(keys), quote=True))
        return quotes

    async def last_prices(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        prices: dict[str, dict[str, Any]] = jsonable(await self._read(lambda kite: kite.ltp(keys), quote=True))
        return prices

    async def instrument_dump(self) -> list[dict[str, Any]]:
        """Kite's instrument list (every exchange), as kiteconnect parses it; one read turn."""
        dump: list[dict[str, Any]] = await self._read(lambda kite: kite.instruments())
        return dump

    async def historical_candles(
        self,
        instrument_token: int,
        interval: str,
        start: datetime,
        end: datetime,
        *,
        continuous: bool,
        oi: bool,
        wait: float,
    ) -> list[dict[str, Any]]:
        """Candles labelled in [start, end) (one request: the caller keeps within Kite's window for the
        interval); Kite takes IST wall-clock times and an inclusive `to`."""
        frm = start.astimezone(IST).strftime(KITE_TIME)
        to = (end - timedelta(seconds=1)).astimezone(IST).strftime(KITE_TIME)
        candles: list[dict[str, Any]] = await self._read(
            lambda kite: kite.historical_data(instrument_token, frm, to, interval, continuous=continuous, oi=oi),
            history_wait=wait,
        )
        return candles

    async def order_updates(self) -> AsyncIterator[list[BrokerOrder]]:
        """The account's ticker connection (its order messages) and the breaker's probes, in the one
        process that follows this account."""
        probing = asyncio.create_task(self._probe_while_open())
        try:
            async for changed in ticker_orders(self):
                yield changed
        finally:
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing

    async def _probe_while_open(self) -> None:
        async def cheap_read() -> object:
            token = await self.session.token()
            return await self.calls.run(token, lambda kite: kite.profile())

        while True:
            try:
                await self.breaker.probe_if_due(cheap_read)
            except Exception:
                log.exception("breaker probe step failed", account_id=self.account_id)
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        self.calls.close()

    # ---- sessions (SessionBroker) ----------------------------------------------------------------

    def login_url(self, redirect_params: str) -> str:
        return (
            f"{self.config.login_url}?v=3&api_key={quote(self.config.api_key)}&redirect_params={quote(redirect_params)}"
        )

    async def exchange_request_token(self, request_token: str) -> BrokerSession:
        secret = self.config.api_secret
        if not secret:
            raise BrokerRejected("api_secret is not configured for this account: a request token cannot be exchanged")
        data = await self._one_off(None, lambda kite: kite.generate_session(request_token, api_secret=secret))
        return BrokerSession(access_token=str(data["access_token"]), user_id=data.get("user_id"))

    async def verify_access_token(self, access_token: str) -> BrokerSession:
        profile = await self._one_off(access_token, lambda kite: kite.profile())
        return BrokerSession(access_token=access_token, user_id=profile.get("user_id"))

    async def _one_off(self, token: str | None, call: Callable[[KiteConnect], T]) -> T:
        """A call with a token that is not (yet) the account's: its own client, not the pool's."""
        calls = KiteCalls(self.account_id, self.config.api_key, self.config.root, threads=1, timeout=self.read_timeout)
        try:
            return await calls.run(token, call)
        except Exception as exc:
            raise read_error(exc) from None
        finally:
            calls.close()

    @property
    def user_id(self) -> str | None:
        return self.session.user_id or self.configured_user_id

    async def refresh_session(self) -> None:
        await self.session.refresh()

    def session_changed(self) -> None:
        self.session.nudge()
        if self.ticker is not None:
            self.ticker.token_changed()


def kite_broker(account_id: str, config: KiteAccount, context: BrokerContext) -> KiteBroker:
    """The registry's factory for `"broker": "kite"` accounts."""
    return KiteBroker(account_id, config, context)
