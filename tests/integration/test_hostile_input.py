"""Bad input never gets a 5xx: every operation of the OpenAPI document is sent NUL characters in each
path and query parameter, numbers past PostgreSQL's bigint, bodies nested 1,000 levels deep, NUL in
every string of its body and bodies of another media type; the answer is a 4xx naming what is wrong.
Numbers are strict (a quantity is a JSON integer, a price a JSON number) and a key given twice in one
object is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import SPEC_ORDER, make_client

LIMIT_ORDER = SPEC_ORDER | {"order_type": "LIMIT", "price": 18000.0, "tag": "mine"}
# a valid body for each operation that takes one
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/orders/place"): LIMIT_ORDER,
    ("PUT", "/orders/{order_id}"): {"price": 18001.0},
    ("POST", "/advanced/batch-orders"): {"orders": [LIMIT_ORDER, LIMIT_ORDER], "rollback_mode": "cancel"},
    ("POST", "/advanced/webhooks"): {
        "url": "https://93.184.215.14/hook",
        "events": ["order_placed"],
        "secret": "a-secret-of-mine",
    },
    ("PUT", "/accounts/{account_id}/session"): {"access_token": "a-token"},
    ("POST", "/subscriptions"): {"instruments": ["NSE:INFY"], "mode": "full"},
}
HUGE_NUMBERS = ["9223372036854775808", "-9223372036854775809", "1e400", "nan", "inf", "1" * 50]


async def operations(c: AsyncTestClient[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    document = (await c.get("/schema/openapi.json")).json()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "delete", "patch")
    ]


def fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def named(answer: Any, name: str) -> bool:
    return name in answer.text


async def counted_5xx(c: AsyncTestClient[Any]) -> float:
    """Requests this process has counted as answered 5xx (`http_requests_total`)."""
    lines = (await c.get("/metrics")).text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("http_requests_total{") and 'status="5' in line
    )


async def test_nul_and_huge_numbers_in_parameters_of_every_operation_are_4xx_naming_them(database_url: str) -> None:
    async with make_client(database_url) as c:
        tried = 0
        failures_before = await counted_5xx(c)
        for method, path, operation in await operations(c):
            params = operation.get("parameters", [])
            body = BODIES.get((method, path))
            path_names = [p["name"] for p in params if p["in"] == "path"]
            plain = {name: "x1" for name in path_names}
            for p in params:
                if p["in"] not in ("path", "query"):
                    continue
                is_number = any(t in json.dumps(p.get("schema", {})) for t in ('"integer"', '"number"'))
                for value in ["a\x00b", *(HUGE_NUMBERS if is_number else [])]:
                    if p["in"] == "path":
                        url, query = fill(path, plain | {p["name"]: value.replace("\x00", "%00")}), {}
                    else:
                        url, query = fill(path, plain), {p["name"]: value}
                    r = await c.request(method, url, params=query, json=body)
                    tried += 1
                    assert r.status_code < 500, (method, path, p["name"], value, r.status_code, r.text)
                    if "\x00" in value or (is_number and r.status_code in (400, 422)):
                        assert 400 <= r.status_code < 500 and named(r, p["name"]), (method, path, p["name"], r.text)
        assert tried > 50
        assert await counted_5xx(c) == failures_before  # nor counted as one in the metrics


async def test_bodies_with_nul_deep_nesting_or_another_media_type_are_refused(database_url: str) -> None:
    async with make_client(database_url) as c:
        with_body = [(m, p) for m, p, op in await operations(c) if "requestBody" in op]
        assert set(with_body) == set(BODIES), "give every operation with a body a valid one in BODIES"
        for method, path in with_body:
            url = fill(path, {"order_id": "1", "account_id": "primary"})
            for deep in ("[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000):
                r = await c.request(method, url, content=deep, headers={"Content-Type": "application/json"})
                assert r.status_code == 400, (method, path, r.text)
            valid = json.dumps(BODIES[(method, path)])
            for media in ("text/plain", "application/x-www-form-urlencoded", None):
                headers = {"Content-Type": media} if media else {}
                r = await c.request(method, url, content=valid, headers=headers)
                assert r.status_code == 415 and "Content-Type" in r.text, (method, path, media, r.text)
            for field, poisoned in _with_nul_in_each_string(BODIES[(method, path)]):
                r = await c.request(method, url, json=poisoned)
                assert r.status_code == 422, (method, path, field, r.text)
                assert r.json()["field"] == field, (method, path, field, r.text)


def _with_nul_in_each_string(body: Any, path: str = "") -> list[tuple[str, Any]]:
    """(field path, the body with a NUL in that field's string) for every string in the body."""
    out: list[tuple[str, Any]] = []
    if isinstance(body, str):
        return [(path, body[:1] + "\x00" + body[1:])]
    if isinstance(body, dict):
        for key, value in body.items():
            for field, poisoned in _with_nul_in_each_string(value, f"{path}.{key}" if path else key):
                out.append((field, body | {key: poisoned}))
    if isinstance(body, list):
        for index, value in enumerate(body):
            for field, poisoned in _with_nul_in_each_string(value, f"{path}[{index}]"):
                out.append((field, [*body[:index], poisoned, *body[index + 1 :]]))
    return out


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": "1e1"}, "quantity"),
        ({"quantity": "50"}, "quantity"),
        ({"quantity": 50.0}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"price": "18000"}, "price"),
        ({"expires_in": "30"}, "expires_in"),
    ],
)
async def test_numbers_are_json_numbers_of_the_right_kind(
    client: AsyncTestClient[Any], change: dict[str, Any], field: str
) -> None:
    r = await client.post("/orders/place", json=LIMIT_ORDER | change)
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    leg = await client.post("/advanced/batch-orders", json={"orders": [LIMIT_ORDER, LIMIT_ORDER | change]})
    assert leg.status_code == 422 and leg.json()["field"] == f"orders[1].{field}", leg.text


