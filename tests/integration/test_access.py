"""Nobody acts for an account that is not theirs (invariant 7), checked over the whole route table.

Every route of the application must declare how its account is found; then every route is called
with a key of another account, aimed at that account's objects: the answer is 404 or 403, never
names the account, and nothing in the database changes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from litestar import Litestar, get
from litestar.routes import HTTPRoute, WebSocketRoute
from litestar.testing import AsyncTestClient

from tests.conftest import SPEC_ORDER, eventually, make_client
from tests.webhook_receiver import Receiver, receivers, start_receiver
from ticker_service.system.access import Source, access_guard, declared
from ticker_service.system.errors import EXCEPTION_HANDLERS

__all__ = ["receivers"]  # the fixture

ALPHA, BRAVO = "acct-alpha", "acct-bravo"
KEY_ALPHA = "alpha-key-0123456789"
KEY_BRAVO = "bravo-key-0123456789"
ACCOUNTS = {ALPHA: {"funds": 1e9}, BRAVO: {"funds": 1e9}}
ENV = {
    "TICKER_API_KEYS": json.dumps({KEY_ALPHA: [ALPHA], KEY_BRAVO: [BRAVO]}),
    "WEBHOOK_ALLOW_PRIVATE": "true",
}
RESTING = SPEC_ORDER | {"order_type": "LIMIT", "price": 18000}  # far below the market: stays OPEN

# A valid body for each route that takes one, aimed at bravo
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/orders/place"): RESTING | {"account_id": BRAVO},
    ("PUT", "/orders/{order_id:str}"): {"price": 500},
    ("POST", "/advanced/batch-orders"): {"account_id": BRAVO, "orders": [RESTING]},
    ("POST", "/advanced/webhooks"): {"account_id": BRAVO, "url": "http://127.0.0.1:9/x", "events": ["order_placed"]},
    ("PUT", "/accounts/{account_id:str}/session"): {"access_token": "a-token-of-bravo"},
    ("POST", "/postbacks/kite/{account_id:str}"): {"order_id": "1", "order_timestamp": "2026-11-29 10:00:00"},
    ("POST", "/subscriptions"): {"account_id": BRAVO, "instrument_token": 408065},
}


def as_alpha() -> dict[str, str]:
    return {"X-API-Key": KEY_ALPHA}


def as_bravo() -> dict[str, str]:
    return {"X-API-Key": KEY_BRAVO}


async def snapshot(db: asyncpg.Connection) -> dict[str, Any]:
    """What a request could change: tasks, the broker's book, events, batches, webhooks, deliveries."""
    return {
        "tasks": [tuple(r) for r in await db.fetch("SELECT task_id, status, params::text FROM order_tasks ORDER BY 1")],
        "book": [
            tuple(r)
            for r in await db.fetch("SELECT order_id, status, price, quantity, modified FROM paper_orders ORDER BY 1")
        ],
        "events": await db.fetchval("SELECT count(*) FROM outbox_events"),
        "batches": [tuple(r) for r in await db.fetch("SELECT batch_id, status FROM batches ORDER BY 1")],
        "webhooks": [tuple(r) for r in await db.fetch("SELECT webhook_id, active FROM webhooks ORDER BY 1")],
        "deliveries": [
            tuple(r) for r in await db.fetch("SELECT delivery_id, status, attempts FROM webhook_deliveries ORDER BY 1")
        ],
        "subscriptions": [tuple(r) for r in await db.fetch("SELECT * FROM market_subscriptions ORDER BY 1, 2")],
    }


