"""The fake answers in Kite's shapes: the key sets of its answers equal those of Kite's official samples
(`shared/kite-mocks/`, and for the session, profile and holdings, which are not there, the same
repository's `generate_session.json`, `user_profile.json` and `holdings.json`, copied below)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fakekite_fixture import API_KEY, API_SECRET, call, fake_kite, fake_kites, kite_client, start_fake_kite
from tests.webhook_receiver import Receiver, receivers, start_receiver
from ticker_service.fakekite import FakeKite

__all__ = ["fake_kite", "fake_kites", "receivers"]  # the fixtures

MOCKS = Path(__file__).resolve().parents[3] / "shared" / "kite-mocks"
if not MOCKS.is_dir():
    MOCKS = Path("/work/shared/kite-mocks")

# zerodha/kiteconnect-mocks at ae79605 (holdings.json), 2633cdc (generate_session.json), 2c06490 (user_profile.json)
HOLDING_KEYS = {
    "tradingsymbol", "exchange", "instrument_token", "isin", "product", "price", "quantity", "used_quantity",
    "t1_quantity", "realised_quantity", "authorised_quantity", "authorised_date", "opening_quantity",
    "collateral_quantity", "collateral_type", "discrepancy", "average_price", "last_price", "close_price", "pnl",
    "day_change", "day_change_percentage",
}  # fmt: skip
PROFILE_KEYS = {
    "user_id", "user_type", "email", "user_name", "user_shortname", "broker", "exchanges", "products", "order_types",
    "avatar_url", "meta",
}  # fmt: skip
SESSION_KEYS = (PROFILE_KEYS | {"api_key", "access_token", "public_token", "enctoken", "refresh_token", "silo"}) | {
    "login_time"
}


def sample(name: str) -> Any:
    return (
        json.loads((MOCKS / name).read_text())["data"]
        if name != "postback.json"
        else json.loads((MOCKS / name).read_text())
    )


async def raw(fake: FakeKite, token: str, path: str) -> Any:
    """An answer's `data` as the wire carries it (kiteconnect would turn timestamps into datetimes)."""
    headers = {"X-Kite-Version": "3", "Authorization": f"token {fake.api_key}:{token}"}
    async with aiohttp.ClientSession() as http, http.get(fake.url + path, headers=headers) as r:
        body = await r.json()
    assert body["status"] == "success", body
    return body["data"]


async def make_orders(fake: FakeKite) -> dict[str, str]:
    kite = kite_client(fake)
    base = {"exchange": "NSE", "tradingsymbol": "SBIN", "transaction_type": "BUY", "quantity": 1, "product": "CNC"}
    ids = {
        "plain": await call(kite.place_order, "regular", **base, order_type="MARKET", market_protection=-1),
        "tagged": await call(kite.place_order, "regular", **base, order_type="LIMIT", price=900, tag="s1"),
        "auction": await call(kite.place_order, "auction", **base, order_type="LIMIT", price=900, auction_number="7"),
    }
    return ids


async def test_orders_and_their_history_have_the_samples_keys(fake_kite: FakeKite) -> None:
    ids = await make_orders(fake_kite)
    token = fake_kite.issue_access_token()
    book = {o["order_id"]: o for o in await raw(fake_kite, token, "/orders")}
    sample_sets = [set(o) for o in sample("orders.json")]
    assert set(book[ids["plain"]]) in sample_sets
    assert set(book[ids["tagged"]]) in sample_sets
    assert book[ids["tagged"]]["tags"] == ["s1"]
    (auction_sample,) = [o for o in sample("orders.json") if o["variety"] == "auction"]
    # the auction sample predates the `account_id` every current order carries
    assert set(book[ids["auction"]]) == set(auction_sample) | {"account_id"}

    history = await raw(fake_kite, token, f"/orders/{ids['plain']}")
    for state in history:
        assert set(state) == set(book[ids["plain"]])
        # Kite's older history sample has fewer fields; every one of them is there
        assert set(sample("order_info.json")[0]) <= set(state)
    timestamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
    assert timestamp.match(book[ids["plain"]]["order_timestamp"])
    assert timestamp.match(book[ids["plain"]]["exchange_timestamp"])


async def test_trades_positions_holdings_and_margins_have_the_samples_keys(fake_kite: FakeKite) -> None:
    ids = await make_orders(fake_kite)
    token = fake_kite.issue_access_token()
    (trade,) = await raw(fake_kite, token, "/trades")
    assert set(trade) == set(sample("trades.json")[0])
    assert re.match(r"^\d\d:\d\d:\d\d$", trade["order_timestamp"])
    assert [set(t) for t in await raw(fake_kite, token, f"/orders/{ids['plain']}/trades")] == [
        set(sample("order_trades.json")[0])
    ]
    positions = await raw(fake_kite, token, "/portfolio/positions")
    assert set(positions) == {"net", "day"}
    for kind in ("net", "day"):
        assert [set(p) for p in positions[kind]] == [set(sample("positions.json")[kind][0])]
    assert all(set(h) == HOLDING_KEYS for h in await raw(fake_kite, token, "/portfolio/holdings"))
    margins, want = await raw(fake_kite, token, "/user/margins"), sample("margins.json")
    assert set(margins) == set(want)
    for segment in want:
        assert set(margins[segment]) == set(want[segment])
        assert set(margins[segment]["available"]) == set(want[segment]["available"])
        assert set(margins[segment]["utilised"]) == set(want[segment]["utilised"])


