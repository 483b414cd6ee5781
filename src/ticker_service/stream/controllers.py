"""Routes of the order stream: the WebSocket and its connection stats."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, WebSocket, get, websocket
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from ticker_service.runtime import Runtime
from ticker_service.stream.session import STREAM_ACCESS, serve_order_stream
from ticker_service.system.access import ACCESS, Access, authorized

SinceQuery = Annotated[
    str | None,
    QueryParameter(
        required=False,
        max_length=40,
        description="Resume after this seq (exclusive): every event of the account with a higher seq, then live",
    ),
]
ApiKeyQuery = Annotated[
    str | None,
    QueryParameter(
        required=False,
        max_length=200,
        description="The API key, for clients that cannot send X-API-Key (browsers); the header wins",
    ),
]


class OrderStreamController(Controller):
    path = "/advanced/ws"
    tags = ["stream"]

    # the socket is accepted first and refused with a close code, which browsers can read: the
    # session enforces the declaration itself (`authorize`) right after accepting
    @websocket("/orders/{account_id:str}", name="order_stream", opt={ACCESS: STREAM_ACCESS})
    async def order_stream(
        self,
        socket: WebSocket[Any, Any, Any],
        account_id: FromPath[str],
        runtime: NamedDependency[Runtime],
        since: SinceQuery = None,
        api_key: ApiKeyQuery = None,
    ) -> None:
        await serve_order_stream(socket, runtime.stream, runtime.settings, account_id, since, api_key)

    @get("/stats", summary="This instance's order-stream sockets, by account", opt=Access.visible())
    async def stats(self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]) -> dict[str, Any]:
        return runtime.stream.stats(authorized(request).accounts)
