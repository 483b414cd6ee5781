"""HTTP controllers for orders, tasks and positions. Thin: parse, authorize, call the service."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from ticker_service.orders.schemas import ModifyOrderRequest, PlaceOrderRequest, TaskView
from ticker_service.orders.service import Answer, OrderService
from ticker_service.orders.tasks import TASK_STATUSES, NotRetryable, get_task, list_tasks, retry_dead_letter
from ticker_service.system.auth import Caller
from ticker_service.system.errors import ApiError, FieldError

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
AccountQuery = Annotated[str | None, QueryParameter(min_length=1, max_length=64, required=False)]


def _respond(answer: Answer) -> Response[TaskView]:
    return Response(content=answer.body, status_code=answer.status_code)


class OrdersController(Controller):
    path = "/orders"
    tags = ["orders"]

    @post(
        "/place",
        summary="Place an order",
        description="201 with the order once the broker accepted it; 202 with the task while pending; "
        "422 when a field is invalid or the broker refused it.",
        status_code=201,
    )
    async def place(
        self,
        data: JSONBody[PlaceOrderRequest],
        order_service: NamedDependency[OrderService],
        caller: NamedDependency[Caller],
        idempotency_key: IdempotencyKey = None,
        wait: Wait = 5.0,
    ) -> Response[TaskView]:
        caller.require(data.account_id)
        return _respond(await order_service.place(data, idempotency_key, wait))

    @get("/", summary="The broker's order book of an account")
    async def list_orders(
        self,
        order_service: NamedDependency[OrderService],
        caller: NamedDependency[Caller],
        account_id: Annotated[str, QueryParameter(min_length=1, max_length=64)] = "primary",
        status: Annotated[str | None, QueryParameter(max_length=40, required=False)] = None,
        limit: Annotated[int | None, QueryParameter(ge=1, le=10_000, required=False)] = None,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> list[dict[str, Any]]:
        caller.require(account_id)
        return await order_service.order_book(account_id, status, limit, offset)

    @get("/{order_id:str}", summary="One order, as the broker has it now")
    async def get_order(
        self,
        order_id: FromPath[str],
        order_service: NamedDependency[OrderService],
        caller: NamedDependency[Caller],
        account_id: AccountQuery = None,
    ) -> dict[str, Any]:
        if account_id is not None:
            caller.require(account_id)
        account, order = await order_service.find_order(order_id, account_id)
        caller.require(account)
        return order

    @put("/{order_id:str}", summary="Modify an open order (through a task)", status_code=200)
    async def modify(
        self,
        order_id: FromPath[str],
        data: JSONBody[ModifyOrderRequest],
        order_service: NamedDependency[OrderService],
        caller: NamedDependency[Caller],
        account_id: AccountQuery = None,
        idempotency_key: IdempotencyKey = None,
        wait: Wait = 5.0,
    ) -> Response[TaskView]:
        if account_id is not None:
            caller.require(account_id)
        answer = await order_service.modify(order_id, data, account_id, idempotency_key, wait)
        caller.require(answer.body.account_id)
        return _respond(answer)

    @delete("/{order_id:str}", summary="Cancel an open order (through a task)", status_code=200)
    async def cancel(
        self,
        order_id: FromPath[str],
        order_service: NamedDependency[OrderService],
        caller: NamedDependency[Caller],
        account_id: AccountQuery = None,
        idempotency_key: IdempotencyKey = None,
        wait: Wait = 5.0,
    ) -> Response[TaskView]:
        if account_id is not None:
            caller.require(account_id)
        answer = await order_service.cancel(order_id, account_id, idempotency_key, wait)
        caller.require(answer.body.account_id)
        return _respond(answer)


class TasksController(Controller):
    path = "/tasks"
    tags = ["tasks"]

    @get("/{task_id:str}", summary="One task")
    async def get_task(
        self, task_id: FromPath[str], order_service: NamedDependency[OrderService], caller: NamedDependency[Caller]
    ) -> TaskView:
        task = await get_task(order_service.pool, task_id)
        if task is None:
            raise ApiError(404, f"task_id: no task {task_id!r}")
        caller.require(task["account_id"])
        return await order_service.view(task)

    @get("/", summary="Tasks, newest first")
    async def list_tasks(
        self,
        order_service: NamedDependency[OrderService],
        caller: NamedDependency[Caller],
        status: Annotated[str | None, QueryParameter(required=False, description="comma-separated task states")] = None,
        account_id: AccountQuery = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> list[TaskView]:
        statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
        for s in statuses or ():
            if s not in TASK_STATUSES:
                raise FieldError("status", f"unknown task status {s!r}; one of {', '.join(TASK_STATUSES)}")
        accounts = list(order_service.brokers)
        if account_id is not None:
            caller.require(account_id)
            accounts = [account_id]
        tasks = await list_tasks(
            order_service.engine, statuses=statuses, account_ids=caller.visible(accounts), limit=limit, offset=offset
        )
        return [await order_service.view(t) for t in tasks]

    @post("/{task_id:str}/retry", summary="Requeue a dead-lettered task", status_code=202)
    async def retry(
        self, task_id: FromPath[str], order_service: NamedDependency[OrderService], caller: NamedDependency[Caller]
    ) -> TaskView:
        task = await get_task(order_service.pool, task_id)
        if task is None:
            raise ApiError(404, f"task_id: no task {task_id!r}")
        caller.require(task["account_id"])
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

    @get("/positions", summary="Positions in Kite's shape (net and day)")
    async def positions(
        self,
        order_service: NamedDependency[OrderService],
        caller: NamedDependency[Caller],
        account_id: Annotated[str, QueryParameter(min_length=1, max_length=64)] = "primary",
    ) -> dict[str, Any]:
        caller.require(account_id)
        broker = order_service.broker(account_id)
        return dict(await broker.positions())
