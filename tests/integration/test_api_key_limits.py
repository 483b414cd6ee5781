"""Per API key rate limits (`TICKER_RATE_LIMITS`): off by default; when set, a key past its budget gets
429 with `Retry-After`, the budget is shared by every instance (it is kept in PostgreSQL), other keys
and public routes are not affected."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import make_client
from ticker_service.settings import SettingsError, load_settings

ALICE, BOB = "alice-key-0123456789", "bob-key-0123456789ab"
KEYS = {"TICKER_API_KEYS": json.dumps({ALICE: ["*"], BOB: ["*"]})}


async def test_rate_limits_are_off_by_default(database_url: str) -> None:
    async with make_client(database_url, **KEYS) as c:
        answers = await asyncio.gather(*(c.get("/tasks", headers={"X-API-Key": ALICE}) for _ in range(30)))
        assert {r.status_code for r in answers} == {200}


async def test_a_key_past_its_budget_gets_429_with_retry_after_on_every_instance(database_url: str) -> None:
    env = KEYS | {"TICKER_RATE_LIMITS": "5/60"}
    async with make_client(database_url, **env) as one, make_client(database_url, **env) as two:
        alice = {"X-API-Key": ALICE}
        served = [await one.get("/tasks", headers=alice) for _ in range(3)]
        served += [await two.get("/orders", headers=alice) for _ in range(2)]
        assert [r.status_code for r in served] == [200] * 5
        for instance in (one, two):
            refused = await instance.get("/tasks", headers=alice)
            assert refused.status_code == 429, refused.text
            assert 1 <= int(refused.headers["Retry-After"]) <= 61
            assert "X-API-Key" in refused.json()["detail"] and ALICE not in refused.text
        assert (await two.get("/tasks", headers={"X-API-Key": BOB})).status_code == 200  # a budget per key
        assert (await one.get("/health")).status_code == 200  # public routes are not counted


async def test_a_budget_comes_back_as_its_window_passes(database_url: str) -> None:
    env = KEYS | {"TICKER_RATE_LIMITS": "2/1"}
    async with make_client(database_url, **env) as c:
        bob = {"X-API-Key": BOB}
        assert [(await c.get("/tasks", headers=bob)).status_code for _ in range(2)] == [200, 200]
        refused = await c.get("/tasks", headers=bob)
        assert refused.status_code == 429
        await asyncio.sleep(float(refused.headers["Retry-After"]))
        assert (await c.get("/tasks", headers=bob)).status_code == 200


@pytest.mark.parametrize("raw", ["ten/1", "5", "5/0", "0/1", "5/-1", "5/1,x"])
def test_malformed_rate_limits_name_the_variable(raw: str) -> None:
    with pytest.raises(SettingsError, match="TICKER_RATE_LIMITS"):
        load_settings({"TICKER_RATE_LIMITS": raw})


def test_rate_limits_parse() -> None:
    settings = load_settings({"TICKER_RATE_LIMITS": "10/1, 300/60"})
    assert settings.accounts.rate_limits == ((10, 1.0), (300, 60.0))
    assert load_settings({}).accounts.rate_limits == ()