async def test_a_whole_price_is_a_number_too(client: AsyncTestClient[Any]) -> None:
    r = await client.post("/orders/place", json=LIMIT_ORDER | {"price": 18000})
    assert r.status_code == 201, r.text


ORDER_FIELDS = json.dumps({k: v for k, v in LIMIT_ORDER.items() if k not in ("quantity", "price")})[1:-1]


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/orders/place", '{"quantity": 1, %s, "price": 18000.0, "quantity": 50}', "quantity"),
        ("/orders/place", '{"quantity" : 1, %s, "price": 18000.0, "quantity" : 50}', "quantity"),
        (
            "/orders/place",
            '{%s, "quantity": 50, "price": 18000.0, "account_id": "x", "account_id": "primary"}',
            "account_id",
        ),
        ("/advanced/batch-orders", '{"orders": [{%s, "quantity": 50, "price": 1.0, "price": 18000.0}]}', "price"),
    ],
)
async def test_a_key_given_twice_in_one_object_is_refused(
    client: AsyncTestClient[Any], url: str, body: str, field: str
) -> None:
    r = await client.post(url, content=body % ORDER_FIELDS, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == field, r.text


async def test_bodies_without_duplicates_pass_however_they_are_written(client: AsyncTestClient[Any]) -> None:
    for body in (
        json.dumps(LIMIT_ORDER | {"tag": "quantity"}),  # a key's name as a value
        json.dumps(LIMIT_ORDER | {"tag": 'a":b'}),  # a quote and a colon inside a string
        json.dumps(LIMIT_ORDER, indent=2),
        json.dumps(LIMIT_ORDER, separators=(" , ", " : ")),
    ):
        r = await client.post("/orders/place", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 201, (body, r.text)
    r = await client.post(
        "/orders/place", content=json.dumps(LIMIT_ORDER), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("url", "field"),
    [("http://.com/", "url"), ("http://a\x00b.example.com/", "url"), ("http://ex ample.com/", "url")],
)
async def test_webhook_urls_that_cannot_be_used_are_422_naming_url(
    client: AsyncTestClient[Any], url: str, field: str
) -> None:
    r = await client.post("/advanced/webhooks", json={"url": url, "events": ["order_placed"]})
    assert r.status_code == 422 and r.json()["field"] == field, r.text


async def test_offsets_past_bigint_are_422_naming_offset(client: AsyncTestClient[Any]) -> None:
    for url in ("/tasks", "/orders", "/advanced/webhooks/wh_x/deliveries"):
        r = await client.get(url, params={"offset": str(2**63)})
        assert r.status_code in (404, 422), (url, r.text)
        if r.status_code == 422:
            assert r.json()["field"] == "offset", r.text
    assert (await client.get("/tasks", params={"offset": str(2**63 - 1)})).status_code == 200
