"""Kite's REST API over aiohttp, each route behind the same pipeline of checks and switches.

The pipeline, in order: record the request; a drop closes the connection before anything happens;
a rate limit or a forced failure answers without executing; then Kite's own checks (version header,
session, registered IP for order routes) and the route itself; latency holds the answer; a lost
answer is never sent (the route has already taken effect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import msgspec
from aiohttp import web

from ticker_service.fakekite import faults as f
from ticker_service.fakekite import requestlog as log
from ticker_service.fakekite.errors import (
    INVALID_API_KEY,
    IP_NOT_REGISTERED,
    MISSING_VERSION,
    ROUTE_NOT_FOUND,
    TOO_MANY_REQUESTS,
    KiteError,
    input_error,
    token_error,
)
from ticker_service.fakekite.historical import candles
from ticker_service.fakekite.instruments import render_csv
from ticker_service.fakekite.orders import Rejection
from ticker_service.fakekite.portfolio import holdings, margins, positions
from ticker_service.fakekite.ratelimits import ORDER_ROUTES
from ticker_service.fakekite.sessions import Session
from ticker_service.fakekite.timefmt import parse_kite_datetime
from ticker_service.fakekite.validation import VARIETIES, parse_modify, parse_place

if TYPE_CHECKING:
    from ticker_service.fakekite.server import FakeKite


@dataclass
class Call:
    request: web.Request
    form: dict[str, str]
    session: Session | None


Endpoint = Callable[[Call], Awaitable[Any]]


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


def success(data: Any) -> web.Response:
    return json_response({"status": "success", "data": data})


def failure(error: KiteError) -> web.Response:
    return json_response(error.body(), status=error.status)


def abort_connection(request: web.Request) -> web.Response:
    """Close the connection with no answer; aiohttp's attempt to write the returned response is then moot."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=499)


async def read_form(request: web.Request) -> dict[str, str]:
    if request.method in ("POST", "PUT") and request.content_type == "application/x-www-form-urlencoded":
        return {k: str(v) for k, v in (await request.post()).items()}
    return {}


def query_lists(request: web.Request) -> dict[str, list[str]]:
    return {k: request.query.getall(k) for k in dict.fromkeys(request.query.keys())}


