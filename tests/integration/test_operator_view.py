"""`/metrics` and `/health`: complete, parseable, promtool-clean, and no account id to a caller who
may not use that account; `TICKER_METRICS_KEY` turns the detail into an operator's."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import asyncpg
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SPEC_ORDER, make_client
from tests.integration.test_access import BODIES, http_routes
from ticker_service.accounts import pauses
from ticker_service.accounts.states import PauseReason
from ticker_service.db.engine import asyncpg_dsn, create_engine
from ticker_service.db.pool import create_pool
from ticker_service.orders.lifecycle.states import TaskStatus
from ticker_service.system import samples
from ticker_service.system.access import Source, declared

ALPHA, BRAVO = "acct-alpha", "acct-bravo"
KEY_ALPHA, KEY_BRAVO = "alpha-key-0123456789", "bravo-key-0123456789"
METRICS_KEY = "metrics-key-0123456789"
ACCOUNTS = {ALPHA: {}, BRAVO: {}}
KEYS = {"TICKER_API_KEYS": json.dumps({KEY_ALPHA: [ALPHA], KEY_BRAVO: [BRAVO]})}

SPEC_METRICS = {  # the integration guide's five names, with their labels
    "http_requests_total": {"method", "endpoint", "status"},
    "order_requests_total": {"operation", "account"},
    "order_execution_duration_seconds": {"operation"},
    "circuit_breaker_state": {"account"},
    "active_websocket_connections": {"account"},
}
OPERATIONS_METRICS = (  # the issue's: outbox backlog and age, tasks by status, deliveries by outcome, ticks
    "outbox_backlog_events",
    "outbox_oldest_event_age_seconds",
    "order_tasks",
    "webhook_deliveries_total",
    "webhook_deliveries_pending",
    "webhook_deliveries_dead",
    "webhook_endpoints_disabled",
    "account_state",
    "relay_lag_seconds",
    "market_ticks_in_total",
    "market_ticks_out_total",
)


def families(text: str) -> dict[str, Any]:
    """Parsed by prometheus_client's own parser (counters lose their `_total` there)."""
    out = {}
    for family in text_string_to_metric_families(text):
        out[family.name] = family
        if family.type == "counter":
            out[family.name + "_total"] = family
    return out


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # never skipped, as the browser tests' chromium: the project's set-up installs it
        pytest.fail("promtool is missing: `./run test` installs Debian's prometheus package (as root)")
    return found


def promtool_check_metrics(text: str) -> None:
    done = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_metrics_carry_the_spec_names_and_the_operations_ones_and_pass_promtool(database_url: str) -> None:
    async with make_client(database_url, {"primary": {}}) as c:
        placed = await c.post("/orders/place", json=SPEC_ORDER)
        assert placed.status_code == 201, placed.text
        text = (await c.get("/metrics")).text
    found = families(text)
    missing = [name for name in [*SPEC_METRICS, *OPERATIONS_METRICS] if name not in found]
    assert missing == []
    for name, labels in SPEC_METRICS.items():
        for sample in found[name].samples:
            assert labels <= set(sample.labels), (name, sample)
    assert any(s.labels.get("operation") == "place_order" for s in found["order_requests_total"].samples)
    # every task state has its series, so a count that fell back to 0 shows 0 (not its last value)
    states = {s.labels["status"]: s.value for s in found["order_tasks"].samples}
    assert set(states) >= {s.value for s in TaskStatus} and states["completed"] >= 1
    assert {s.labels["state"] for s in found["account_state"].samples if s.labels["account"] == "primary"} == {
        "active",
        "not_logged_in",
        "token_expired",
        "breaker_open",
    }
    promtool_check_metrics(text)


