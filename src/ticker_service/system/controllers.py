"""Health and metrics: for operators, Prometheus and load balancers; they act for no account.

What each caller sees is decided by `operator_view` (`TICKER_METRICS_KEY`, else the caller's API
key): account ids only to callers who may use those accounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric

from ticker_service.db.availability import RETRY_AFTER_SECONDS, outage_reason
from ticker_service.runtime import Runtime
from ticker_service.system import samples
from ticker_service.system.access import Access
from ticker_service.system.contract import ErrorBody, answer, answers
from ticker_service.system.health import down_body, health_body
from ticker_service.system.operator_view import OperatorView, operator_view, require_metrics_access

log = structlog.get_logger("ticker.system")


class _VisibleMetrics:
    """The process's registry less the series labelled with an account the caller may not see."""

    def __init__(self, view: OperatorView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():
            if self.view.accounts is None:
                yield family
                continue
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [
                s for s in family.samples if "account" not in s.labels or self.view.shows(s.labels["account"])
            ]
            yield kept


class SystemController(Controller):
    tags = ["system"]

    @get(
        "/health",
        summary="Service status: ok, degraded (200) or down (503)",
        description="With TICKER_METRICS_KEY set, the detail needs that key; without it only `status` is shown. "
        "Accounts appear only to callers who may use them. 503 with Retry-After when the database is "
        "unreachable (`problems` says why).",
        opt=Access.public()
        | answers({503: answer(dict[str, Any], "Down: the database is unavailable; `problems` says why")}),
    )
    async def health(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[dict[str, Any]]:
        view = operator_view(request, runtime.settings)
        instance_id = runtime.settings.server.instance_id
        try:
            sample = await samples.take(runtime.engine, runtime.pool, runtime.settings.account_ids)
        except Exception as exc:
            body = down_body(
                view,
                error=type(exc).__name__,
                reason=outage_reason(exc),
                relay_running=runtime.executor.running,
                instance_id=instance_id,
            )
            return Response(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        samples.publish(sample)
        body = health_body(
            sample,
            view,
            relay_running=runtime.executor.running,
            workers=runtime.settings.execution.workers,
            instance_id=instance_id,
        )
        return Response(body, status_code=200)

    @get(
        "/metrics",
        summary="Prometheus metrics of this instance",
        description="Prometheus' text exposition format, version 0.0.4. Needs TICKER_METRICS_KEY when it is "
        "set (X-API-Key or Authorization: Bearer); series of accounts the caller may not use are left out.",
        media_type=CONTENT_TYPE_PLAIN_0_0_4,
        opt=Access.public()
        | answers({401: answer(ErrorBody, "TICKER_METRICS_KEY is set and the request does not carry it")}),
    )
    async def metrics_endpoint(
        self, request: Request[Any, Any, Any], runtime: NamedDependency[Runtime]
    ) -> Response[bytes]:
        view = operator_view(request, runtime.settings)
        require_metrics_access(view)
        try:  # the shared state as it is now; when the database is down the process's own counters still help
            samples.publish(await samples.take(runtime.engine, runtime.pool, runtime.settings.account_ids))
        except Exception as exc:
            log.warning("metrics: the database could not be sampled", error=type(exc).__name__)
        return Response(generate_latest(_VisibleMetrics(view)), media_type=CONTENT_TYPE_PLAIN_0_0_4)