async def test_market_data_has_the_samples_keys(fake_kite: FakeKite) -> None:
    token = fake_kite.issue_access_token()
    quote = (await raw(fake_kite, token, "/quote?i=NSE:INFY"))["NSE:INFY"]
    want = sample("quote.json")["NSE:INFY"]
    assert set(quote) == set(want)
    assert set(quote["ohlc"]) == set(want["ohlc"]) and set(quote["depth"]) == set(want["depth"])
    assert [set(level) for level in quote["depth"]["buy"]] == [set(level) for level in want["depth"]["buy"]]
    assert set((await raw(fake_kite, token, "/quote/ltp?i=NSE:INFY"))["NSE:INFY"]) == set(
        sample("ltp.json")["NSE:INFY"]
    )
    ohlc = (await raw(fake_kite, token, "/quote/ohlc?i=NSE:INFY"))["NSE:INFY"]
    assert set(ohlc) == {"instrument_token", "last_price", "ohlc"}

    path = "/instruments/historical/408065/minute?from=2025-11-03+09:15:00&to=2025-11-03+09:20:00"
    candles = (await raw(fake_kite, token, path))["candles"]
    want_candles = sample("historical_minute.json")["candles"]
    assert len(candles) == len(want_candles) == 6
    shape = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0530$")
    for got, exp in zip(candles, want_candles, strict=True):
        assert len(got) == len(exp) and shape.match(got[0]) and shape.match(exp[0])
        assert all(isinstance(v, int | float) for v in got[1:])
    with_oi = (await raw(fake_kite, token, path + "&oi=1"))["candles"]
    assert all(len(c) == 7 for c in with_oi)

    headers = {"X-Kite-Version": "3", "Authorization": f"token {API_KEY}:{token}"}
    async with aiohttp.ClientSession() as http, http.get(fake_kite.url + "/instruments/NSE", headers=headers) as r:
        assert "csv" in r.headers["Content-Type"]
        header = (await r.text()).splitlines()[0]
    assert header == (MOCKS / "instruments_nse.csv").read_text().splitlines()[0]


async def test_the_session_and_profile_have_the_samples_keys(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    kite.access_token = None
    session = await call(kite.generate_session, fake_kite.login(), API_SECRET)
    assert set(session) == SESSION_KEYS
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", fake_kite.sessions.session_json(
        fake_kite.sessions.issue_session())["login_time"])  # fmt: skip
    assert set(await call(kite.profile)) == PROFILE_KEYS


async def test_postbacks_and_error_answers_have_kites_keys(
    fake_kites: list[FakeKite], receivers: list[Receiver]
) -> None:
    receiver = await start_receiver(receivers)
    fake = await start_fake_kite(fake_kites, postback_url=receiver.url)
    await make_orders(fake)
    await fake.drain_postbacks()
    bodies = receiver.ok_bodies()
    assert bodies
    assert all(set(b) == set(sample("postback.json")) for b in bodies)
    async with aiohttp.ClientSession() as http, http.get(fake.url + "/orders", headers={"X-Kite-Version": "3"}) as r:
        body = await r.json()
    assert r.status == 403 and set(body) >= {"status", "message", "error_type"} and body["status"] == "error"


@pytest.mark.parametrize("name", ["order_response.json", "order_modify.json", "order_cancel.json"])
async def test_order_calls_answer_with_the_order_id_only(fake_kite: FakeKite, name: str) -> None:
    kite = kite_client(fake_kite)
    order_id = await call(kite.place_order, "regular", "NSE", "SBIN", "BUY", 1, "CNC", "LIMIT", price=900)
    headers = {"X-Kite-Version": "3", "Authorization": f"token {API_KEY}:{kite.access_token}"}
    url = f"{fake_kite.url}/orders/regular"
    async with aiohttp.ClientSession(headers=headers) as http:
        if name == "order_response.json":
            form = {"exchange": "NSE", "tradingsymbol": "SBIN", "transaction_type": "BUY", "quantity": "1",
                    "product": "CNC", "order_type": "LIMIT", "price": "900"}  # fmt: skip
            request = http.post(url, data=form)
        elif name == "order_modify.json":
            request = http.put(f"{url}/{order_id}", data={"price": "901"})
        else:
            request = http.delete(f"{url}/{order_id}")
        async with request as r:
            data = (await r.json())["data"]
    assert set(data) == set(sample(name)) == {"order_id"}
