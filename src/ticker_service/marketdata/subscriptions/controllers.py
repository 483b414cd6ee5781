"""`/subscriptions`: the account's stored instrument subscriptions. Thin: parse, authorize, call the service."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from ticker_service.marketdata.subscriptions.schemas import SubscribeRequest, SubscriptionsView
from ticker_service.runtime import Runtime
from ticker_service.system.access import DEFAULT_ACCOUNT, Access, authorized

AccountQuery = Annotated[str, QueryParameter(min_length=1, max_length=64, description="The account (default primary)")]


class SubscriptionsController(Controller):
    path = "/subscriptions"
    tags = ["market data"]

    @post(
        "/",
        summary="Subscribe instruments (stored; the account's clients get them by default)",
        description="422 names an unknown token, or says the feed's limit would be passed.",
        status_code=201,
        opt=Access.body(),
    )
    async def subscribe(
        self, request: Request[Any, Any, Any], data: JSONBody[SubscribeRequest], runtime: NamedDependency[Runtime]
    ) -> SubscriptionsView:
        authorized(request).same(data.account_id)
        return await runtime.subscriptions.subscribe(data)

    @get("/", summary="The account's stored subscriptions", opt=Access.query())
    async def list_subscriptions(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        account_id: AccountQuery = DEFAULT_ACCOUNT,
    ) -> SubscriptionsView:
        return await runtime.subscriptions.list(authorized(request).same(account_id))

    @delete("/{instrument_token:str}", summary="Unsubscribe an instrument", status_code=200, opt=Access.query())
    async def unsubscribe(
        self,
        request: Request[Any, Any, Any],
        instrument_token: FromPath[str],
        runtime: NamedDependency[Runtime],
        account_id: AccountQuery = DEFAULT_ACCOUNT,
    ) -> SubscriptionsView:
        return await runtime.subscriptions.unsubscribe(authorized(request).same(account_id), instrument_token)
