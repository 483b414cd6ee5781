"""Candles from ticks: the feed's holder turns every tick into minute candles in PostgreSQL, and
`/history` with `to_ts=now` shows today's minutes the broker's history lacks, from those candles,
with the period holding now marked `"forming": true`: on Kite (the fake's historical API lagging
the market, its ticks read back from it) as on paper, and the same on an instance not holding the feed.
"""

from __future__ import annotations

import itertools
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from tests.conftest import eventually, make_client
from tests.fake_kite_thread import FakeKiteThread, kite, threaded_fakes
from tests.kite_setup import ACCOUNT, kite_client
from ticker_service.fakekite.historical import candles as fake_candles
from ticker_service.timeutil import IST

__all__ = ["kite", "threaded_fakes"]  # fixtures

INFY = 408065
STEP = Decimal("0.05")


def minute_now() -> datetime:
    now = time.time()
    return datetime.fromtimestamp(now - now % 60, IST)


async def subscribe(c: Any, account_id: str, kite: FakeKiteThread | None = None) -> None:
    r = await c.post("/subscriptions", json={"account_id": account_id, "instrument_token": INFY})
    assert r.status_code == 201, r.text
    if kite is not None:

        async def carried() -> bool:
            return any(INFY in c.subscriptions for c in await kite.do(lambda: list(kite.fake.hub.connections)))

        await eventually(carried, timeout=15)


async def history(c: Any, account_id: str, interval: str, start: datetime) -> list[dict[str, Any]]:
    params = {
        "account_id": account_id,
        "instrument_token": INFY,
        "interval": interval,
        "from_ts": start.isoformat(),
        "to_ts": str(int(time.time())),
    }
    r = await c.get("/history", params=params)
    assert r.status_code == 200, r.text
    candles: list[dict[str, Any]] = r.json()["candles"]
    return candles


def check_series(candles: list[dict[str, Any]], step: timedelta) -> None:
    """In order, one candle per label, no gap, only the last one forming."""
    dates = [datetime.fromisoformat(c["date"]) for c in candles]
    assert dates == sorted(set(dates)), dates
    for a, b in itertools.pairwise(dates):
        assert b - a == step, (a, b)
    assert all("forming" not in c for c in candles[:-1])
    for c in candles:
        assert c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"], c


def combined(candles: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "open": candles[0]["open"],
        "high": max(c["high"] for c in candles),
        "low": min(c["low"] for c in candles),
        "close": candles[-1]["close"],
        "volume": sum(c["volume"] for c in candles),
    }


async def test_every_tick_of_the_feed_goes_into_minute_candles_in_postgresql(
    database_url: str, kite: FakeKiteThread, db: asyncpg.Connection
) -> None:
    token = await kite.do(kite.fake.issue_access_token)
    async with kite_client(database_url, kite, token=token) as c:
        since = minute_now()
        await subscribe(c, ACCOUNT, kite)
        read = "SELECT * FROM tick_candles WHERE account_id = $1 AND instrument_token = $2 AND ts >= $3 ORDER BY ts"
        await eventually(lambda: db.fetch(read, ACCOUNT, INFY, since))  # the subscription's snapshot
        base = await kite.do(kite.fake.price, "NSE", "INFY")
        before = await kite.do(lambda: kite.fake.market.tick(INFY, "quote").volume)
        prices = [base + 100 * STEP, base + 250 * STEP, base - 150 * STEP, base + 21 * STEP]
        for price in prices:  # each a trade the fake sends a tick of at once
            await kite.do(kite.fake.set_price, "NSE", "INFY", str(price))

        async def settled() -> list[asyncpg.Record]:
            rows = await db.fetch(read, ACCOUNT, INFY, since)
            return rows if rows and rows[-1]["close"] == float(prices[-1]) else []

        rows = await eventually(settled)
        after = await kite.do(lambda: kite.fake.market.tick(INFY, "quote").volume)
        assert rows[0]["open"] == float(base)
        assert max(r["high"] for r in rows) == float(base + 250 * STEP)
        assert min(r["low"] for r in rows) == float(base - 150 * STEP)
        assert len(rows) <= 2 and all(r["ts"].second == 0 for r in rows)  # minute labels
        assert sum(r["volume_to"] - r["volume_from"] for r in rows) == after - before


