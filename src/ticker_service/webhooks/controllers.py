"""HTTP controllers for webhooks and their deliveries. Thin: parse, authorize, call the service."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from ticker_service.system.access import Access, authorized
from ticker_service.system.contract import ErrorBody, answer, answers
from ticker_service.system.errors import ApiError, FieldError
from ticker_service.system.params import Offset
from ticker_service.webhooks.schemas import CreateWebhookRequest, DeliveryView, WebhookView
from ticker_service.webhooks.service import WebhookService, accounts_of_webhook, webhook_view

DELIVERY_STATUSES = ("pending", "sending", "retrying", "delivered", "dead")
WEBHOOK_ROW = Access.row("webhook_id", accounts_of_webhook, "webhook")


class WebhooksController(Controller):
    path = "/advanced/webhooks"
    tags = ["webhooks"]

    @post(
        "/",
        summary="Register a webhook",
        status_code=201,
        opt=Access.body() | answers({409: answer(ErrorBody, "The account has as many webhooks as it may")}),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CreateWebhookRequest],
        webhook_service: NamedDependency[WebhookService],
    ) -> WebhookView:
        authorized(request).same(data.account_id)
        return await webhook_service.create(data)

    @get("/", summary="Webhooks (never their secrets)", opt=Access.visible())
    async def list_webhooks(
        self,
        request: Request[Any, Any, Any],
        webhook_service: NamedDependency[WebhookService],
        account_id: Annotated[str | None, QueryParameter(min_length=1, max_length=64, required=False)] = None,
    ) -> list[WebhookView]:
        return await webhook_service.list_for(authorized(request).accounts)

    @get("/{webhook_id:str}", summary="One webhook (never its secret)", opt=WEBHOOK_ROW)
    async def get_webhook(
        self,
        webhook_id: FromPath[str],
        webhook_service: NamedDependency[WebhookService],
    ) -> WebhookView:
        row = await webhook_service.get_row(webhook_id)
        return webhook_view(row)

    @delete("/{webhook_id:str}", summary="Delete a webhook and its deliveries", status_code=200, opt=WEBHOOK_ROW)
    async def delete_webhook(
        self,
        webhook_id: FromPath[str],
        webhook_service: NamedDependency[WebhookService],
    ) -> dict[str, Any]:
        await webhook_service.delete(webhook_id)
        return {"success": True, "webhook_id": webhook_id}

    @get("/{webhook_id:str}/deliveries", summary="Deliveries of a webhook, newest first", opt=WEBHOOK_ROW)
    async def deliveries(
        self,
        webhook_id: FromPath[str],
        webhook_service: NamedDependency[WebhookService],
        status: Annotated[str | None, QueryParameter(required=False)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        offset: Offset = 0,
    ) -> list[DeliveryView]:
        if status is not None and status not in DELIVERY_STATUSES:
            raise FieldError("status", f"unknown delivery status {status!r}; one of {', '.join(DELIVERY_STATUSES)}")
        return await webhook_service.deliveries(webhook_id, status, limit, offset)

    @post(
        "/{webhook_id:str}/deliveries/{delivery_id:str}/replay",
        summary="Send a delivered or dead delivery again (same webhook-id)",
        status_code=202,
        opt=WEBHOOK_ROW | answers({409: answer(ErrorBody, "Disabled, or the delivery is not final")}),
    )
    async def replay(
        self,
        webhook_id: FromPath[str],
        delivery_id: FromPath[str],
        webhook_service: NamedDependency[WebhookService],
    ) -> DeliveryView:
        row = await webhook_service.get_row(webhook_id)
        if not row["active"]:
            raise ApiError(409, f"webhook_id: webhook is disabled ({row['disabled_reason']}); register it again")
        return await webhook_service.replay(webhook_id, delivery_id)

    @post(
        "/{webhook_id:str}/test",
        summary="Send a `ping` event to the webhook",
        status_code=202,
        opt=WEBHOOK_ROW | answers({409: answer(ErrorBody, "The webhook is disabled")}),
    )
    async def test(
        self,
        webhook_id: FromPath[str],
        webhook_service: NamedDependency[WebhookService],
    ) -> Response[DeliveryView]:
        row = await webhook_service.get_row(webhook_id)
        if not row["active"]:
            raise ApiError(409, f"webhook_id: webhook is disabled ({row['disabled_reason']}); register it again")
        return Response(await webhook_service.test(row), status_code=202)
