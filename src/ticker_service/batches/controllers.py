"""HTTP controller for batch orders. Thin: parse, authorize, call the service."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from ticker_service.batches.schemas import BatchOrdersRequest, BatchView
from ticker_service.batches.service import BatchService, accounts_of_batch
from ticker_service.batches.views import FINAL, load_page
from ticker_service.orders.lifecycle.states import BatchStatus
from ticker_service.system.access import Access, authorized
from ticker_service.system.contract import answer, answers
from ticker_service.system.errors import ApiError, FieldError
from ticker_service.system.params import Offset

Wait = Annotated[
    float,
    QueryParameter(ge=0, le=30, description="Seconds to wait for the batch to finish, rollback included"),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(name="Idempotency-Key", min_length=1, max_length=200, required=False),
]


class BatchesController(Controller):
    path = "/advanced/batch-orders"
    tags = ["batches"]

    @post(
        "/",
        summary="Place 1 to 20 orders in order, rolling back on failure",
        description="201 once the batch has finished (success true or false, rollback done); 202 while it runs.",
        status_code=201,
        opt=Access.body() | answers({202: answer(BatchView, "Still in flight: the batch, to follow by its id")}),
    )
    async def place(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[BatchOrdersRequest],
        batch_service: NamedDependency[BatchService],
        idempotency_key: IdempotencyKey = None,
        wait: Wait = 5.0,
    ) -> Response[BatchView]:
        authorized(request).same(data.account_id)
        batch_id, _ = await batch_service.submit(data, idempotency_key)
        view = await batch_service.answer(batch_id, wait)
        return Response(view, status_code=201 if view.status in FINAL else 202)

    @get("/", summary="Batches, newest first (filters: account_id, status; paged)", opt=Access.visible())
    async def list_batches(
        self,
        request: Request[Any, Any, Any],
        batch_service: NamedDependency[BatchService],
        status: Annotated[
            str | None, QueryParameter(required=False, max_length=200, description="comma-separated batch states")
        ] = None,
        account_id: Annotated[str | None, QueryParameter(required=False, min_length=1, max_length=64)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
        offset: Offset = 0,
    ) -> list[BatchView]:
        statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
        known = [s.value for s in BatchStatus]
        for s in statuses or ():
            if s not in known:
                raise FieldError("status", f"unknown batch status {s[:40]!r}; one of {', '.join(known)}")
        return await load_page(batch_service.pool, authorized(request).accounts, statuses, limit, offset)

    @get("/{batch_id:str}", summary="A batch, as it stands", opt=Access.row("batch_id", accounts_of_batch, "batch"))
    async def get_batch(self, batch_id: FromPath[str], batch_service: NamedDependency[BatchService]) -> BatchView:
        view = await batch_service.view(batch_id)
        if view is None:
            raise ApiError(404, f"batch_id: no batch {batch_id!r}")
        return view