async def test_outbox_backlog_and_age_count_the_events_the_fan_out_has_not_taken(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with make_client(database_url, {"primary": {}}, WEBHOOK_ALLOW_PRIVATE="true") as c:
        hook = await c.post("/advanced/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["order_placed"]})
        assert hook.status_code == 201, hook.text
    # the service is stopped: events written now wait for a fan-out that does not run
    last = await db.fetchval("SELECT last_seq FROM account_seq WHERE account_id = 'primary'") or 0
    await db.execute("UPDATE webhooks SET start_seq = $1", last)
    await db.execute(
        "INSERT INTO outbox_events (event_id, account_id, seq, event, data, created_at) "
        "SELECT 'e' || n, 'primary', $1::bigint + n, 'order_placed', '{}'::jsonb, now() - interval '90 seconds' "
        "FROM generate_series(1, 3) AS n",
        last,
    )
    await db.execute(
        "INSERT INTO account_seq (account_id, last_seq) VALUES ('primary', $1) "
        "ON CONFLICT (account_id) DO UPDATE SET last_seq = EXCLUDED.last_seq",
        last + 3,
    )
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    pool = await create_pool(asyncpg_dsn(database_url), 1)
    try:
        sample = await samples.take(engine, pool, ["primary"])
        assert sample.outbox_backlog == 3 and 89 <= sample.outbox_oldest_seconds < 300
        samples.publish(sample)
        assert "outbox_backlog_events 3.0" in generate_latest().decode()
        await db.execute(
            "INSERT INTO webhook_cursor (account_id, last_seq) VALUES ('primary', $1) "
            "ON CONFLICT (account_id) DO UPDATE SET last_seq = EXCLUDED.last_seq",
            last + 3,
        )
        after = await samples.take(engine, pool, ["primary"])
        assert (after.outbox_backlog, after.outbox_oldest_seconds) == (0, 0)
    finally:
        await pool.close()
        await engine.dispose()


async def test_a_metrics_key_makes_health_one_word_and_metrics_an_operators(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with make_client(database_url, ACCOUNTS, TICKER_METRICS_KEY=METRICS_KEY, **KEYS) as c:
        for headers in ({}, {"X-API-Key": KEY_ALPHA}, {"X-API-Key": "not-a-key-0123456789"}):
            health = await c.get("/health", headers=headers)
            assert health.status_code == 200 and health.json() == {"status": "ok"}, health.text
            refused = await c.get("/metrics", headers=headers)
            assert refused.status_code == 401 and "metrics key" in refused.text
            assert ALPHA not in refused.text and METRICS_KEY not in refused.text
        for headers in ({"X-API-Key": METRICS_KEY}, {"Authorization": f"Bearer {METRICS_KEY}"}):
            detail = (await c.get("/health", headers=headers)).json()
            assert set(detail["accounts"]) == {ALPHA, BRAVO} and detail["status"] == "ok"
            text = (await c.get("/metrics", headers=headers)).text
            assert f'account="{ALPHA}"' in text and f'account="{BRAVO}"' in text
        await pauses.pause(db, BRAVO, PauseReason.TOKEN_EXPIRED, "Kite refused the token")
        assert (await c.get("/health")).json() == {"status": "degraded"}


async def test_without_a_metrics_key_a_caller_sees_only_its_own_accounts(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with make_client(database_url, ACCOUNTS, **KEYS) as c:
        placed = await c.post(
            "/orders/place", json=SPEC_ORDER | {"account_id": BRAVO}, headers={"X-API-Key": KEY_BRAVO}
        )
        assert placed.status_code == 201, placed.text
        await pauses.pause(db, BRAVO, PauseReason.BREAKER_OPEN, "5 network failures")
        keyless_health, keyless_metrics = await c.get("/health"), await c.get("/metrics")
        assert keyless_health.status_code == keyless_metrics.status_code == 200
        for answer in (keyless_health.text, keyless_metrics.text):
            assert ALPHA not in answer and BRAVO not in answer
        assert keyless_health.json()["status"] == "degraded"
        assert "1 problem(s) of accounts this caller may not see" in keyless_health.json()["problems"]

        alpha = {"X-API-Key": KEY_ALPHA}
        health, text = (await c.get("/health", headers=alpha)).json(), (await c.get("/metrics", headers=alpha)).text
        assert set(health["accounts"]) == {ALPHA} and BRAVO not in json.dumps(health)
        assert f'account="{ALPHA}"' in text and BRAVO not in text
        bravo = {"X-API-Key": KEY_BRAVO}
        health, text = (await c.get("/health", headers=bravo)).json(), (await c.get("/metrics", headers=bravo)).text
        assert health["accounts"][BRAVO]["state"] == "breaker_open" and ALPHA not in json.dumps(health)
        assert f'account_state{{account="{BRAVO}",state="breaker_open"}} 1.0' in text
        assert f'order_requests_total{{account="{BRAVO}",operation="place_order"}}' in text and ALPHA not in text
        assert (await c.get("/health", headers={"X-API-Key": "not-a-key-0123456789"})).status_code == 401


async def test_every_route_family_refuses_a_caller_without_a_key(database_url: str) -> None:
    """Keyless, every route that acts for an account is 401; public and signed ones name no account."""
    async with make_client(database_url, ACCOUNTS, **KEYS) as c:
        families_seen = set()
        for method, template, handler in http_routes(c.app):
            access = declared(handler)
            assert access is not None
            path = template.replace(":str", "").replace(":int", "")
            for name in ("account_id", "order_id", "task_id", "batch_id", "webhook_id", "delivery_id"):
                path = path.replace("{" + name + "}", BRAVO if name == "account_id" else "x1")
            path = path.replace("{instrument_token}", "408065").replace("{segment}", "equity")
            path = path.replace("{asset}", "app.js")  # the desk's files: public, the same for everyone
            body = BODIES.get((method, template))  # valid input: what is tested is the key, not the body
            r = await c.request(method, path, params={"account_id": BRAVO}, json=body)
            if access.source == Source.PUBLIC:
                assert r.status_code == 200 and BRAVO not in r.text, (method, path, r.status_code)
            elif access.source == Source.SIGNED:
                assert r.status_code in (401, 422) and BRAVO not in r.text, (method, path, r.status_code, r.text)
            else:
                assert r.status_code == 401, (method, path, r.status_code, r.text)
                assert BRAVO not in r.text
            families_seen.add(template.strip("/").split("/")[0])
        assert len(families_seen) >= 10, families_seen
