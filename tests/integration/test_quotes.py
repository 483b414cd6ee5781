"""`GET /quote` and `GET /quote/ltp` in Kite's shapes: the paper exchange's quote is its price model
with the depth the paper feed sends; a Kite account answers from its feed's fresh ticks without a call
upstream, asks Kite for the rest, and never more than once a second."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg

from tests.conftest import eventually, make_client
from tests.fake_kite_thread import FakeKiteThread, start_threaded_fake, threaded_fakes
from tests.kite_setup import ACCOUNT, kite_client

__all__ = ["threaded_fakes"]

QUOTE_FIELDS = {"instrument_token", "timestamp", "last_price", "volume", "ohlc", "depth", "net_change"}
QUOTE_FIELDS |= {"lower_circuit_limit", "upper_circuit_limit", "buy_quantity", "sell_quantity", "last_quantity"}
INFY = 408065


async def test_paper_quotes_and_last_prices(database_url: str) -> None:
    async with make_client(database_url) as c:
        r = await c.get("/quote?i=NSE:INFY&i=NFO:NIFTY25NOVFUT&i=NSE:NOSUCH")
        assert r.status_code == 200, r.text
        quotes: dict[str, Any] = r.json()
        assert list(quotes) == ["NSE:INFY", "NFO:NIFTY25NOVFUT"]  # the unknown one left out, as Kite does
        infy = quotes["NSE:INFY"]
        assert set(infy) >= QUOTE_FIELDS and infy["instrument_token"] == INFY
        assert abs(infy["last_price"] - 1500.25) <= 1500.25 * 0.003
        buy, sell = infy["depth"]["buy"], infy["depth"]["sell"]
        assert len(buy) == len(sell) == 5
        assert buy[0]["price"] < infy["last_price"] < sell[0]["price"]
        assert (infy["lower_circuit_limit"], infy["upper_circuit_limit"]) == (1200.2, 1800.3)  # 20 % of 1500.25
        ltp = (await c.get("/quote/ltp?i=NSE:INFY")).json()
        assert set(ltp) == {"NSE:INFY"} and ltp["NSE:INFY"]["instrument_token"] == INFY
        assert abs(ltp["NSE:INFY"]["last_price"] - 1500.25) <= 1500.25 * 0.003
        bad = await c.get("/quote?i=INFY")
        assert bad.status_code == 422 and bad.json()["field"] == "i", bad.text
        assert (await c.get("/quote")).status_code in (400, 422)


async def test_kite_quotes_come_from_fresh_ticks_else_from_kite_at_most_once_a_second(
    database_url: str, db: asyncpg.Connection, threaded_fakes: list[FakeKiteThread]
) -> None:
    fake = await start_threaded_fake(threaded_fakes)
    token = await fake.do(fake.fake.issue_access_token)
    async with kite_client(database_url, fake, token=token) as c:
        q = f"account_id={ACCOUNT}"
        r = await c.post("/subscriptions", json={"account_id": ACCOUNT, "instrument_token": INFY, "mode": "full"})
        assert r.status_code == 201, r.text
        await eventually(
            lambda: db.fetchval("SELECT count(*) FROM market_ticks WHERE instrument_token = $1", INFY), timeout=15
        )

        async def answered(path: str) -> dict[str, Any]:
            got = await c.get(path)
            assert got.status_code == 200, got.text
            body: dict[str, Any] = got.json()
            return body

        # the subscribed instrument: from the feed's tick, nothing asked of Kite
        cached = await answered(f"/quote?i=NSE:INFY&{q}")
        assert set(cached["NSE:INFY"]) >= QUOTE_FIELDS and len(cached["NSE:INFY"]["depth"]["buy"]) == 5
        assert (await answered(f"/quote/ltp?i=NSE:INFY&{q}"))["NSE:INFY"]["instrument_token"] == INFY
        assert await fake.do(fake.fake.requests_for, "market.quote") == []
        assert await fake.do(fake.fake.requests_for, "market.quote.ltp") == []
        # another: from Kite, in Kite's own shape, and three at once are sent a second apart at least
        fetched = await answered(f"/quote?i=NSE:SBIN&{q}")
        assert set(fetched) == {"NSE:SBIN"} and set(fetched["NSE:SBIN"]) >= QUOTE_FIELDS
        answers = await asyncio.gather(*(answered(f"/quote/ltp?i=NSE:SBIN&i=NSE:INFY&{q}") for _ in range(3)))
        assert all(set(a) == {"NSE:SBIN", "NSE:INFY"} for a in answers)
        ltps = await fake.do(fake.fake.requests_for, "market.quote.ltp")
        quotes = await fake.do(fake.fake.requests_for, "market.quote")
        assert len(ltps) == 3 and len(quotes) == 1
        arrivals = sorted(r.arrived_monotonic for r in ltps + quotes)
        assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(arrivals))