class RestApi:
    def __init__(self, fake: FakeKite) -> None:
        self.fake = fake

    def routes(self) -> list[web.RouteDef]:
        w = self._wrap
        return [
            web.get("/connect/login", self.login),
            web.post("/session/token", w("api.token", self.session_token, auth=False)),
            web.delete("/session/token", w("api.token.invalidate", self.session_invalidate, auth=False)),
            web.get("/user/profile", w("user.profile", self.profile)),
            web.get("/user/margins", w("user.margins", self.margins)),
            web.get("/user/margins/{segment}", w("user.margins.segment", self.margins_segment)),
            web.get("/orders", w("orders", self.orders)),
            web.get("/trades", w("trades", self.trades)),
            web.post("/orders/{variety}", w("order.place", self.place)),
            web.get("/orders/{order_id}", w("order.info", self.order_info)),
            web.put("/orders/{variety}/{order_id}", w("order.modify", self.modify)),
            web.delete("/orders/{variety}/{order_id}", w("order.cancel", self.cancel)),
            web.get("/orders/{order_id}/trades", w("order.trades", self.order_trades)),
            web.get("/portfolio/positions", w("portfolio.positions", self.positions)),
            web.get("/portfolio/holdings", w("portfolio.holdings", self.holdings)),
            web.get("/instruments", w("market.instruments.all", self.instruments)),
            web.get("/instruments/{exchange}", w("market.instruments", self.instruments)),
            web.get("/instruments/historical/{instrument_token}/{interval}", w("market.historical", self.historical)),
            web.get("/quote", w("market.quote", self.quote)),
            web.get("/quote/ltp", w("market.quote.ltp", self.ltp)),
            web.get("/quote/ohlc", w("market.quote.ohlc", self.ohlc)),
        ]

    def _wrap(
        self, route: str, endpoint: Endpoint, *, auth: bool = True
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            fake = self.fake
            form = await read_form(request)
            record = fake.log.add(
                request.method, request.path, route, query_lists(request), form, dict(request.headers), request.remote
            )
            if fake.faults.take(f.DROP, route):
                record.outcome = log.DROPPED
                return abort_connection(request)
            outcome = log.ANSWERED
            response: web.StreamResponse
            limited = fake.faults.take(f.RATE_LIMIT, route) is not None or (
                fake.enforce_rate_limits and not fake.limiter.allow(route, record.arrived_monotonic)
            )
            forced = None if limited else fake.faults.take(f.FAIL, route)
            if limited:
                response, outcome = failure(KiteError("NetworkException", TOO_MANY_REQUESTS, 429)), log.RATE_LIMITED
            elif forced is not None:
                error = KiteError(forced.params["error_type"], forced.params["message"], forced.params["http_status"])
                response, outcome = failure(error), log.FAILED
            else:
                response = await self._execute(route, endpoint, Call(request, form, None), auth=auth)
            delay = fake.faults.latency(route)
            if delay:
                await asyncio.sleep(delay)
            lost = fake.faults.take(f.LOSE, route)
            record.status = response.status
            if lost is not None:
                record.outcome = log.LOST
                if lost.params.get("how") == "hold":
                    await fake.wait_stopping(float(lost.params.get("hold_seconds", 60.0)))
                return abort_connection(request)
            record.outcome = outcome
            return response

        return handle

    async def _execute(self, route: str, endpoint: Endpoint, call: Call, *, auth: bool) -> web.StreamResponse:
        try:
            if call.request.headers.get("X-Kite-Version") != "3":
                raise input_error(MISSING_VERSION)
            if auth:
                call.session = self.fake.sessions.authenticate(call.request.headers.get("Authorization"))
            if route in ORDER_ROUTES and not self.fake.ip_allowed(call.request.remote):
                raise KiteError("PermissionException", IP_NOT_REGISTERED, 403)
            result = await endpoint(call)
        except KiteError as error:
            return failure(error)
        return result if isinstance(result, web.StreamResponse) else success(result)

    # login and session

    async def login(self, request: web.Request) -> web.StreamResponse:
        """Kite's login page, minus the page: the configured user signs in at once and is redirected."""
        fake = self.fake
        record = fake.log.add(
            request.method, request.path, "login", query_lists(request), {}, dict(request.headers), request.remote
        )
        if request.query.get("api_key") != fake.api_key:
            record.status, record.outcome = 400, log.ANSWERED
            return failure(input_error(INVALID_API_KEY))
        params = [
            ("request_token", fake.sessions.issue_request_token()),
            ("action", "login"),
            ("type", "login"),
            ("status", "success"),
        ]
        params += parse_qsl(request.query.get("redirect_params", ""), keep_blank_values=True)
        target = fake.redirect_url
        location = f"{target}{'&' if '?' in target else '?'}{urlencode(params)}"
        record.status, record.outcome = 302, log.ANSWERED
        raise web.HTTPFound(location)

    async def session_token(self, call: Call) -> Any:
        form = call.form
        session = self.fake.sessions.exchange(
            form.get("api_key", ""), form.get("request_token", ""), form.get("checksum", "")
        )
        return self.fake.sessions.session_json(session)

    async def session_invalidate(self, call: Call) -> Any:
        query = call.request.query
        if query.get("api_key") != self.fake.api_key:
            raise token_error(INVALID_API_KEY)
        token = query.get("access_token")
        if token:
            self.fake.sessions.expire(token)
        return True

    async def profile(self, call: Call) -> Any:
        return self.fake.sessions.profile

    async def margins(self, call: Call) -> Any:
        fake = self.fake
        return margins(fake.opening_balance, fake.book.trades, fake.book.orders.values(), fake.market)

    async def margins_segment(self, call: Call) -> Any:
        segment = call.request.match_info["segment"]
        data = await self.margins(call)
        if segment not in data:
            raise input_error("Invalid segment.")
        return data[segment]

    # orders

    async def place(self, call: Call) -> Any:
        variety = call.request.match_info["variety"]
        req = parse_place(variety, call.form, self.fake.instruments)
        rejection = self.fake.faults.take(f.REJECT, "order.place")
        reject = Rejection(rejection.params["message"], rejection.params.get("raw")) if rejection else None
        order = self.fake.book.place(req, via_api=True, rejection=reject)
        return {"order_id": order.order_id}

    async def modify(self, call: Call) -> Any:
        if call.request.match_info["variety"] not in VARIETIES:
            raise input_error("Invalid `variety`.")
        order = self.fake.book.modify(call.request.match_info["order_id"], parse_modify(call.form))
        return {"order_id": order.order_id}

    async def cancel(self, call: Call) -> Any:
        if call.request.match_info["variety"] not in VARIETIES:
            raise input_error("Invalid `variety`.")
        order = self.fake.book.cancel(call.request.match_info["order_id"])
        return {"order_id": order.order_id}

    async def orders(self, call: Call) -> Any:
        return [o.to_json() for o in self.fake.book.orders.values()]

    async def order_info(self, call: Call) -> Any:
        return list(self.fake.book.get(call.request.match_info["order_id"]).history)

    async def order_trades(self, call: Call) -> Any:
        return [t.to_json() for t in self.fake.book.trades_of(call.request.match_info["order_id"])]

    async def trades(self, call: Call) -> Any:
        return [t.to_json() for t in self.fake.book.trades]

    async def positions(self, call: Call) -> Any:
        return positions(self.fake.book.trades, self.fake.market)

    async def holdings(self, call: Call) -> Any:
        return holdings(self.fake.holdings, self.fake.instruments, self.fake.market)

    # market data

    async def instruments(self, call: Call) -> Any:
        exchange = call.request.match_info.get("exchange")
        chosen = [i for i in self.fake.instruments if exchange is None or i.exchange == exchange]
        return web.Response(text=render_csv(chosen), content_type="text/csv")

    def _requested(self, call: Call) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for name in call.request.query.getall("i", []):
            instrument = self.fake.instruments.lookup(name)
            if instrument is not None:
                out.append((name, instrument.instrument_token))
        return out

    async def quote(self, call: Call) -> Any:
        return {name: self.fake.market.quote_json(token) for name, token in self._requested(call)}

    async def ltp(self, call: Call) -> Any:
        return {name: self.fake.market.ltp_json(token) for name, token in self._requested(call)}

    async def ohlc(self, call: Call) -> Any:
        return {name: self.fake.market.ohlc_json(token) for name, token in self._requested(call)}

    async def historical(self, call: Call) -> Any:
        info, query = call.request.match_info, call.request.query
        token = info["instrument_token"]
        instrument = self.fake.instruments.by_token(int(token)) if token.isdigit() else None
        if instrument is None:
            raise input_error("Invalid `instrument_token`.")
        try:
            start = parse_kite_datetime(query.get("from", ""))
            end = parse_kite_datetime(query.get("to", ""))
        except ValueError:
            raise input_error("Invalid `from` or `to` date: use yyyy-mm-dd hh:mm:ss.") from None
        oi = query.get("oi", "0") == "1"
        fake = self.fake
        found = candles(
            instrument, info["interval"], start, end, oi=oi, lag=fake.historical_lag, all_day=fake.historical_all_day
        )
        return {"candles": found}

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        return failure(KiteError("GeneralException", ROUTE_NOT_FOUND, 404))
