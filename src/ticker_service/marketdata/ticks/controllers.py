"""Routes of live ticks: `/ws/ticks` (JSON) and `/ws/kite` (Kite's wire protocol), and their stats."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, WebSocket, get, websocket
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ticker_service.marketdata.ticks.json_session import TICKS_ACCESS, serve_json_ticks
from ticker_service.marketdata.ticks.kite_session import KITE_ACCESS, serve_kite_ticks
from ticker_service.runtime import Runtime
from ticker_service.system.access import ACCESS, DEFAULT_ACCOUNT, Access

ApiKeyQuery = Annotated[
    str | None,
    QueryParameter(required=False, max_length=200, description="The API key, for clients that cannot send X-API-Key"),
]
AccountQuery = Annotated[str, QueryParameter(min_length=1, max_length=64, description="The account (default primary)")]
KiteCredential = Annotated[str, QueryParameter(max_length=200, description="As KiteTicker sends it")]


class TickStreamController(Controller):
    path = "/ws"
    tags = ["market data"]

    @websocket("/ticks", name="tick_stream", opt={ACCESS: TICKS_ACCESS})
    async def ticks(
        self,
        socket: WebSocket[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        account_id: AccountQuery = DEFAULT_ACCOUNT,
        api_key: ApiKeyQuery = None,
    ) -> None:
        await serve_json_ticks(socket, runtime.market.hub, runtime.settings, account_id, api_key)

    @websocket("/kite", name="kite_ticker", opt={ACCESS: KITE_ACCESS})
    async def kite(
        self,
        socket: WebSocket[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        api_key: KiteCredential = "",
        access_token: KiteCredential = "",
    ) -> None:
        await serve_kite_ticks(
            socket, runtime.market.hub, runtime.stream, runtime.settings, runtime.brokers, api_key, access_token
        )

    @get("/ticks/stats", summary="This instance's tick sockets, by account", opt=Access.public())
    async def stats(self, runtime: NamedDependency[Runtime]) -> dict[str, Any]:
        return {"instance_id": runtime.settings.server.instance_id, "clients": runtime.market.hub.stats()}
