"""`FakeKite`: the fake Kite Connect server, its in-process controls, and its life on a loopback port.

Everything runs on the event loop that started it; the in-process controls are plain methods to call
from that loop (a test's own). The official client is synchronous, so a test that shares the loop
calls it through `asyncio.to_thread`, or the fake would never get to answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from aiohttp import web

from ticker_service.fakekite import faults as f
from ticker_service.fakekite import requestlog as log
from ticker_service.fakekite.control import ControlApi
from ticker_service.fakekite.errors import DEFAULT_STATUS, INVALID_SESSION, IP_NOT_REGISTERED
from ticker_service.fakekite.faults import Faults
from ticker_service.fakekite.instruments import BUILTIN_INSTRUMENTS, FakeInstrument, InstrumentTable
from ticker_service.fakekite.market import Market
from ticker_service.fakekite.orders import Order, OrderBook
from ticker_service.fakekite.portfolio import DEFAULT_HOLDINGS, Holding
from ticker_service.fakekite.postbacks import PostbackSender, SentPostback, postback_checksum
from ticker_service.fakekite.ratelimits import RateLimiter
from ticker_service.fakekite.requestlog import RecordedRequest, RequestLog, max_in_window
from ticker_service.fakekite.rest import RestApi
from ticker_service.fakekite.sessions import Sessions, default_profile
from ticker_service.fakekite.ticker import TickerHub, TickerStats
from ticker_service.fakekite.timefmt import kite_timestamp
from ticker_service.fakekite.validation import parse_place

DEFAULT_REJECTION = (
    "Insufficient funds. Required margin is 95417.84 but available margin is 74251.80. "
    "Check the orderbook for open orders."
)
DEFAULT_FAILURE_MESSAGES = {
    "TokenException": INVALID_SESSION,
    "PermissionException": IP_NOT_REGISTERED,
    "InputException": "Invalid input.",
    "OrderException": "Order rejected by RMS: margin exceeds available funds.",
    "NetworkException": "Gateway timed out while reaching the OMS.",
    "DataException": "Couldn't parse the response from the OMS.",
    "GeneralException": "Something went wrong. Please try again.",
}


class FakeKite:
    """A local Kite Connect: REST, login, ticker WebSocket and postbacks, with switches for failures."""

    def __init__(
        self,
        api_key: str = "fake_api_key",
        api_secret: str = "fake_api_secret",  # noqa: S107 (a fake's default, no real secret)
        *,
        user_id: str = "AB1234",
        redirect_url: str | None = None,
        postback_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        instruments: Iterable[FakeInstrument] | None = None,
        holdings: Iterable[Holding] | None = None,
        opening_balance: Mapping[str, Decimal] | None = None,
        access_token: str | None = None,
        request_token_ttl: float = 300.0,
        tick_interval: float | None = 1.0,
        heartbeat_interval: float = 1.0,
        max_ticker_connections: int = 3,
        auto_match: bool = True,
        enforce_rate_limits: bool = False,
        push_on_placement: bool = True,
        app_id: int = 1234,
        max_logged_requests: int | None = 100_000,
        stamp_send_time: bool = False,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.user_id = user_id
        self.host = host
        self.port = port
        self._redirect_url = redirect_url
        self.app_id = app_id
        self.auto_match = auto_match
        self.enforce_rate_limits = enforce_rate_limits
        self.tick_interval = tick_interval
        self.historical_lag: float | None = None  # see `set_historical`
        self.historical_all_day = False
        self.holdings: list[Holding] = list(DEFAULT_HOLDINGS if holdings is None else holdings)
        self.opening_balance: dict[str, Decimal] = {"equity": Decimal(500_000), "commodity": Decimal(100_000)}
        self.opening_balance.update(opening_balance or {})
        self.allowed_ips: frozenset[str] | None = None

        self.log = RequestLog(max_logged_requests)
        self.faults = Faults()
        self.limiter = RateLimiter()
        self.instruments = InstrumentTable(BUILTIN_INSTRUMENTS if instruments is None else instruments)
        self.market = Market(self.instruments)
        self.sessions = Sessions(
            api_key, api_secret, user_id, request_token_ttl=request_token_ttl, profile=default_profile(user_id)
        )
        if access_token is not None:
            self.sessions.issue_session(access_token)
        self.book = OrderBook(self.market, user_id, self._on_order_change, push_on_placement=push_on_placement)
        self.hub = TickerHub(
            self.market,
            api_key=api_key,
            token_valid=self.sessions.valid,
            max_connections=max_ticker_connections,
            heartbeat_interval=heartbeat_interval,
            stamp_send_time=stamp_send_time,
        )
        self.postbacks = PostbackSender(postback_url)
        self._corrupt_postbacks = 0
        self._rest = RestApi(self)
        self._control = ControlApi(self)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._market_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._outages: set[asyncio.Task[None]] = set()

    # life

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(self._rest.routes())
        app.add_routes(self._control.routes())
        app.router.add_get("/ws", self._ticker)
        app.router.add_route("*", "/{tail:.*}", self._rest.not_found)
        return app

    async def start(self) -> FakeKite:
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(self.app(), handle_signals=False, access_log=None)
        await self._runner.setup()
        await self._listen()
        self.postbacks.start()
        self.set_tick_interval(self.tick_interval)
        return self

    async def stop(self) -> None:
        self._stopping.set()
        for task in list(self._outages):
            task.cancel()
        self.set_tick_interval(None)
        await self.hub.disconnect_all(abort=True)
        await self.postbacks.drain(timeout=1.0)
        await self.postbacks.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> FakeKite:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        self.port = self._site.port

    async def wait_stopping(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout)

    @property
    def url(self) -> str:
        """The REST root, for `KiteConnect(api_key, root=fake.url)`."""
        return f"http://{self.host}:{self.port}"

    @property
    def ticker_url(self) -> str:
        """The ticker root, for `KiteTicker(api_key, access_token, root=fake.ticker_url)`."""
        return f"ws://{self.host}:{self.port}/ws"

    @property
    def redirect_url(self) -> str:
        return self._redirect_url or f"{self.url}/_fake/redirect"

    async def stop_listening(self) -> None:
        """Refuse connections (ECONNREFUSED): close the listening socket and every idle keep-alive
        connection, so a pooled client has to connect anew. Open ticker sockets stay up."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if self._runner is None or self._runner.server is None:
            return
        closing = []
        for handler in self._runner.server.connections:
            # an idle keep-alive connection is cut now; one busy with a request (a ticker socket, a held
            # answer) is left to finish. aiohttp exposes no public flag for "busy".
            if not getattr(handler, "_request_in_progress", True) and handler.transport is not None:
                closing.append(handler.transport.get_extra_info("socket"))
                handler.force_close()
        # the transport closes its socket on a later turn of the loop: return only once it has, or a
        # client could still send on the old connection and get a reset instead of a refusal
        for _ in range(1000):
            if all(sock is None or sock.fileno() == -1 for sock in closing):
                break
            await asyncio.sleep(0)

    async def start_listening(self) -> None:
        """Listen again, on the same port."""
        if self._site is None:
            await self._listen()

    def outage(self, seconds: float) -> None:
        """Stop listening for `seconds`, then listen again (the control API's form of the switch)."""

        async def run() -> None:
            await asyncio.sleep(0.05)  # let the answer that asked for it leave first
            await self.stop_listening()
            try:
                await asyncio.sleep(seconds)
            finally:
                if not self._stopping.is_set():
                    await self.start_listening()

        task = asyncio.get_running_loop().create_task(run())
        self._outages.add(task)
        task.add_done_callback(self._outages.discard)

    # sessions

    def login(self) -> str:
        """A request token, as if the user had just signed in on Kite's login page."""
        return self.sessions.issue_request_token()

    def issue_access_token(self, access_token: str | None = None) -> str:
        """A valid session without the login dance (for tests that are not about login)."""
        return self.sessions.issue_session(access_token).access_token

    def expire_token(self, access_token: str | None = None) -> int:
        """End the session(s): REST answers 403 TokenException and new ticker handshakes fail with
        403, while ticker sockets already open stay open (as at Kite's morning expiry)."""
        return self.sessions.expire(access_token)

    # market

    def _token(self, exchange: str, tradingsymbol: str) -> int:
        instrument = self.instruments.get(exchange, tradingsymbol)
        if instrument is None:
            raise KeyError(f"{exchange}:{tradingsymbol} is not an instrument of the fake")
        return instrument.instrument_token

    def set_price(self, exchange: str, tradingsymbol: str, price: Decimal | float | str, *, hold: bool = True) -> None:
        """Trade `exchange:tradingsymbol` at `price`; held there (no automatic moves) unless `hold=False`."""
        token = self._token(exchange, tradingsymbol)
        if self.market.set_price(token, Decimal(str(price)), hold=hold):
            self._prices_moved([token])

    def release_price(self, exchange: str, tradingsymbol: str) -> None:
        self.market.release(self._token(exchange, tradingsymbol))

    def price(self, exchange: str, tradingsymbol: str) -> Decimal:
        return self.market.price(self._token(exchange, tradingsymbol))

    def advance_prices(self) -> list[int]:
        """One step of the price model now (what the tick loop does every `tick_interval`)."""
        moved = self.market.advance()
        if self.hub.stamp_send_time:  # a benchmark's feed: every instrument at every step, moved or not
            self._prices_moved(moved, [i.instrument_token for i in self.instruments])
        else:
            self._prices_moved(moved)
        return moved

    def set_historical(self, *, lag: float | None = None, all_day: bool = False) -> None:
        """Historical candles lag the live market by `lag` seconds (a candle is served once its period
        ended that long ago; None: every candle asked for, as before), around the clock if `all_day`."""
        self.historical_lag = lag
        self.historical_all_day = all_day

    def set_tick_interval(self, seconds: float | None) -> None:
        """Seconds between price steps, or None for prices that move only when set."""
        self.tick_interval = seconds
        if self._market_task is not None:
            self._market_task.cancel()
            self._market_task = None
        if seconds is not None and self._runner is not None:
            self._market_task = asyncio.get_running_loop().create_task(self._market_loop(seconds))

    async def _market_loop(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.advance_prices()

    def _prices_moved(self, tokens: list[int], send: list[int] | None = None) -> None:
        if self.auto_match:
            for token in tokens:
                self.book.reprice(token)
        self.hub.broadcast_ticks(tokens if send is None else send)

    # orders

    def _on_order_change(self, order: Order, status: str) -> None:
        timestamp = kite_timestamp(order.order_timestamp) or ""
        if order.via_api and self.postbacks.url is not None:
            checksum = postback_checksum(order.order_id, timestamp, self.api_secret)
            if self._corrupt_postbacks > 0:
                self._corrupt_postbacks -= 1
                checksum = postback_checksum(order.order_id, timestamp, self.api_secret + "-wrong")
            self.postbacks.send(order.push_json(status, user_id=self.user_id, app_id=self.app_id, checksum=checksum))
        app_id = self.app_id if order.via_api else 0
        self.hub.broadcast_order(order.push_json(status, user_id=self.user_id, app_id=app_id, checksum=""))

    @property
    def orders(self) -> list[dict[str, Any]]:
        """The order book, as `GET /orders` answers it."""
        return [o.to_json() for o in self.book.orders.values()]

    def order(self, order_id: str) -> dict[str, Any]:
        return self.book.get(order_id).to_json()

    def order_history(self, order_id: str) -> list[dict[str, Any]]:
        return list(self.book.get(order_id).history)

    @property
    def trades(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.book.trades]

    def fill(
        self, order_id: str, price: Decimal | float | str | None = None, quantity: int | None = None
    ) -> dict[str, Any]:
        """The exchange fills a resting order (all of it, or `quantity`: it stays OPEN until complete)."""
        fill_price = None if price is None else Decimal(str(price))
        return self.book.fill(order_id, fill_price, quantity).to_json()

    def cancel_by_exchange(self, order_id: str, message: str | None = None) -> dict[str, Any]:
        return self.book.cancel(order_id, by_exchange=True, message=message).to_json()

    def place_external(
        self,
        exchange: str,
        tradingsymbol: str,
        transaction_type: str,
        quantity: int,
        *,
        order_type: str = "MARKET",
        product: str = "CNC",
        price: Decimal | float | str | None = None,
        trigger_price: Decimal | float | str | None = None,
        variety: str = "regular",
        validity: str = "DAY",
    ) -> str:
        """An order placed outside this app (Kite web, the mobile app): no tag, no postback, but the
        ticker's order messages and the order book show it."""
        form = {
            "exchange": exchange,
            "tradingsymbol": tradingsymbol,
            "transaction_type": transaction_type,
            "quantity": str(quantity),
            "order_type": order_type,
            "product": product,
            "validity": validity,
        }
        if order_type in ("MARKET", "SL-M"):
            form["market_protection"] = "-1"  # Kite's own apps protect market orders automatically
        if price is not None:
            form["price"] = str(price)
        if trigger_price is not None:
            form["trigger_price"] = str(trigger_price)
        return self.book.place(parse_place(variety, form, self.instruments), via_api=False).order_id

    # switches

    def set_latency(self, ms: float, route: str = "*") -> None:
        """Hold every answer of `route` (a pattern) for `ms` after it took effect; 0 removes it."""
        self.faults.set_latency(ms, route)

    def lose_next(
        self, n: int = 1, route: str = "order.place", *, how: str = "close", hold_seconds: float = 60.0
    ) -> None:
        """The next `n` requests take effect but get no answer: the connection is closed (`close`) or
        held open for `hold_seconds`, past the client's timeout (`hold`)."""
        if how not in ("close", "hold"):
            raise ValueError("how is 'close' or 'hold'")
        self.faults.arm(f.LOSE, n, route, how=how, hold_seconds=hold_seconds)

    def drop_next(self, n: int = 1, route: str = "*") -> None:
        """The next `n` requests find their connection closed before they take effect."""
        self.faults.arm(f.DROP, n, route)

    def rate_limit_next(self, n: int = 1, route: str = "*") -> None:
        """The next `n` requests answer 429 NetworkException "Too many requests", not executed."""
        self.faults.arm(f.RATE_LIMIT, n, route)

    def fail_next(
        self,
        n: int = 1,
        error_type: str = "GeneralException",
        message: str | None = None,
        http_status: int | None = None,
        route: str = "*",
    ) -> None:
        """The next `n` requests answer this Kite error, not executed."""
        self.faults.arm(
            f.FAIL,
            n,
            route,
            error_type=error_type,
            message=message or DEFAULT_FAILURE_MESSAGES.get(error_type, "Error"),
            http_status=http_status or DEFAULT_STATUS.get(error_type, 500),
        )

    def reject_next(self, n: int = 1, message: str = DEFAULT_REJECTION, raw: str | None = None) -> None:
        """The next `n` placements are accepted (an order_id comes back) and then REJECTED by RMS."""
        self.faults.arm(f.REJECT, n, "order.place", message=message, raw=raw)

    def set_allowed_ips(self, ips: Iterable[str] | None) -> None:
        """Order routes answer 403 PermissionException to any other client IP (Kite since April 2026)."""
        self.allowed_ips = None if ips is None else frozenset(ips)

    def ip_allowed(self, remote: str | None) -> bool:
        return self.allowed_ips is None or remote in self.allowed_ips

    def clear_switches(self) -> None:
        self.faults.clear()
        self.allowed_ips = None
        self.hub.silenced = False
        self._corrupt_postbacks = 0

    # ticker

    async def _ticker(self, request: web.Request) -> web.StreamResponse:
        record = self.log.add(
            request.method,
            request.path,
            "ticker",
            {k: request.query.getall(k) for k in request.query},
            {},
            dict(request.headers),
            request.remote,
        )
        refusal = self.hub.handshake_error(request)
        record.outcome = log.ANSWERED
        if refusal is not None:
            record.status = refusal.status
            return refusal
        record.status = 101
        return await self.hub.serve(request)

    def ticker_silence(self, on: bool = True) -> None:
        """No frames at all (no heartbeats, ticks or order messages) while the sockets stay open."""
        self.hub.silenced = on

    async def ticker_disconnect_all(self, *, abort: bool = False) -> int:
        return await self.hub.disconnect_all(abort=abort)

    def ticker_send_error(self, message: str) -> None:
        """`{"type": "error", "data": message}` to every open socket."""
        self.hub.broadcast_error(message)

    @property
    def ticker_connections(self) -> int:
        return len(self.hub.connections)

    @property
    def ticker_stats(self) -> TickerStats:
        return self.hub.stats

    # postbacks

    def corrupt_postback_checksum(self, n: int = 1) -> None:
        """The next `n` postbacks carry a checksum that does not verify."""
        self._corrupt_postbacks += n

    @property
    def postbacks_sent(self) -> list[SentPostback]:
        return list(self.postbacks.sent)

    async def drain_postbacks(self, timeout: float = 10.0) -> None:
        await self.postbacks.drain(timeout)

    # request log

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self.log.records)

    def requests_for(self, route: str) -> list[RecordedRequest]:
        return self.log.for_route(route)

    def max_requests_in_window(self, route: str = "order.place", window: float = 1.0) -> int:
        """The most `route` requests that arrived within any `window` seconds."""
        return max_in_window((r.arrived_monotonic for r in self.log.for_route(route)), window)

    def clear_requests(self) -> None:
        self.log.clear()
