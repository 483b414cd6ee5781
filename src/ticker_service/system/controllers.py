"""Health and metrics: for operators and load balancers, no API key needed."""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import text

from ticker_service import __version__
from ticker_service.accounts import feeds, pauses
from ticker_service.accounts.states import AccountState
from ticker_service.db.availability import RETRY_AFTER_SECONDS, outage_reason
from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.states import IN_FLIGHT, TaskStatus
from ticker_service.orders.lifecycle.tasks import count_by_status
from ticker_service.runtime import Runtime
from ticker_service.system import metrics
from ticker_service.system.access import Access
from ticker_service.system.contract import answer, answers

LAG_DEGRADED_SECONDS = 30.0


class SystemController(Controller):
    tags = ["system"]

    @get(
        "/health",
        summary="Service status",
        description="200 unless the database is unreachable (503 with Retry-After, `problems` says why).",
        opt=Access.public()
        | answers({503: answer(dict[str, Any], "The database is unavailable: `problems` says why")}),
    )
    async def health(self, runtime: NamedDependency[Runtime]) -> Response[dict[str, Any]]:
        started = time.perf_counter()
        try:
            async with runtime.engine.connect() as conn:
                counts = await count_by_status(conn)
                lag = (await conn.execute(text(queries.EXECUTOR_LAG))).scalar_one()
                deliveries = {
                    status: int(n)
                    for status, n in await conn.execute(
                        text(
                            "SELECT status, count(*) FROM webhook_deliveries "
                            "WHERE status IN ('pending', 'sending', 'retrying', 'dead') GROUP BY status"
                        )
                    )
                }
                disabled = (await conn.execute(text("SELECT count(*) FROM webhooks WHERE NOT active"))).scalar_one()
            held = await pauses.every_pause(runtime.pool)
            followed = await feeds.of_accounts(runtime.pool, runtime.settings.account_ids)
            database = {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
        except Exception as exc:
            why = outage_reason(exc)
            body = {
                "status": "degraded",
                "ticker": {"running": runtime.executor.running, "tasks_pending": None, "tasks_completed": None},
                "database": {"status": "unavailable", "error": type(exc).__name__, "reason": why},
                "problems": [f"database unavailable: {why}; requests are answered 503 until it is back"],
                "instance_id": runtime.settings.server.instance_id,
                "version": __version__,
            }
            return Response(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        for status, n in counts.items():
            metrics.TASKS_BY_STATUS.labels(status=status).set(n)
        metrics.RELAY_LAG_SECONDS.set(float(lag))
        waiting = sum(deliveries.get(s, 0) for s in ("pending", "sending", "retrying"))
        metrics.WEBHOOK_PENDING.set(waiting)
        unknown = counts.get(TaskStatus.UNKNOWN, 0)
        dead = counts.get(TaskStatus.DEAD_LETTER, 0)
        problems = []
        if not runtime.executor.running:
            problems.append("relay not running")
        if float(lag) > LAG_DEGRADED_SECONDS:
            problems.append(f"relay lag {float(lag):.1f}s")
        if unknown:
            problems.append(f"{unknown} task(s) with an unknown outcome awaiting reconciliation")
        accounts: dict[str, Any] = {}
        for account_id in runtime.settings.account_ids:
            state, reason = pauses.state_of([p for p in held if p.account_id == account_id])
            feed = followed.get(account_id)
            accounts[account_id] = {
                "state": state,
                "reason": reason,
                "feed": None if feed is None else {"state": feed["state"], "detail": feed["detail"]},
            }
            if state != AccountState.ACTIVE:
                problems.append(f"account {account_id}: {state.replace('_', ' ')}: {reason}")
            if feed is not None and feed["state"] != "connected":
                problems.append(f"account {account_id}: broker feed {feed['state']}")
        # the broker feeds (Kite's ticker connections, the paper price model) as their holders last recorded them
        feed_states = {account_id: feed["state"] for account_id, feed in followed.items()}
        body = {
            "status": "degraded" if problems else "ok",
            "ticker": {
                "running": runtime.executor.running and all(state == "connected" for state in feed_states.values()),
                "feeds": feed_states,
                "tasks_pending": sum(counts.get(s, 0) for s in IN_FLIGHT),
                "tasks_completed": counts.get(TaskStatus.COMPLETED, 0),
            },
            "tasks": counts,
            "database": database,
            "relay": {
                "workers": runtime.settings.execution.workers,
                "lag_seconds": round(float(lag), 3),
                "unknown": unknown,
                "dead_letter": dead,
            },
            "webhooks": {
                "deliveries_waiting": waiting,
                "deliveries_dead": deliveries.get("dead", 0),
                "endpoints_disabled": int(disabled),
            },
            "accounts": accounts,
            "problems": problems,
            "instance_id": runtime.settings.server.instance_id,
            "version": __version__,
        }
        return Response(body, status_code=200)

    @get(
        "/metrics",
        summary="Prometheus metrics of this instance",
        description="Prometheus' text exposition format, version 0.0.4 (what `generate_latest` writes).",
        media_type=CONTENT_TYPE_PLAIN_0_0_4,
        opt=Access.public(),
    )
    async def metrics_endpoint(self) -> Response[str]:
        return Response(generate_latest().decode(), media_type=CONTENT_TYPE_PLAIN_0_0_4)
