"""`/history` on paper accounts: candles from the price model on NSE sessions, the same every time,
and a 422 that names the field for each bad input."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from tests.conftest import make_client
from ticker_service.brokers.paper.prices import price_at
from ticker_service.instruments import load_instruments
from ticker_service.timeutil import IST

INFY = 408065
NIFTY_FUT = 12602626


async def history(c: Any, **params: Any) -> Any:
    return await c.get("/history", params=params)


async def test_a_day_of_minute_candles_is_the_session_and_agrees_with_the_price_model(database_url: str) -> None:
    async with make_client(database_url) as c:
        r = await history(
            c, instrument_token=INFY, from_ts="2026-11-23", to_ts="2026-11-23T23:59:59", interval="minute"
        )
        assert r.status_code == 200, r.text
        body = r.json()
        candles = body["candles"]
        assert body["instrument_token"] == INFY and body["interval"] == "minute"
        assert len(candles) == 375
        assert candles[0]["date"] == "2026-11-23T09:15:00+05:30" and candles[-1]["date"] == "2026-11-23T15:29:00+05:30"
        assert set(candles[0]) == {"date", "open", "high", "low", "close", "volume"}
        infy = load_instruments().get("NSE", "INFY")
        assert infy is not None
        first = datetime(2026, 11, 23, 9, 15, tzinfo=IST).timestamp()
        assert Decimal(repr(candles[0]["open"])) == price_at(infy, first)
        for candle in candles:
            assert candle["low"] <= min(candle["open"], candle["close"]) <= max(candle["open"], candle["close"])
            assert max(candle["open"], candle["close"]) <= candle["high"] and candle["volume"] > 0
        again = await history(
            c, instrument_token=INFY, from_ts="2026-11-23", to_ts="2026-11-23T23:59:59", interval="minute"
        )
        assert again.json() == body


async def test_a_week_of_day_candles_is_five_and_epoch_seconds_work(database_url: str) -> None:
    monday = int(datetime(2026, 11, 23, tzinfo=IST).timestamp())
    sunday_night = int(datetime(2026, 11, 29, 23, 59, tzinfo=IST).timestamp())
    async with make_client(database_url) as c:
        r = await history(c, instrument_token=NIFTY_FUT, from_ts=monday, to_ts=sunday_night, interval="day", oi="true")
        assert r.status_code == 200, r.text
        candles = r.json()["candles"]
        assert [x["date"][:10] for x in candles] == [
            "2026-11-23",
            "2026-11-24",
            "2026-11-25",
            "2026-11-26",
            "2026-11-27",
        ]
        assert all(x["date"].endswith("T00:00:00+05:30") and x["oi"] > 0 for x in candles)
        iso = await history(
            c, instrument_token=NIFTY_FUT, from_ts="2026-11-23T00:00:00+05:30", to_ts="2026-11-29", interval="day", oi=1
        )
        assert iso.json()["candles"] == candles
        hourly = await history(
            c, instrument_token=NIFTY_FUT, from_ts="2026-11-23", to_ts="2026-11-23 23:00", interval="60minute"
        )
        assert [x["date"][11:16] for x in hourly.json()["candles"]] == [
            "09:15",
            "10:15",
            "11:15",
            "12:15",
            "13:15",
            "14:15",
            "15:15",
        ]


async def test_no_candle_from_the_future(database_url: str) -> None:
    async with make_client(database_url) as c:
        r = await history(c, instrument_token=INFY, from_ts="2199-01-01", to_ts="2199-01-09", interval="day")
        assert r.status_code == 200 and r.json()["candles"] == []


async def test_bad_input_is_a_422_naming_the_field(database_url: str) -> None:
    good = {"instrument_token": INFY, "from_ts": "2026-11-23", "to_ts": "2026-11-24", "interval": "minute"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"from_ts": "2026-11-25", "to_ts": "2026-11-24"}, "to_ts"),
        ({"interval": "2minute"}, "interval"),
        ({"instrument_token": 12345}, "instrument_token"),
        ({"instrument_token": "INFY"}, "instrument_token"),
        ({"from_ts": "yesterday"}, "from_ts"),
        ({"to_ts": "2026-13-45"}, "to_ts"),
        ({"to_ts": "99999999999999999"}, "to_ts"),
        ({"from_ts": "2000-01-01", "to_ts": "2026-01-01"}, "to_ts"),  # too many minute candles for one answer
    ]
    async with make_client(database_url) as c:
        for change, field in cases:
            r = await history(c, **(good | change))
            assert r.status_code == 422, (change, r.status_code, r.text)
            assert r.json()["field"] == field and r.json()["detail"].startswith(f"{field}:"), (change, r.text)
        for missing in ("instrument_token", "from_ts", "to_ts", "interval"):
            r = await history(c, **{k: v for k, v in good.items() if k != missing})
            assert r.status_code == 422 and r.json()["field"] == missing, (missing, r.text)