async def bravos_objects(c: AsyncTestClient[Any], receiver: Receiver, db: asyncpg.Connection) -> dict[str, str]:
    placed = await c.post("/orders/place", json=RESTING | {"account_id": BRAVO}, headers=as_bravo())
    assert placed.status_code == 201 and placed.json()["order"]["status"] == "OPEN", placed.text
    batch = await c.post("/advanced/batch-orders", json={"account_id": BRAVO, "orders": [RESTING]}, headers=as_bravo())
    assert batch.status_code == 201, batch.text
    hook = await c.post(
        "/advanced/webhooks",
        json={"account_id": BRAVO, "url": receiver.url, "events": ["order_placed"]},
        headers=as_bravo(),
    )
    assert hook.status_code == 201, hook.text
    webhook_id = hook.json()["webhook_id"]
    ping = await c.post(f"/advanced/webhooks/{webhook_id}/test", headers=as_bravo())
    assert ping.status_code == 202
    await eventually(lambda: db.fetchval("SELECT bool_and(status = 'delivered') FROM webhook_deliveries"))
    subscribed = await c.post(
        "/subscriptions", json={"account_id": BRAVO, "instrument_token": 408065}, headers=as_bravo()
    )
    assert subscribed.status_code == 201, subscribed.text
    return {
        "order_id": placed.json()["order_id"],
        "task_id": placed.json()["task_id"],
        "batch_id": batch.json()["batch_id"],
        "webhook_id": webhook_id,
        "delivery_id": ping.json()["delivery_id"],
        "account_id": BRAVO,
        "instrument_token": "408065",  # DELETE /subscriptions/{instrument_token}: one of bravo's
        "segment": "equity",  # GET /user/margins/{segment}: not an id, the account is the query's
        "asset": "app.js",  # GET /desk/assets/{asset}: public, the same for everyone
    }


def http_routes(app: Litestar) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) of every HTTP route but Litestar's own documentation."""
    out = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method not in ("HEAD", "OPTIONS"):
                    out.append((method, route.path, handler))
    return out


def fill(template: str, ids: dict[str, str]) -> str:
    path = template
    for name, value in ids.items():
        path = path.replace("{" + name + ":str}", value)
    assert "{" not in path, f"no id of bravo for a parameter of {template}; add one to bravos_objects"
    return path


async def test_every_route_declares_how_its_account_is_found(database_url: str) -> None:
    async with make_client(database_url, ACCOUNTS, **ENV) as c:
        app = c.app
        undeclared = [f"{method} {path}" for method, path, handler in http_routes(app) if declared(handler) is None]
        sockets = [r for r in app.routes if isinstance(r, WebSocketRoute)]
        undeclared += [r.path for r in sockets if declared(r.route_handler) is None]
        assert undeclared == []
        assert len(http_routes(app)) >= 18 and sockets  # the walk sees the real table


async def test_a_route_without_a_declaration_is_refused_by_the_guard() -> None:
    @get("/undeclared", sync_to_thread=False)
    def undeclared() -> str:
        return "should never run"

    app = Litestar([undeclared], middleware=[access_guard], exception_handlers=EXCEPTION_HANDLERS)
    async with AsyncTestClient(app=app) as c:
        r = await c.get("/undeclared")
        assert r.status_code == 500 and "should never run" not in r.text


async def test_another_accounts_key_changes_nothing_and_learns_nothing_on_any_route(
    database_url: str, db: asyncpg.Connection, receivers: list[Receiver]
) -> None:
    receiver = await start_receiver(receivers)
    async with make_client(database_url, ACCOUNTS, **ENV) as c:
        ids = await bravos_objects(c, receiver, db)
        before = await snapshot(db)
        checked = []
        for method, template, handler in http_routes(c.app):
            access = declared(handler)
            assert access is not None
            path = fill(template, ids)
            body = BODIES.get((method, template))
            if method in ("POST", "PUT") and body is None and handler.resolve_data_dto() is None:
                signature = handler.parsed_fn_signature.parameters
                assert "data" not in signature, f"add a body for {method} {template} to BODIES"
            for query in ({}, {"account_id": BRAVO}):
                r = await c.request(method, path, params=query, json=body, headers=as_alpha())
                if access.source == Source.PUBLIC:
                    assert method == "GET", f"{method} {template} acts for nobody? declare its account"
                    assert BRAVO not in r.text, (method, path, r.text)  # health, metrics: only alpha's
                elif access.source == Source.SIGNED:  # no key: the request's own proof is missing here
                    assert r.status_code == 401 and BRAVO not in r.text, (method, path, r.status_code, r.text)
                elif access.source == Source.VISIBLE and not query:
                    assert r.status_code == 200, (method, path, r.text)  # a listing: of alpha's things only
                    assert all(value not in r.text for value in ids.values()), (method, path, r.text)
                else:
                    assert r.status_code in (403, 404), (method, path, query, r.status_code, r.text)
                    assert BRAVO not in r.text, (method, path, query, r.text)
                checked.append((method, template, bool(query)))
        await asyncio.sleep(0.3)  # anything a request set off has had time to happen
        assert await snapshot(db) == before
        assert len({(m, t) for m, t, _ in checked}) >= 15


