"""The Litestar application: controllers, dependencies, error handlers and the lifespan."""

from __future__ import annotations

import asyncio
import functools
import gc
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

from ticker_service import __version__
from ticker_service.accounts.controllers import AccountsController
from ticker_service.accounts.service import AccountsService
from ticker_service.batches.controllers import BatchesController
from ticker_service.batches.service import BatchService
from ticker_service.brokers.registry import route_handlers as broker_routes
from ticker_service.db.embedded import resolve_database_url
from ticker_service.db.migrate import run_migrations
from ticker_service.desk.routes import desk_router
from ticker_service.marketdata.history.controllers import HistoryController
from ticker_service.marketdata.instruments.controllers import InstrumentsController
from ticker_service.marketdata.subscriptions.controllers import SubscriptionsController
from ticker_service.marketdata.ticks.controllers import TickStreamController
from ticker_service.orders.controllers import OrdersController, PortfolioController, TasksController
from ticker_service.orders.service import OrderService
from ticker_service.portfolio.controllers import HoldingsController, MarginsController, QuotesController
from ticker_service.runtime import Runtime
from ticker_service.settings import Settings
from ticker_service.stream.controllers import OrderStreamController
from ticker_service.system import metrics
from ticker_service.system.access import access_guard
from ticker_service.system.allow import allow_every_method
from ticker_service.system.contract import describe_request_bodies, document_answers
from ticker_service.system.controllers import SystemController
from ticker_service.system.docs import assets_router, openapi_config
from ticker_service.system.errors import EXCEPTION_HANDLERS, answer_status
from ticker_service.system.http_protocol import CUT_OFF
from ticker_service.system.inputs import input_guard
from ticker_service.webhooks.controllers import WebhooksController
from ticker_service.webhooks.service import WebhookService

log = structlog.get_logger("ticker.http")


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


# Synchronous, and one per handler: Litestar resolves a level with several dependencies in an anyio
# TaskGroup, which cost ~5 % of an order's CPU. Handlers take the guard's answer from the request.
def provide_order_service(state: State) -> OrderService:
    runtime: Runtime = state.runtime
    return runtime.orders


def provide_webhook_service(state: State) -> WebhookService:
    runtime: Runtime = state.runtime
    return runtime.webhooks


def provide_accounts_service(state: State) -> AccountsService:
    runtime: Runtime = state.runtime
    return runtime.accounts


def provide_batch_service(state: State) -> BatchService:
    runtime: Runtime = state.runtime
    return runtime.batches


@functools.cache
def _http_metrics(method: str, endpoint: str, status: int) -> tuple[Any, Any]:
    """The labelled children, looked up once per (method, route template, status): a bounded set."""
    return (
        metrics.HTTP_REQUESTS.labels(method=method, endpoint=endpoint, status=str(status)),
        metrics.HTTP_SECONDS.labels(method=method, endpoint=endpoint),
    )


CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that went away before its answer
REQUEST_TIMEOUT = 408


def request_context(app: ASGIApp) -> ASGIApp:
    """Request id (from X-Request-ID or new), echoed back and bound to every log line; HTTP metrics.

    The status counted is the one answered, also for an answer made outside this middleware (an
    exception of the input or access guard). A request whose client went away before its answer
    (the server saw the connection close while the request was being read) counts as 499, or as
    408 when the server cut it off for arriving too slowly: neither is a failure of the service.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw = headers.get(b"x-request-id", b"")[:64].decode("latin-1")
        request_id = raw if raw and raw.isprintable() else uuid.uuid4().hex
        status = 500
        answered = False
        gone = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        async def receive_wrapper() -> ReceiveMessage:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
            return message

        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await app(scope, receive_wrapper, send_wrapper)
        except Exception as exc:  # raised by a middleware: the app's handlers answer it, outside this one
            if not answered:
                status = answer_status(exc)
            raise
        finally:
            if gone and (not answered or status >= 500):
                status = REQUEST_TIMEOUT if scope.get(CUT_OFF) else CLIENT_CLOSED_REQUEST
            elapsed = time.perf_counter() - started
            endpoint = scope.get("path_template") or "unmatched"
            method = str(scope.get("method", ""))
            count, duration = _http_metrics(method, endpoint, status)
            count.inc()
            duration.observe(elapsed)
            if status == 503:  # a dependency (the database, a broker) is down: said where it was seen
                log.warning("request answered unavailable", method=method, path=scope["path"], status=status)
            elif status >= 500:
                log.error("request failed", method=method, path=scope["path"], status=status)
            elif status in (CLIENT_CLOSED_REQUEST, REQUEST_TIMEOUT) and gone:
                log.info("request not received whole", method=method, path=scope["path"], status=status)
            structlog.contextvars.unbind_contextvars("request_id")

    return middleware


def create_app(
    settings: Settings, database_url: str | None = None, *, migrate: bool | None = None, freeze_gc: bool = False
) -> Litestar:
    """The app; `migrate` (default: the setting) applies pending migrations in the lifespan."""
    migrate = settings.database.migrate_on_start if migrate is None else migrate

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        url = database_url if database_url is not None else await asyncio.to_thread(resolve_database_url, settings)
        if migrate:
            await run_migrations(url)
        runtime = Runtime(settings, url)
        await runtime.start()
        app.state.runtime = runtime
        if freeze_gc:
            # Everything allocated so far (modules, the app, the instrument book) lives as long as
            # the process: keep it out of the cyclic collector's full passes, which otherwise walk
            # it all and showed up as stalls of tens of milliseconds in the latency tail. Only for
            # `serve`, where the app lives as long as the process (not for apps made in tests).
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await runtime.stop()

    app = Litestar(
        route_handlers=[
            OrdersController,
            TasksController,
            PortfolioController,
            HoldingsController,
            MarginsController,
            QuotesController,
            BatchesController,
            WebhooksController,
            OrderStreamController,
            SubscriptionsController,
            TickStreamController,
            AccountsController,
            InstrumentsController,
            HistoryController,
            SystemController,
            *broker_routes(),
            assets_router(),  # the API docs' scripts and styles: no CDN
            desk_router(),  # the trading desk in the browser: /desk, and / opens it
        ],
        dependencies={
            "runtime": Provide(provide_runtime, sync_to_thread=False),
            "order_service": Provide(provide_order_service, sync_to_thread=False),
            "webhook_service": Provide(provide_webhook_service, sync_to_thread=False),
            "batch_service": Provide(provide_batch_service, sync_to_thread=False),
            "accounts_service": Provide(provide_accounts_service, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        # bad input refused as a 4xx naming the field (system/inputs.py), then who may act for which
        # account: every route declares it, one guard checks it (system/access.py)
        middleware=[request_context, input_guard, access_guard],
        openapi_config=openapi_config("Ticker Service", __version__),
        request_max_body_size=settings.server.max_body_bytes,
        debug=False,
        logging_config=None,
    )
    allow_every_method(app)  # OPTIONS: `Allow` names every method of the path
    document_answers(app, settings)  # the OpenAPI document lists every status each operation answers
    describe_request_bodies(app)  # and request bodies as they are checked
    return app
