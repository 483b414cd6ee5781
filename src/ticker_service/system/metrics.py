"""Prometheus metrics. Each process exposes its own at /metrics; scrape every instance."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
HTTP_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["method", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SLOW_CLIENTS = Counter(
    "http_requests_cut_off_total",
    "Requests whose headers or body did not arrive in time (answered 408, connection closed)",
    ["phase"],
)
ORDER_REQUESTS = Counter("order_requests_total", "Order requests accepted", ["operation", "account"])
ORDER_EXECUTION_SECONDS = Histogram(
    "order_execution_duration_seconds",
    "From acceptance to the broker's answer (task resolved), as seen by a waiting request",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BROKER_CALL_SECONDS = Histogram(
    "broker_call_duration_seconds",
    "Broker call latency",
    ["operation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CIRCUIT_BREAKER_STATE = Gauge(
    "circuit_breaker_state",
    "1 while an account's broker is refusing us (auth failure or failures before sending), else 0",
    ["account"],
)
ACTIVE_WEBSOCKETS = Gauge("active_websocket_connections", "Live WebSocket connections", ["account"])
TASK_OUTCOMES = Counter("task_transitions_total", "Task state transitions made by the relay", ["operation", "status"])
UNKNOWN_OUTCOMES = Counter(
    "task_unknown_outcomes_total", "Broker calls whose outcome was ambiguous (task moved to unknown)", ["account"]
)
RECONCILE_FAILURES = Counter(
    "task_reconcile_failures_total", "Reconciliations of unknown tasks that could not reach the broker", ["account"]
)
BROKER_AUTH_FAILURES = Counter("broker_auth_failures_total", "Session token refused by the broker", ["account"])
FENCED_FINISHES = Counter("relay_fenced_finishes_total", "Finishes discarded because the lease had moved on")
DUPLICATE_ORDERS = Counter("duplicate_orders_total", "Orders found sharing one task's tag (should stay 0)")
LEASES_EXPIRED = Counter("relay_leases_expired_total", "Running tasks whose lease ran out (moved to unknown)")
TASKS_BY_STATUS = Gauge("order_tasks", "Order tasks by status (sampled by /health and the sweeper)", ["status"])
RELAY_LAG_SECONDS = Gauge("relay_lag_seconds", "Age of the oldest claimable task")
RECONCILED_ORDERS = Counter("reconciled_order_changes_total", "Order changes found by periodic reconciliation")
WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries_total", "Webhook delivery attempts by what they led to", ["outcome"]
)  # outcome: delivered | retrying | dead
WEBHOOK_SECONDS = Histogram(
    "webhook_delivery_duration_seconds",
    "One webhook POST, until the answer or the timeout",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_PENDING = Gauge(
    "webhook_deliveries_pending",
    "Deliveries not yet delivered nor dead (pending, sending, retrying; sampled by /health)",
)
# market data (marketdata/ticks): ticks are lossy by design, so conflation is counted, not an error
TICKS_IN = Counter("market_ticks_in_total", "Ticks received from an account's upstream feed by its holder", ["account"])
TICKS_PUBLISHED = Counter("market_ticks_published_total", "Ticks published through PostgreSQL by feed holders")
TICKS_OUT = Counter("market_ticks_out_total", "Ticks sent to WebSocket clients by this instance", ["endpoint"])
TICKS_CONFLATED = Counter(
    "market_ticks_conflated_total",
    "Ticks replaced by a newer one of the same instrument before a client (or the publisher) took them",
    ["stage"],
)  # stage: publisher | client
FEED_STATE = Gauge(
    "market_feed_state",
    "1 for the state an account's upstream feed is in (held by this instance)",
    ["account", "state"],
)
FEED_SUBSCRIPTIONS = Gauge(
    "market_feed_subscriptions", "Instruments on an account's upstream feed (held by this instance)", ["account"]
)
TICK_CLIENTS = Gauge("market_tick_clients", "Tick WebSocket clients of this instance", ["account", "endpoint"])
