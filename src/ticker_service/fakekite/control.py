"""The control API under `/_fake/`: the in-process switches, over HTTP, for a fake run as a process.

Bodies and answers are JSON; answers use Kite's envelope (`{"status": "success", "data": ...}`), and a
bad control request answers 400 with the reason. Nothing here is checked for a session: the fake
listens on loopback for tests. Parameters are those of the `FakeKite` method of the same name:

    POST /_fake/latency {"ms", "route"}             POST /_fake/lose {"n", "route", "how", "hold_seconds"}
    POST /_fake/drop {"n", "route"}                 POST /_fake/rate_limit {"n", "route"}
    POST /_fake/fail {"n", "error_type", "message", "http_status", "route"}
    POST /_fake/reject {"n", "message", "raw"}      POST /_fake/allowed_ips {"ips": [...] | null}
    POST /_fake/expire_token {"access_token"?}      POST /_fake/session -> {"access_token"}
    POST /_fake/login -> {"request_token"}          POST /_fake/outage {"seconds"}  (stop listening, then resume)
    POST /_fake/price {"exchange", "tradingsymbol", "price", "hold"}   POST /_fake/advance
    POST /_fake/tick_interval {"seconds" | null}    POST /_fake/fill {"order_id", "price", "quantity"}
    POST /_fake/cancel_by_exchange {"order_id", "message"}
    POST /_fake/external_order {"exchange", "tradingsymbol", "transaction_type", "quantity", ...}
    POST /_fake/ticker/silence {"on"}               POST /_fake/ticker/disconnect_all {"abort"}
    POST /_fake/ticker/error {"message"}            POST /_fake/postbacks/corrupt_checksum {"n"}
    POST /_fake/clear                               (every switch off)
    GET  /_fake/requests?route=&since=              DELETE /_fake/requests
    GET  /_fake/ticker/stats    GET /_fake/postbacks    GET /_fake/switches
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from ticker_service.fakekite.errors import KiteError

if TYPE_CHECKING:
    from ticker_service.fakekite.server import FakeKite

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def _ok(data: Any) -> web.Response:
    return web.Response(body=msgspec.json.encode({"status": "success", "data": data}), content_type="application/json")


def _bad(message: str, status: int = 400) -> web.Response:
    body = {"status": "error", "message": message, "data": None, "error_type": "InputException"}
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


class ControlApi:
    def __init__(self, fake: FakeKite) -> None:
        self.fake = fake

    def routes(self) -> list[web.RouteDef]:
        post = {
            "latency": self.latency,
            "lose": self.lose,
            "drop": self.drop,
            "rate_limit": self.rate_limit,
            "fail": self.fail,
            "reject": self.reject,
            "allowed_ips": self.allowed_ips,
            "expire_token": self.expire_token,
            "session": self.session,
            "login": self.login,
            "outage": self.outage,
            "price": self.price,
            "advance": self.advance,
            "tick_interval": self.tick_interval,
            "fill": self.fill,
            "cancel_by_exchange": self.cancel_by_exchange,
            "external_order": self.external_order,
            "ticker/silence": self.ticker_silence,
            "ticker/disconnect_all": self.ticker_disconnect_all,
            "ticker/error": self.ticker_error,
            "postbacks/corrupt_checksum": self.corrupt_checksum,
            "clear": self.clear,
        }
        get = {
            "requests": self.requests,
            "ticker/stats": self.ticker_stats,
            "postbacks": self.postbacks,
            "switches": self.switches,
        }
        routes = [web.post(f"/_fake/{name}", self._wrap(h)) for name, h in post.items()]
        routes += [web.get(f"/_fake/{name}", self._wrap(h)) for name, h in get.items()]
        routes += [
            web.delete("/_fake/requests", self._wrap(self.clear_requests)),
            web.get("/_fake/redirect", self.redirect),
        ]
        return routes

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            body: dict[str, Any] = dict(request.query)
            if request.can_read_body:
                try:
                    parsed = json.loads(await request.read() or b"{}")
                except ValueError:
                    return _bad("the body is not JSON")
                if not isinstance(parsed, dict):
                    return _bad("the body is not a JSON object")
                body.update(parsed)
            try:
                return _ok(await handler(body))
            except KiteError as error:
                return _bad(error.message, error.status)
            except (KeyError, TypeError, ValueError) as error:
                return _bad(f"{type(error).__name__}: {error}")

        return handle

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        """Where the login redirects when no redirect URL was configured: the parameters, as JSON."""
        return _ok(dict(request.query))

    async def latency(self, body: dict[str, Any]) -> Any:
        self.fake.set_latency(float(body["ms"]), body.get("route", "*"))
        return True

    async def lose(self, body: dict[str, Any]) -> Any:
        self.fake.lose_next(
            int(body.get("n", 1)),
            body.get("route", "order.place"),
            how=body.get("how", "close"),
            hold_seconds=float(body.get("hold_seconds", 60.0)),
        )
        return True

    async def drop(self, body: dict[str, Any]) -> Any:
        self.fake.drop_next(int(body.get("n", 1)), body.get("route", "*"))
        return True

    async def rate_limit(self, body: dict[str, Any]) -> Any:
        self.fake.rate_limit_next(int(body.get("n", 1)), body.get("route", "*"))
        return True

    async def fail(self, body: dict[str, Any]) -> Any:
        status = body.get("http_status")
        self.fake.fail_next(
            int(body.get("n", 1)),
            body.get("error_type", "GeneralException"),
            body.get("message"),
            int(status) if status is not None else None,
            body.get("route", "*"),
        )
        return True

    async def reject(self, body: dict[str, Any]) -> Any:
        if "message" in body:
            self.fake.reject_next(int(body.get("n", 1)), body["message"], body.get("raw"))
        else:
            self.fake.reject_next(int(body.get("n", 1)))
        return True

    async def allowed_ips(self, body: dict[str, Any]) -> Any:
        self.fake.set_allowed_ips(body.get("ips"))
        return True

    async def expire_token(self, body: dict[str, Any]) -> Any:
        return self.fake.expire_token(body.get("access_token"))

    async def session(self, body: dict[str, Any]) -> Any:
        return {"access_token": self.fake.issue_access_token(body.get("access_token"))}

    async def login(self, body: dict[str, Any]) -> Any:
        return {"request_token": self.fake.login()}

    async def outage(self, body: dict[str, Any]) -> Any:
        self.fake.outage(float(body["seconds"]))
        return True

    async def price(self, body: dict[str, Any]) -> Any:
        self.fake.set_price(
            body["exchange"], body["tradingsymbol"], str(body["price"]), hold=bool(body.get("hold", True))
        )
        return True

    async def advance(self, body: dict[str, Any]) -> Any:
        return self.fake.advance_prices()

    async def tick_interval(self, body: dict[str, Any]) -> Any:
        seconds = body.get("seconds")
        self.fake.set_tick_interval(None if seconds is None else float(seconds))
        return True

    async def fill(self, body: dict[str, Any]) -> Any:
        price = body.get("price")
        quantity = body.get("quantity")
        return self.fake.fill(
            body["order_id"], None if price is None else str(price), None if quantity is None else int(quantity)
        )

    async def cancel_by_exchange(self, body: dict[str, Any]) -> Any:
        return self.fake.cancel_by_exchange(body["order_id"], body.get("message"))

    async def external_order(self, body: dict[str, Any]) -> Any:
        order_id = self.fake.place_external(
            body["exchange"],
            body["tradingsymbol"],
            body["transaction_type"],
            int(body["quantity"]),
            order_type=body.get("order_type", "MARKET"),
            product=body.get("product", "CNC"),
            price=body.get("price"),
            trigger_price=body.get("trigger_price"),
            variety=body.get("variety", "regular"),
        )
        return {"order_id": order_id}

    async def ticker_silence(self, body: dict[str, Any]) -> Any:
        self.fake.ticker_silence(bool(body.get("on", True)))
        return True

    async def ticker_disconnect_all(self, body: dict[str, Any]) -> Any:
        return await self.fake.ticker_disconnect_all(abort=bool(body.get("abort", False)))

    async def ticker_error(self, body: dict[str, Any]) -> Any:
        self.fake.ticker_send_error(str(body["message"]))
        return True

    async def corrupt_checksum(self, body: dict[str, Any]) -> Any:
        self.fake.corrupt_postback_checksum(int(body.get("n", 1)))
        return True

    async def clear(self, body: dict[str, Any]) -> Any:
        self.fake.clear_switches()
        return True

    async def requests(self, body: dict[str, Any]) -> Any:
        route = body.get("route")
        records = self.fake.requests_for(route) if route else self.fake.requests
        since = int(body.get("since", 0))
        return [r.to_json() for r in records if r.seq > since]

    async def clear_requests(self, body: dict[str, Any]) -> Any:
        self.fake.clear_requests()
        return True

    async def ticker_stats(self, body: dict[str, Any]) -> Any:
        return {**self.fake.ticker_stats.to_json(), "connections_open": self.fake.ticker_connections}

    async def postbacks(self, body: dict[str, Any]) -> Any:
        return [
            {"payload": p.payload, "sent_wall": p.sent_wall, "status": p.status, "error": p.error}
            for p in self.fake.postbacks_sent
        ]

    async def switches(self, body: dict[str, Any]) -> Any:
        return {
            "armed": [
                {"kind": a.kind, "route": a.route, "remaining": a.remaining, **a.params}
                for a in self.fake.faults.armed()
            ],
            "allowed_ips": None if self.fake.allowed_ips is None else sorted(self.fake.allowed_ips),
            "ticker_silenced": self.fake.hub.silenced,
            "tick_interval": self.fake.tick_interval,
        }
