"""`/instruments` on paper accounts over HTTP, and who may ask for an account's market data."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from tests.conftest import SPEC_ORDER, make_client
from ticker_service.marketdata.instruments.expiry import Holidays, monthly_expiries
from ticker_service.timeutil import today_ist

ALPHA, BRAVO = "acct-alpha", "acct-bravo"
KEY_ALPHA = "alpha-key-0123456789"
KEY_ALL = "every-key-0123456789"
ACCOUNTS: dict[str, Any] = {ALPHA: {}, BRAVO: {}}
ENV = {"TICKER_API_KEYS": json.dumps({KEY_ALPHA: [ALPHA], KEY_ALL: ["*"]})}


async def test_paper_instruments_filter_and_page(database_url: str) -> None:
    async with make_client(database_url) as c:
        r = await c.get("/instruments", params={"tradingsymbol": "nifty25novfut"})
        assert r.status_code == 200, r.text
        assert [(i["instrument_token"], i["lot_size"], i["expiry"]) for i in r.json()] == [(12602626, 50, "2025-11-25")]
        expiries = monthly_expiries(today_ist(), 3, Holidays())
        futures = await c.get("/instruments", params={"name": "NIFTY", "segment": "NFO-FUT", "limit": 1000})
        listed = {i["expiry"] for i in futures.json()}
        assert {e.isoformat() for e in expiries} <= listed  # the day's three monthly contracts
        front = expiries[0]
        chain = await c.get(
            "/instruments", params={"name": "banknifty", "expiry": front.isoformat(), "instrument_type": "CE"}
        )
        calls = chain.json()
        assert len(calls) == 21 and all(i["segment"] == "NFO-OPT" and i["strike"] > 0 for i in calls)
        assert all(date.fromisoformat(i["expiry"]) == front for i in calls)
        equities = await c.get("/instruments", params={"exchange": "NSE", "limit": 2, "offset": 1})
        assert [i["tradingsymbol"] for i in equities.json()] == ["ICICIBANK", "INFY"]
        assert (await c.get("/instruments", params={"q": "STATE BANK"})).json()[0]["tradingsymbol"] == "SBIN"
        for params, field in [
            ({"expiry": "next month"}, "expiry"),
            ({"limit": 5000}, "limit"),
            ({"instrument_token": "x"}, "instrument_token"),
        ]:
            bad = await c.get("/instruments", params=params)
            assert bad.status_code == 422 and bad.json()["field"] == field, bad.text


async def test_a_key_that_may_not_use_the_account_is_answered_as_for_an_unknown_account(database_url: str) -> None:
    history = {"instrument_token": 408065, "from_ts": "2026-11-23", "to_ts": "2026-11-24", "interval": "day"}
    async with make_client(database_url, ACCOUNTS, **ENV) as c:
        for path, params in [("/instruments", {}), ("/history", history)]:
            allowed = await c.get(path, params=params | {"account_id": ALPHA}, headers={"X-API-Key": KEY_ALPHA})
            assert allowed.status_code == 200, allowed.text
            answers = [
                await c.get(path, params=params | {"account_id": account}, headers={"X-API-Key": key})
                for account, key in [(BRAVO, KEY_ALPHA), ("nobody", KEY_ALPHA), ("nobody", KEY_ALL)]
            ]
            assert {(a.status_code, a.text) for a in answers} == {(answers[0].status_code, answers[0].text)}
            assert answers[0].status_code == 403 and BRAVO not in answers[0].text
            default = await c.get(path, params=params, headers={"X-API-Key": KEY_ALPHA})  # primary: not alpha's
            assert (default.status_code, default.text) == (answers[0].status_code, answers[0].text)
            assert (await c.get(path, params=params | {"account_id": ALPHA})).status_code == 401  # no key


async def test_orders_on_a_rolled_contract_pass_the_intake_checks(database_url: str) -> None:
    front = monthly_expiries(today_ist(), 1, Holidays())[0]
    async with make_client(database_url) as c:
        listed = await c.get(
            "/instruments", params={"name": "NIFTY", "segment": "NFO-FUT", "expiry": front.isoformat()}
        )
        symbol = listed.json()[0]["tradingsymbol"]
        order = SPEC_ORDER | {"tradingsymbol": symbol, "order_type": "LIMIT", "price": 18000}
        placed = await c.post("/orders/place", json=order)
        assert placed.status_code in (201, 202), placed.text
        wrong_lot = await c.post("/orders/place", json=order | {"quantity": 30})
        assert wrong_lot.status_code == 422 and wrong_lot.json()["field"] == "quantity", wrong_lot.text
        wrong_tick = await c.post("/orders/place", json=order | {"price": 18000.03})
        assert wrong_tick.status_code == 422 and wrong_tick.json()["field"] == "price", wrong_tick.text
