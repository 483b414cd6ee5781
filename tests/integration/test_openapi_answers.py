"""The OpenAPI document lists every status an operation can answer, with the error body's schema.

The expectations are read from the document itself (an operation with parameters can be refused with
400, one with a body with 413 and 415, one with an id in its path with 404 ...), so that a new route
is covered without being named here; then several of those answers are provoked for real, and each
must be a status its operation lists, with a body of the documented shape. schemathesis checks the
rest against a real server (tests/e2e/test_openapi_contract.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SPEC_ORDER, make_client, make_settings
from ticker_service.app import create_app

ALPHA, BRAVO = "acct-alpha", "acct-bravo"
KEY_ALPHA = "alpha-key-0123456789"
ACCOUNTS = {ALPHA: {"funds": 1e9}, BRAVO: {"funds": 1e9}}
KEYS = {"TICKER_API_KEYS": json.dumps({KEY_ALPHA: [ALPHA]})}
LIMITS = {"TICKER_RATE_LIMITS": "1000/60"}
PUBLIC = {"/health", "/metrics", "/ws/ticks/stats"}  # no key, no account
SIGNED = {"/postbacks/kite/{account_id}", "/accounts/{account_id}/callback"}  # their own proof, no key
ERROR_BODY = "#/components/schemas/ErrorBody"


def document(**env: str) -> dict[str, Any]:
    settings = make_settings(ACCOUNTS, **env)
    app = create_app(settings, database_url="postgresql+asyncpg://unused@127.0.0.1:1/none", migrate=False)
    return app.openapi_schema.to_schema()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "delete", "patch")
    ]


def expected_errors(path: str, operation: dict[str, Any], *, keys: bool, limits: bool) -> set[int]:
    """What the layers in front of an operation can answer, from what the document says it takes."""
    params = operation.get("parameters", [])
    body = "requestBody" in operation
    expected = {422}  # a NUL in any query value
    if params or body:
        expected.add(400)
    if body:
        expected |= {413, 415}
    if any(p["in"] == "path" for p in params):
        expected.add(404)
    if any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in params):
        expected.add(409)
    keyed = path not in PUBLIC and path not in SIGNED
    if keys and keyed:
        expected |= {401, 403}
    if path in SIGNED:
        expected.add(401)
    if limits and keyed:
        expected.add(429)
    if path not in PUBLIC:
        expected.add(503)
    return expected


def refers_to_error_body(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    refs = [schema.get("$ref")] + [s.get("$ref") for s in schema.get("oneOf", [])]
    return ERROR_BODY in refs


@pytest.mark.parametrize(("keys", "limits"), [(False, False), (True, False), (True, True)])
def test_every_operation_lists_the_errors_it_can_answer_with_the_error_body(keys: bool, limits: bool) -> None:
    doc = document(**(KEYS if keys else {}), **(LIMITS if limits else {}))
    missing = []
    for method, path, operation in operations(doc):
        responses = operation["responses"]
        for status in expected_errors(path, operation, keys=keys, limits=limits):
            response = responses.get(str(status))
            if response is None:
                missing.append(f"{method} {path}: {status}")
            elif path != "/accounts/{account_id}/callback" and not (
                path == "/health" or refers_to_error_body(response)
            ):
                missing.append(f"{method} {path}: {status} without the error body")
        assert "500" not in responses, (method, path)
    assert missing == []
    error_body = doc["components"]["schemas"]["ErrorBody"]
    assert set(error_body["required"]) == {"status_code", "detail"}
    assert {"field", "errors"} <= set(error_body["properties"])


def test_success_answers_and_metrics_are_documented() -> None:
    doc = document(**KEYS)
    paths = doc["paths"]
    place = paths["/orders/place"]["post"]["responses"]
    assert {"201", "202", "422", "503"} <= set(place)  # OrderService.status_code: placed, pending, refused, given up
    for method in ("put", "delete"):
        assert {"200", "202", "422", "503"} <= set(paths["/orders/{order_id}"][method]["responses"])
    assert {"201", "202"} <= set(paths["/advanced/batch-orders"]["post"]["responses"])
    assert "202" in paths["/tasks/{task_id}/retry"]["post"]["responses"]
    assert "503" in paths["/health"]["get"]["responses"]
    assert "302" in paths["/accounts/{account_id}/login"]["get"]["responses"]
    assert "501" in paths["/portfolio/holdings"]["get"]["responses"]
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4; charset=utf-8"]
    # a body that refuses unknown fields says so
    assert doc["components"]["schemas"]["PlaceOrderRequest"]["additionalProperties"] is False


def check(doc: dict[str, Any], method: str, path: str, answer: Any) -> None:
    """`answer` is one its operation lists, with the error body's required keys."""
    responses = doc["paths"][path][method.lower()]["responses"]
    assert str(answer.status_code) in responses, (method, path, answer.status_code, answer.text)
    body = answer.json()
    assert body["status_code"] == answer.status_code and isinstance(body["detail"], str), body


async def test_provoked_errors_are_documented_for_their_operation(database_url: str) -> None:
    env = KEYS | {"TICKER_RATE_LIMITS": "40/60", "TICKER_MAX_BODY_BYTES": "2048"}
    doc = document(**env)
    order = SPEC_ORDER | {"account_id": ALPHA}
    key = {"X-API-Key": KEY_ALPHA}
    async with make_client(database_url, ACCOUNTS, **env) as c:
        check(doc, "POST", "/orders/place", await c.post("/orders/place", json=order))  # 401
        answer = await c.post("/orders/place", json=order | {"account_id": BRAVO}, headers=key)
        assert answer.status_code == 403
        check(doc, "POST", "/orders/place", answer)
        answer = await c.get("/tasks/nope", headers=key)
        assert answer.status_code == 404
        check(doc, "GET", "/tasks/{task_id}", answer)
        answer = await c.post("/orders/place", content=json.dumps(order), headers=key | {"Content-Type": "text/plain"})
        assert answer.status_code == 415
        check(doc, "POST", "/orders/place", answer)
        answer = await c.post("/orders/place", json=order | {"tag": "x" * 4000}, headers=key)
        assert answer.status_code == 413
        check(doc, "POST", "/orders/place", answer)
        answer = await c.post("/orders/place", json=order | {"quantity": 0}, headers=key)
        assert answer.status_code == 422
        check(doc, "POST", "/orders/place", answer)
        answer = await c.get("/tasks", params={"limit": "x"}, headers=key)
        assert answer.status_code in (400, 422)
        check(doc, "GET", "/tasks", answer)
        idem = key | {"Idempotency-Key": "contract-1"}
        assert (await c.post("/orders/place", json=order, headers=idem)).status_code in (201, 202)
        answer = await c.post("/orders/place", json=order | {"quantity": 100}, headers=idem)
        assert answer.status_code == 409
        check(doc, "POST", "/orders/place", answer)
        for _ in range(40):
            answer = await c.get("/accounts", headers=key)
            if answer.status_code == 429:
                break
        assert answer.status_code == 429 and answer.headers["Retry-After"]
        check(doc, "GET", "/accounts", answer)
