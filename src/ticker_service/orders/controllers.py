"""HTTP controllers for orders, tasks and positions. Thin: parse, call the service.

Each route declares in `opt` how its account is found (`system.access`); the application's guard has
checked it before the handler runs, and the handler takes the account from the guard's answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from ticker_service.batches.schemas import BatchView
from ticker_service.batches.service import BatchService
from ticker_service.batches.views import FINAL
from ticker_service.orders.lifecycle.states import TaskStatus
from ticker_service.orders.lifecycle.tasks import (
    NotRetryable,
    accounts_of_task,
    get_task,
    list_tasks,
    retry_dead_letter,
)
from ticker_service.orders.schemas import ModifyOrderRequest, PlaceOrderRequest, TaskView
from ticker_service.orders.service import Answer, OrderService, accounts_of_order
from ticker_service.portfolio import service as portfolio
from ticker_service.system.access import Access, authorized
from ticker_service.system.contract import BROKER_WITHOUT_IT, ErrorBody, answer, answers
from ticker_service.system.errors import ApiError, FieldError
from ticker_service.system.params import Offset

Wait = Annotated[
    float,
    QueryParameter(ge=0, le=30, description="Seconds to wait for the broker's answer (0: answer at once)"),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=200,
        required=False,
        description="Same key, same task: a retried request is never placed twice",
    ),
]
AccountQuery = Annotated[
    str | None,
    QueryParameter(min_length=1, max_length=64, required=False, description="The account (default: primary)"),
]
# An order is found in the account that the mirror holds it in, else in the account named by
# `?account_id=` (default primary), whose broker is asked.
ORDER_ROW = Access.row("order_id", accounts_of_order, "order", fallback="account_id", default="primary")
TASK_ROW = Access.row("task_id", accounts_of_task, "task")
# what a task's answer can be besides its success (OrderService.status_code)
TASK_ANSWERS = {
    202: answer(TaskView, "Still in flight: the task, to follow at /tasks/{task_id}"),
    422: answer(TaskView, "The broker refused it: the task says why"),
    503: answer(TaskView, "The service gave up on the broker: the task says why"),
}


def _respond(answer: Answer) -> Response[TaskView]:
    return Response(content=answer.body, status_code=answer.status_code)


class OrdersController(Controller):
    path = "/orders"
    tags = ["orders"]

    @post(
        "/place",
        summary="Place an order",
        description="201 with the order once the broker accepted it; 202 with the task while pending; "
        "422 when a field is invalid or the broker refused it. With `autoslice` an order above the freeze "
        "quantity is placed as a batch of slices and answered as that batch.",
        status_code=201,
        opt=Access.body()
        | answers(TASK_ANSWERS | {202: answer(TaskView | BatchView, "Still in flight: the task or the batch")}),
    )
    async def place(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[PlaceOrderRequest],
        order_service: NamedDependency[OrderService],
        batch_service: NamedDependency[BatchService],
        idempotency_key: IdempotencyKey = None,
        wait: Wait = 5.0,
    ) -> Response[TaskView | BatchView]:
        authorized(request).same(data.account_id)
        sliced = await batch_service.autoslices(data)
        if sliced is not None:  # above the freeze quantity with autoslice: the slices' batch answers
            batch_id, _ = await batch_service.submit(sliced, idempotency_key)
            view = await batch_service.answer(batch_id, wait)
            return Response(view, status_code=201 if view.status in FINAL else 202)
        answer = await order_service.place(data, idempotency_key, wait)
        return Response(content=answer.body, status_code=answer.status_code)

    @get("/", summary="The broker's order book of an account", opt=Access.query())
    async def list_orders(
        self,
        request: Request[Any, Any, Any],
        order_service: NamedDependency[OrderService],
        account_id: Annotated[str, QueryParameter(min_length=1, max_length=64)] = "primary",
        status: Annotated[str | None, QueryParameter(max_length=40, required=False)] = None,
        limit: Annotated[int | None, QueryParameter(ge=1, le=10_000, required=False)] = None,
        offset: Offset = 0,
    ) -> list[dict[str, Any]]:
        account = authorized(request).same(account_id)
        return await order_service.order_book(account, status, limit, offset)

    @get("/{order_id:str}", summary="One order, as the broker has it now", opt=ORDER_ROW)
    async def get_order(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[str],
        order_service: NamedDependency[OrderService],
        account_id: AccountQuery = None,
    ) -> dict[str, Any]:
        return await order_service.find_order(order_id, authorized(request).account)

    @get(
        "/{order_id:str}/trades",
        summary="An order's fills, in Kite's shape",
        opt=ORDER_ROW | answers(BROKER_WITHOUT_IT),
    )
    async def order_trades(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[str],
        order_service: NamedDependency[OrderService],
        account_id: AccountQuery = None,
    ) -> list[dict[str, Any]]:
        return await portfolio.order_trades(order_service.broker(authorized(request).account), order_id)

    @put(
        "/{order_id:str}",
        summary="Modify an open order (through a task)",
        status_code=200,
        opt=ORDER_ROW | answers(TASK_ANSWERS),
    )
    async def modify(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[str],
        data: JSONBody[ModifyOrderRequest],
        order_service: NamedDependency[OrderService],
        account_id: AccountQuery = None,
        idempotency_key: IdempotencyKey = None,
        wait: Wait = 5.0,
    ) -> Response[TaskView]:
        account = authorized(request).account
        return _respond(await order_service.modify(order_id, data, account, idempotency_key, wait))

    @delete(
        "/{order_id:str}",
        summary="Cancel an open order (through a task)",
        status_code=200,
        opt=ORDER_ROW | answers(TASK_ANSWERS),
    )
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        order_id: FromPath[str],
        order_service: NamedDependency[OrderService],
        account_id: AccountQuery = None,
        idempotency_key: IdempotencyKey = None,
        wait: Wait = 5.0,
    ) -> Response[TaskView]:
        account = authorized(request).account
        return _respond(await order_service.cancel(order_id, account, idempotency_key, wait))


class TasksController(Controller):
    path = "/tasks"
    tags = ["tasks"]

    @get("/{task_id:str}", summary="One task", opt=TASK_ROW)
    async def get_task(self, task_id: FromPath[str], order_service: NamedDependency[OrderService]) -> TaskView:
        task = await get_task(order_service.pool, task_id)
        if task is None:  # deleted by the clean-up since the guard saw it
            raise ApiError(404, f"task_id: no task {task_id!r}")
        return await order_service.view(task)

    @get("/", summary="Tasks, newest first", opt=Access.visible())
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        order_service: NamedDependency[OrderService],
        status: Annotated[str | None, QueryParameter(required=False, description="comma-separated task states")] = None,
        account_id: AccountQuery = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        offset: Offset = 0,
    ) -> list[TaskView]:
        statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
        known = [s.value for s in TaskStatus]
        for s in statuses or ():
            if s not in known:
                raise FieldError("status", f"unknown task status {s!r}; one of {', '.join(known)}")
        tasks = await list_tasks(
            order_service.engine,
            statuses=statuses,
            account_ids=authorized(request).accounts,
            limit=limit,
            offset=offset,
        )
        return [await order_service.view(t) for t in tasks]

    @post(
        "/{task_id:str}/retry",
        summary="Requeue a dead-lettered task",
        status_code=202,
        opt=TASK_ROW | answers({409: answer(ErrorBody, "The task is not dead-lettered")}),
    )
    async def retry(self, task_id: FromPath[str], order_service: NamedDependency[OrderService]) -> TaskView:
        try:
            requeued = await retry_dead_letter(order_service.pool, task_id)
        except NotRetryable:
            raise
        if requeued is None:
            raise ApiError(404, f"task_id: no task {task_id!r}")
        return await order_service.view(requeued)


class PortfolioController(Controller):
    path = "/portfolio"
    tags = ["portfolio"]

    @get("/positions", summary="Positions in Kite's shape (net and day)", opt=Access.query())
    async def positions(
        self,
        request: Request[Any, Any, Any],
        order_service: NamedDependency[OrderService],
        account_id: Annotated[str, QueryParameter(min_length=1, max_length=64)] = "primary",
    ) -> dict[str, Any]:
        broker = order_service.broker(authorized(request).same(account_id))
        return dict(await broker.positions())
