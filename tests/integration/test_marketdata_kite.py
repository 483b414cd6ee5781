"""Instruments and candles of a Kite account, through the real kiteconnect client against the
project's fake Kite, whose request log tells what reached "Kite"."""

from __future__ import annotations

import asyncio
import itertools
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from tests.conftest import eventually
from tests.fake_kite_thread import FakeKiteThread, kite, threaded_fakes
from tests.kite_setup import ACCOUNT, kite_client
from ticker_service.timeutil import IST

__all__ = ["kite", "threaded_fakes"]  # fixtures

INFY = 408065
SLOW_ENOUGH = {"TICKER_BROKER_TIMEOUT": "5", "TICKER_LEASE_SECONDS": "10"}  # a 60-day window is a large answer


async def count(kite: FakeKiteThread, route: str) -> int:
    return await kite.do(lambda: len(kite.fake.requests_for(route)))


async def windows(kite: FakeKiteThread) -> list[tuple[str, str]]:
    def read() -> list[tuple[str, str]]:
        return [(r.query["from"][0], r.query["to"][0]) for r in kite.fake.requests_for("market.historical")]

    return await kite.do(read)


async def test_instruments_come_from_one_dump_shared_by_two_instances(
    database_url: str, kite: FakeKiteThread, db: asyncpg.Connection
) -> None:
    token = await kite.do(kite.fake.issue_access_token)
    async with kite_client(database_url, kite, token=token) as a, kite_client(database_url, kite, token=token) as b:
        await eventually(
            lambda: db.fetchval("SELECT instrument_count FROM instrument_dumps WHERE account_id = $1", ACCOUNT)
        )
        await asyncio.sleep(1.5)  # both runtimes' refresh jobs and start-ups have had their turn
        assert await count(kite, "market.instruments.all") == 1
        r = await a.get(
            "/instruments", params={"account_id": ACCOUNT, "exchange": "nse", "segment": "NSE", "instrument_type": "eq"}
        )
        assert r.status_code == 200, r.text
        assert [i["tradingsymbol"] for i in r.json()] == ["INFY", "RELIANCE", "SBIN", "TCS"]
        infy = r.json()[0]
        assert infy == {
            "instrument_token": INFY,
            "exchange_token": "1594",
            "tradingsymbol": "INFY",
            "name": "INFOSYS",
            "last_price": infy["last_price"],
            "expiry": None,
            "strike": 0.0,
            "tick_size": 0.05,
            "lot_size": 1,
            "instrument_type": "EQ",
            "segment": "NSE",
            "exchange": "NSE",
        }
        futures = await b.get("/instruments", params={"account_id": ACCOUNT, "segment": "NFO-FUT"})
        assert [(i["tradingsymbol"], i["expiry"]) for i in futures.json()] == [
            ("BANKNIFTY25NOVFUT", "2025-11-25"),
            ("NIFTY25NOVFUT", "2025-11-25"),
        ]
        by_token = await b.get("/instruments", params={"account_id": ACCOUNT, "instrument_token": 256265})
        assert [i["tradingsymbol"] for i in by_token.json()] == ["NIFTY 50"]
        search = await b.get("/instruments", params={"account_id": ACCOUNT, "q": "usdinr"})
        assert [(i["exchange"], i["tradingsymbol"]) for i in search.json()] == [
            ("BCD", "USDINR25NOVFUT"),
            ("CDS", "USDINR25NOVFUT"),
        ]
        expiring = await b.get("/instruments", params={"account_id": ACCOUNT, "expiry": "2025-11-28"})
        assert [i["tradingsymbol"] for i in expiring.json()] == ["GOLDPETAL25NOVFUT"]
        page = await b.get("/instruments", params={"account_id": ACCOUNT, "limit": 3, "offset": 2})
        everything = await b.get("/instruments", params={"account_id": ACCOUNT, "limit": 1000})
        assert page.json() == everything.json()[2:5] and len(everything.json()) == 12
        assert await count(kite, "market.instruments.all") == 1  # every answer from PostgreSQL