async def test_kite_history_to_now_continues_past_the_lagging_history_with_tick_candles(
    database_url: str, kite: FakeKiteThread
) -> None:
    token = await kite.do(kite.fake.issue_access_token)
    await kite.do(kite.fake.set_historical, lag=0, all_day=True)  # closed minutes only, at any hour
    instrument = await kite.do(kite.fake.instruments.by_token, INFY)
    async with kite_client(database_url, kite, token=token) as c:
        await subscribe(c, ACCOUNT, kite)
        base = await kite.do(kite.fake.price, "NSE", "INFY")
        moves = itertools.cycle([base + 40 * STEP, base + 41 * STEP])
        start = minute_now() - timedelta(minutes=10)

        async def forming() -> list[dict[str, Any]] | None:
            price = next(moves)
            await kite.do(kite.fake.set_price, "NSE", "INFY", str(price))
            candles = await history(c, ACCOUNT, "minute", start)
            last = candles[-1] if candles else {}
            ok = last.get("forming") is True and last["close"] == float(price)
            return candles if ok and datetime.fromisoformat(last["date"]) == minute_now() else None

        candles = await eventually(forming)
        check_series(candles, timedelta(minutes=1))
        assert datetime.fromisoformat(candles[0]["date"]) == start
        # the early minutes are Kite's history; the forming one (beyond what it serves) is the ticks'
        first = fake_candles(instrument, "minute", start, start, oi=False, all_day=True)[0]
        assert [candles[0][k] for k in ("open", "high", "low", "close", "volume")] == first[1:]
        served = fake_candles(instrument, "minute", start, minute_now(), oi=False, lag=0, all_day=True)
        assert datetime.fromisoformat(served[-1][0]) < datetime.fromisoformat(candles[-1]["date"])


async def test_paper_history_to_now_ends_with_the_forming_minute(database_url: str, db: asyncpg.Connection) -> None:
    async with make_client(database_url, TICKER_PAPER_TICK_INTERVAL="0.2") as c:
        await subscribe(c, "primary")
        await eventually(lambda: db.fetchval("SELECT count(*) FROM tick_candles WHERE instrument_token = $1", INFY))
        start = minute_now() - timedelta(minutes=5)

        async def forming() -> list[dict[str, Any]] | None:
            candles = await history(c, "primary", "minute", start)
            last = candles[-1] if candles else {}
            ok = last.get("forming") is True and datetime.fromisoformat(last["date"]) == minute_now()
            return candles if ok else None

        candles = await eventually(forming)
        check_series(candles, timedelta(minutes=1))
        # today's day candle is forming too (in the session the model's, sampled; outside it the ticks')
        midnight = minute_now().replace(hour=0, minute=0)
        day = await history(c, "primary", "day", midnight)
        assert len(day) == 1 and day[0]["forming"] is True and day[0]["date"] == midnight.isoformat()


async def held_still(kite: FakeKiteThread) -> Decimal:
    """A new price, held (the fake sends one tick of it): the tick candles stop changing."""
    price: Decimal = await kite.do(kite.fake.price, "NSE", "INFY") + STEP
    await kite.do(kite.fake.set_price, "NSE", "INFY", str(price))
    return price


async def test_5minute_and_day_candles_of_the_forming_period_aggregate_the_minutes(
    database_url: str, kite: FakeKiteThread
) -> None:
    token = await kite.do(kite.fake.issue_access_token)
    await kite.do(kite.fake.set_historical, lag=0, all_day=True)
    async with kite_client(database_url, kite, token=token, TICKER_BROKER_TIMEOUT="5", TICKER_LEASE_SECONDS="10") as c:
        await subscribe(c, ACCOUNT, kite)
        midnight = minute_now().replace(hour=0, minute=0)

        async def agree() -> bool:
            price = await held_still(kite)
            minutes = await history(c, ACCOUNT, "minute", midnight)
            fives = await history(c, ACCOUNT, "5minute", midnight)
            day = await history(c, ACCOUNT, "day", midnight)
            again = await history(c, ACCOUNT, "minute", midnight)
            if minutes != again or not minutes or minutes[-1]["close"] != float(price):
                return False  # a tick or a minute boundary came between the reads: once more
            check_series(minutes, timedelta(minutes=1))
            check_series(fives, timedelta(minutes=5))
            assert minutes[-1]["forming"] is True and fives[-1]["forming"] is True
            label = datetime.fromisoformat(fives[-1]["date"])
            inside = [m for m in minutes if label <= datetime.fromisoformat(m["date"])]
            assert {k: v for k, v in fives[-1].items() if k not in ("date", "forming")} == combined(inside)
            assert len(day) == 1 and day[0]["forming"] is True and day[0]["date"] == midnight.isoformat()
            assert {k: v for k, v in day[0].items() if k not in ("date", "forming")} == combined(minutes)
            return True

        await eventually(agree, timeout=30)


async def test_an_instance_not_holding_the_feed_serves_the_same_forming_candle(
    database_url: str, kite: FakeKiteThread
) -> None:
    token = await kite.do(kite.fake.issue_access_token)
    await kite.do(kite.fake.set_historical, lag=0, all_day=True)
    async with kite_client(database_url, kite, token=token) as a, kite_client(database_url, kite, token=token) as b:
        await subscribe(a, ACCOUNT, kite)
        start = minute_now() - timedelta(minutes=3)

        async def same() -> bool:
            price = await held_still(kite)
            first = await history(a, ACCOUNT, "minute", start)
            second = await history(b, ACCOUNT, "minute", start)
            last = first[-1] if first else {}
            return first == second and last.get("forming") is True and last["close"] == float(price)

        await eventually(same)
