"""HTTP routes of an account's views (Kite's paths and shapes). Thin: authorize, ask the broker."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from ticker_service.orders.service import OrderService
from ticker_service.portfolio import service
from ticker_service.runtime import Runtime
from ticker_service.system.access import Access, authorized
from ticker_service.system.contract import BROKER_WITHOUT_IT, answers

AccountId = Annotated[str, QueryParameter(min_length=1, max_length=64, description="The account (default primary)")]


class HoldingsController(Controller):
    path = "/portfolio"
    tags = ["portfolio"]

    @get(
        "/holdings",
        summary="Holdings in Kite's shape (delivery shares; T1 until settled)",
        opt=Access.query() | answers(BROKER_WITHOUT_IT),
    )
    async def holdings(
        self,
        request: Request[Any, Any, Any],
        order_service: NamedDependency[OrderService],
        account_id: AccountId = "primary",
    ) -> list[dict[str, Any]]:
        return await service.holdings(order_service.broker(authorized(request).same(account_id)))


class MarginsController(Controller):
    path = "/user"
    tags = ["portfolio"]

    @get(
        "/margins",
        summary="Funds and margins per segment, in Kite's shape",
        opt=Access.query() | answers(BROKER_WITHOUT_IT),
    )
    async def margins(
        self,
        request: Request[Any, Any, Any],
        order_service: NamedDependency[OrderService],
        account_id: AccountId = "primary",
    ) -> dict[str, Any]:
        return await service.margins(order_service.broker(authorized(request).same(account_id)))

    @get(
        "/margins/{segment:str}",
        summary="Funds and margins of one segment (equity, commodity)",
        opt=Access.query() | answers(BROKER_WITHOUT_IT),
    )
    async def margins_segment(
        self,
        request: Request[Any, Any, Any],
        segment: FromPath[str],
        order_service: NamedDependency[OrderService],
        account_id: AccountId = "primary",
    ) -> dict[str, Any]:
        broker = order_service.broker(authorized(request).same(account_id))
        return await service.margins(broker, segment)


Instruments = Annotated[
    list[str], QueryParameter(name="i", description="EXCHANGE:TRADINGSYMBOL, repeated: i=NSE:INFY&i=NSE:SBIN")
]


class QuotesController(Controller):
    path = "/quote"
    tags = ["market data"]

    @get(
        "/",
        summary="Quotes in Kite's shape (the feed's fresh ticks, else the broker)",
        opt=Access.query() | answers(BROKER_WITHOUT_IT),
    )
    async def quote(
        self,
        request: Request[Any, Any, Any],
        i: Instruments,
        runtime: NamedDependency[Runtime],
        account_id: AccountId = "primary",
    ) -> dict[str, Any]:
        account = authorized(request).same(account_id)
        return await runtime.quotes.answer(account, runtime.orders.broker(account), i, ltp=False)

    @get(
        "/ltp",
        summary="Last prices in Kite's shape (the feed's fresh ticks, else the broker)",
        opt=Access.query() | answers(BROKER_WITHOUT_IT),
    )
    async def ltp(
        self,
        request: Request[Any, Any, Any],
        i: Instruments,
        runtime: NamedDependency[Runtime],
        account_id: AccountId = "primary",
    ) -> dict[str, Any]:
        account = authorized(request).same(account_id)
        return await runtime.quotes.answer(account, runtime.orders.broker(account), i, ltp=True)
