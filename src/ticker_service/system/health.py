"""`/health`'s answer: one word and a status code for load balancers, the detail for operators.

`ok` (200), `degraded` (200: serving, but something needs an operator) or `down` (503: the database
is unreachable, so nothing can be accepted). The detail names accounts only where the caller may
see them (`operator_view`); problems of other accounts are counted, never named.
"""

from __future__ import annotations

from typing import Any

from ticker_service import __version__
from ticker_service.accounts.states import AccountState
from ticker_service.orders.lifecycle.states import IN_FLIGHT, TaskStatus
from ticker_service.system.operator_view import OperatorView
from ticker_service.system.samples import Sample

LAG_DEGRADED_SECONDS = 30.0
OK, DEGRADED, DOWN = "ok", "degraded", "down"


def problems_of(sample: Sample, relay_running: bool) -> tuple[list[str], dict[str, list[str]]]:
    """What an operator must look at: the service's own problems, and each account's."""
    general = []
    if not relay_running:
        general.append("relay not running")
    if sample.lag_seconds > LAG_DEGRADED_SECONDS:
        general.append(f"relay lag {sample.lag_seconds:.1f}s")
    unknown = sample.tasks.get(TaskStatus.UNKNOWN, 0)
    if unknown:
        general.append(f"{unknown} task(s) with an unknown outcome awaiting reconciliation")
    per_account: dict[str, list[str]] = {}
    for account_id, (state, reason) in sample.accounts.items():
        found = []
        if state != AccountState.ACTIVE:
            found.append(f"account {account_id}: {state.replace('_', ' ')}: {reason}")
        feed = sample.feeds.get(account_id)
        if feed is not None and feed["state"] != "connected":
            found.append(f"account {account_id}: broker feed {feed['state']}")
        if found:
            per_account[account_id] = found
    return general, per_account


def health_body(
    sample: Sample, view: OperatorView, *, relay_running: bool, workers: int, instance_id: str
) -> dict[str, Any]:
    general, per_account = problems_of(sample, relay_running)
    status = DEGRADED if general or per_account else OK
    if not view.detailed:
        return {"status": status}
    shown = [a for a in sample.accounts if view.shows(a)]
    problems = general + [p for a in shown for p in per_account.get(a, [])]
    hidden = sum(len(found) for a, found in per_account.items() if not view.shows(a))
    if hidden:
        problems.append(f"{hidden} problem(s) of accounts this caller may not see")
    feed_states = {a: feed["state"] for a, feed in sample.feeds.items()}
    accounts: dict[str, Any] = {}
    for account_id in shown:
        state, reason = sample.accounts[account_id]
        feed = sample.feeds.get(account_id)
        accounts[account_id] = {
            "state": state,
            "reason": reason,
            "feed": None if feed is None else {"state": feed["state"], "detail": feed["detail"]},
        }
    return {
        "status": status,
        "ticker": {
            # the broker feeds (Kite's ticker connections, the paper price model) as their holders last recorded them
            "running": relay_running and all(state == "connected" for state in feed_states.values()),
            "feeds": {a: state for a, state in feed_states.items() if view.shows(a)},
            "tasks_pending": sum(sample.tasks.get(s, 0) for s in IN_FLIGHT),
            "tasks_completed": sample.tasks.get(TaskStatus.COMPLETED, 0),
        },
        "tasks": {s: n for s, n in sample.tasks.items() if n},
        "database": {"status": "ok", "latency_ms": sample.latency_ms},
        "relay": {
            "workers": workers,
            "lag_seconds": round(sample.lag_seconds, 3),
            "unknown": sample.tasks.get(TaskStatus.UNKNOWN, 0),
            "dead_letter": sample.tasks.get(TaskStatus.DEAD_LETTER, 0),
        },
        "webhooks": {
            "deliveries_waiting": sample.deliveries_waiting,
            "deliveries_dead": sample.deliveries.get("dead", 0),
            "endpoints_disabled": sample.endpoints_disabled,
        },
        "outbox": {"backlog": sample.outbox_backlog, "oldest_seconds": round(sample.outbox_oldest_seconds, 3)},
        "accounts": accounts,
        "problems": problems,
        "instance_id": instance_id,
        "version": __version__,
    }


def down_body(view: OperatorView, *, error: str, reason: str, relay_running: bool, instance_id: str) -> dict[str, Any]:
    if not view.detailed:
        return {"status": DOWN}
    return {
        "status": DOWN,
        "ticker": {"running": relay_running, "tasks_pending": None, "tasks_completed": None},
        "database": {"status": "unavailable", "error": error, "reason": reason},
        "problems": [f"database unavailable: {reason}; requests are answered 503 until it is back"],
        "instance_id": instance_id,
        "version": __version__,
    }