async def test_modify_and_cancel_of_another_accounts_order_leave_it_untouched(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with make_client(database_url, ACCOUNTS, **ENV) as c:
        placed = await c.post("/orders/place", json=RESTING | {"account_id": BRAVO}, headers=as_bravo())
        order_id = placed.json()["order_id"]
        before = await snapshot(db)
        modify = await c.put(f"/orders/{order_id}", json={"price": 19900}, headers=as_alpha())
        cancel = await c.delete(f"/orders/{order_id}", headers=as_alpha())
        named = await c.put(f"/orders/{order_id}?account_id={BRAVO}", json={"price": 19900}, headers=as_alpha())
        assert (modify.status_code, cancel.status_code, named.status_code) == (404, 404, 403)
        assert all(BRAVO not in r.text for r in (modify, cancel, named))
        # the same id, unknown to everyone, answers exactly alike
        ghost = await c.put("/orders/999999999999", json={"price": 19900}, headers=as_alpha())
        expected = modify.json()["detail"].replace(order_id, "999999999999")
        assert (ghost.status_code, ghost.json()["detail"]) == (404, expected)
        await asyncio.sleep(0.5)  # a task, had one been written, would have been executed by now
        assert await snapshot(db) == before
        row = await db.fetchrow("SELECT status, price FROM paper_orders WHERE order_id = $1", order_id)
        assert (row["status"], float(row["price"])) == ("OPEN", 18000.0)
        # and its owner can still do both
        mine = await c.put(f"/orders/{order_id}", json={"price": 18050}, headers=as_bravo())
        assert mine.status_code == 200 and mine.json()["status"] == "completed", mine.text


@pytest.mark.parametrize(
    "path", ["/tasks/{task_id}", "/advanced/batch-orders/{batch_id}", "/advanced/webhooks/{webhook_id}"]
)
async def test_an_id_of_another_account_answers_as_one_that_does_not_exist(
    database_url: str, db: asyncpg.Connection, receivers: list[Receiver], path: str
) -> None:
    receiver = await start_receiver(receivers)
    async with make_client(database_url, ACCOUNTS, **ENV) as c:
        ids = await bravos_objects(c, receiver, db)
        real = path.format(**ids)
        made_up = path.format(**{k: v[:-4] + "ffff" for k, v in ids.items()})
        theirs, nobodys = await c.get(real, headers=as_alpha()), await c.get(made_up, headers=as_alpha())
        assert theirs.status_code == nobodys.status_code == 404
        assert theirs.json()["detail"].replace(real.rsplit("/", 1)[1], "") == nobodys.json()["detail"].replace(
            made_up.rsplit("/", 1)[1], ""
        )
        assert (await c.get(real, headers=as_bravo())).status_code == 200


async def test_litestars_own_routes_still_answer(database_url: str) -> None:
    """OPTIONS (made by Litestar for every path), the OpenAPI document, and an unknown path."""
    async with make_client(database_url, ACCOUNTS, **ENV) as c:
        options = await c.options("/orders/place")
        assert options.status_code == 204 and "POST" in options.headers["allow"]
        assert (await c.get("/schema/openapi.json")).status_code == 200
        assert (await c.get("/no/such/route", headers=as_alpha())).status_code == 404


async def test_public_routes_need_no_key_and_the_others_do(database_url: str) -> None:
    async with make_client(database_url, ACCOUNTS, **ENV) as c:
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200
        for page in ("/desk", "/desk/assets/app.js"):  # the desk's files hold no data: its calls carry the key
            assert (await c.get(page)).status_code == 200
        keyless = await c.get("/tasks")
        assert keyless.status_code == 401 and "X-API-Key" in keyless.text
        assert (await c.get("/tasks", headers={"X-API-Key": "not-a-key-0123456789"})).status_code == 401