async def test_200_days_of_minute_candles_come_in_four_windows_once(database_url: str, kite: FakeKiteThread) -> None:
    token = await kite.do(kite.fake.issue_access_token)
    start = datetime(2026, 3, 2, tzinfo=IST)  # a Monday
    end = start + timedelta(days=200)
    params = {
        "account_id": ACCOUNT,
        "instrument_token": INFY,
        "interval": "minute",
        "from_ts": start.isoformat(),
        "to_ts": (end - timedelta(seconds=1)).isoformat(),
    }
    async with kite_client(database_url, kite, token=token, **SLOW_ENOUGH) as c:
        r = await c.get("/history", params=params)
        assert r.status_code == 200, r.text
        candles = r.json()["candles"]
        asked = await windows(kite)
        assert len(asked) == 4
        assert asked[0][0] == "2026-03-02 00:00:00"
        for (_, to), (frm, _) in itertools.pairwise(asked):  # back to back, none overlapping
            assert datetime.fromisoformat(frm) - datetime.fromisoformat(to) == timedelta(seconds=1)
        dates = [datetime.fromisoformat(x["date"]) for x in candles]
        assert dates == sorted(set(dates))  # in order, no duplicate
        sessions: dict[date, int] = {}
        for moment in dates:
            sessions[moment.date()] = sessions.get(moment.date(), 0) + 1
        weekdays = [start.date() + timedelta(days=d) for d in range(200) if (start + timedelta(days=d)).weekday() < 5]
        assert sorted(sessions) == weekdays and set(sessions.values()) == {375}  # no gap
        assert candles[0]["date"] == "2026-03-02T09:15:00+05:30" and "oi" not in candles[0]

        again = await c.get("/history", params=params)
        assert again.json() == r.json()
        assert len(await windows(kite)) == 4  # kept in PostgreSQL: no window is read twice
        inner = await c.get(
            "/history", params=params | {"from_ts": "2026-05-04", "to_ts": "2026-05-05 23:59:59", "oi": 1}
        )
        assert len(inner.json()["candles"]) == 750 and all(x["oi"] == 0 for x in inner.json()["candles"])
        assert len(await windows(kite)) == 4
        longer = await c.get("/history", params=params | {"to_ts": (end + timedelta(days=3)).isoformat()})
        assert len(longer.json()["candles"]) > len(candles)
        assert len(await windows(kite)) == 5  # only the three new days were asked for


async def test_kite_history_refuses_bad_input_before_asking_kite(database_url: str, kite: FakeKiteThread) -> None:
    token = await kite.do(kite.fake.issue_access_token)
    good: dict[str, Any] = {
        "account_id": ACCOUNT,
        "instrument_token": INFY,
        "interval": "day",
        "from_ts": "2026-01-01",
        "to_ts": "2026-02-01",
    }
    async with kite_client(database_url, kite, token=token) as c:
        for change, field in [
            ({"instrument_token": 999999}, "instrument_token"),
            ({"interval": "week"}, "interval"),
            ({"to_ts": "2025-01-01"}, "to_ts"),
            ({"from_ts": "01/01/2026"}, "from_ts"),
        ]:
            r = await c.get("/history", params=good | change)
            assert r.status_code == 422 and r.json()["field"] == field, (change, r.text)
        assert await count(kite, "market.historical") == 0


async def test_requests_for_the_same_range_at_once_ask_kite_once(database_url: str, kite: FakeKiteThread) -> None:
    token = await kite.do(kite.fake.issue_access_token)
    params = {
        "account_id": ACCOUNT,
        "instrument_token": INFY,
        "interval": "day",
        "from_ts": "2021-01-01",
        "to_ts": "2025-12-31",
    }
    async with kite_client(database_url, kite, token=token) as c:
        answers = await asyncio.gather(*(c.get("/history", params=params) for _ in range(3)))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert answers[0].json() == answers[1].json() == answers[2].json()
        assert len(answers[0].json()["candles"]) > 1200
        assert await windows(kite) == [("2021-01-01 00:00:00", "2025-12-31 00:00:00")]  # one window (day: 2,000 days)
