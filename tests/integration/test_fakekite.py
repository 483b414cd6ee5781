"""The fake Kite through the real `kiteconnect.KiteConnect`: login and session, every order variety and
what the fake recorded of it, the order lifecycle (rest, partial fill, fill, modify, cancel, the 26th
modification), Kite's input checks, the portfolio, and market data."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from kiteconnect import KiteConnect
from kiteconnect.exceptions import InputException, TokenException

from tests.fakekite_fixture import API_KEY, API_SECRET, call, fake_kite, fake_kites, kite_client, start_fake_kite
from ticker_service.fakekite import FakeKite

__all__ = ["fake_kite", "fake_kites"]  # the fixtures

MARKET_PROTECTION_MESSAGE = "Market orders without market protection are not allowed via API"


async def place(kite: KiteConnect, **fields: object) -> str:
    order = {
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "quantity": 1,
        "product": "CNC",
        "order_type": "MARKET",
        "market_protection": -1,
        **fields,
    }
    order_id: str = await call(kite.place_order, **order)
    return order_id


# login and session


async def test_login_redirects_with_a_request_token_and_the_apps_redirect_params(fake_kites: list[FakeKite]) -> None:
    fake = await start_fake_kite(fake_kites, redirect_url="https://app.example/kite/callback?x=1")
    query = urlencode({"v": 3, "api_key": API_KEY, "redirect_params": urlencode({"account": "main", "n": "2"})})
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fake.url}/connect/login?{query}", allow_redirects=False) as r,
    ):
        assert r.status == 302
        location = r.headers["Location"]
    assert location.startswith("https://app.example/kite/callback?x=1&")
    params = parse_qs(urlsplit(location).query)
    assert params["action"] == ["login"] and params["status"] == ["success"] and params["type"] == ["login"]
    assert params["account"] == ["main"] and params["n"] == ["2"]
    request_token = params["request_token"][0]

    kite = KiteConnect(API_KEY, root=fake.url)
    session = await call(kite.generate_session, request_token, API_SECRET)
    assert session["user_id"] == "AB1234" and session["api_key"] == API_KEY
    assert kite.access_token == session["access_token"]
    (exchange,) = fake.requests_for("api.token")
    assert exchange.form == {
        "api_key": API_KEY,
        "request_token": request_token,
        "checksum": hashlib.sha256((API_KEY + request_token + API_SECRET).encode()).hexdigest(),
    }
    assert (await call(kite.profile))["user_id"] == "AB1234"

    with pytest.raises(TokenException):  # a request token is single use
        await call(KiteConnect(API_KEY, root=fake.url).generate_session, request_token, API_SECRET)


async def test_a_wrong_secret_or_an_old_request_token_gets_no_session(fake_kites: list[FakeKite]) -> None:
    fake = await start_fake_kite(fake_kites)
    kite = KiteConnect(API_KEY, root=fake.url)
    with pytest.raises(TokenException, match="checksum"):
        await call(kite.generate_session, fake.login(), "not-the-secret")
    stale = await start_fake_kite(fake_kites, request_token_ttl=0)
    with pytest.raises(TokenException, match="invalid or has expired"):
        await call(KiteConnect(API_KEY, root=stale.url).generate_session, stale.login(), API_SECRET)
    assert kite.access_token is None


async def test_an_invalidated_session_is_refused_with_403(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    await call(kite.profile)
    assert await call(kite.invalidate_access_token) is True
    with pytest.raises(TokenException) as refused:
        await call(kite.profile)
    assert refused.value.code == 403


async def test_the_version_header_and_the_session_are_checked_on_every_call(fake_kite: FakeKite) -> None:
    token = fake_kite.issue_access_token()
    auth = {"Authorization": f"token {API_KEY}:{token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake_kite.url}/user/profile", headers=auth) as r:
            assert r.status == 400 and (await r.json())["error_type"] == "InputException"
        async with http.get(f"{fake_kite.url}/user/profile", headers={"X-Kite-Version": "3"}) as r:
            assert r.status == 403 and (await r.json())["error_type"] == "TokenException"
        wrong_key = {"X-Kite-Version": "3", "Authorization": f"token other:{token}"}
        async with http.get(f"{fake_kite.url}/user/profile", headers=wrong_key) as r:
            assert r.status == 403
        async with http.get(f"{fake_kite.url}/user/profile", headers={"X-Kite-Version": "3", **auth}) as r:
            assert r.status == 200 and (await r.json())["status"] == "success"
        async with http.get(f"{fake_kite.url}/no/such/route", headers={"X-Kite-Version": "3", **auth}) as r:
            assert r.status == 404 and (await r.json())["status"] == "error"


# orders


async def test_every_variety_is_placed_with_exactly_the_fields_kiteconnect_sent(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.set_price("NSE", "INFY", 1500)
    fake_kite.set_price("NFO", "NIFTY25NOVFUT", 19550)
    regular = await place(kite, tag="strat1")
    amo = await place(kite, variety="amo", order_type="LIMIT", price=1490, market_protection=None)
    cover = await place(kite, variety="co", product="MIS", trigger_price=1480)
    iceberg = await place(
        kite,
        variety="iceberg",
        exchange="NFO",
        tradingsymbol="NIFTY25NOVFUT",
        product="NRML",
        quantity=500,
        order_type="LIMIT",
        price=19500,
        market_protection=None,
        iceberg_legs=5,
        iceberg_quantity=100,
        validity="TTL",
        validity_ttl=2,
    )
    auction = await place(
        kite, variety="auction", transaction_type="SELL", order_type="LIMIT", price=1510, market_protection=None,
        auction_number="22",
    )  # fmt: skip

    forms = [r.form for r in fake_kite.requests_for("order.place")]
    assert [r.path for r in fake_kite.requests_for("order.place")] == [
        "/orders/regular", "/orders/amo", "/orders/co", "/orders/iceberg", "/orders/auction",
    ]  # fmt: skip
    assert forms[0] == {
        "variety": "regular", "exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": "1",
        "product": "CNC", "order_type": "MARKET", "market_protection": "-1", "tag": "strat1",
    }  # fmt: skip
    assert "market_protection" not in forms[1] and forms[1]["price"] == "1490"
    assert forms[2]["trigger_price"] == "1480"
    assert forms[3]["iceberg_legs"] == "5" and forms[3]["iceberg_quantity"] == "100" and forms[3]["validity_ttl"] == "2"
    assert forms[4]["auction_number"] == "22"
    headers = fake_kite.requests_for("order.place")[0].headers
    assert headers["X-Kite-Version"] == "3" and headers["Authorization"].startswith(f"token {API_KEY}:")

    book = {o["order_id"]: o for o in await call(kite.orders)}
    assert book[regular]["status"] == "COMPLETE" and book[regular]["tag"] == "strat1"
    assert book[regular]["average_price"] == 1500 and book[regular]["market_protection"] == -1
    assert book[amo]["status"] == "AMO REQ RECEIVED" and book[amo]["variety"] == "amo"
    assert book[cover]["status"] == "COMPLETE"
    (stop_leg,) = [o for o in book.values() if o["parent_order_id"] == cover]
    assert (stop_leg["status"], stop_leg["transaction_type"], stop_leg["order_type"]) == (
        "TRIGGER PENDING",
        "SELL",
        "SL-M",
    )
    assert stop_leg["trigger_price"] == 1480
    assert book[iceberg]["status"] == "OPEN" and book[iceberg]["quantity"] == 100
    assert book[iceberg]["meta"]["iceberg"] == {
        "leg": 1, "legs": 5, "leg_quantity": 100, "total_quantity": 500, "remaining_quantity": 400,
    }  # fmt: skip
    assert book[iceberg]["validity"] == "TTL" and book[iceberg]["validity_ttl"] == 2
    assert book[auction]["status"] == "OPEN" and book[auction]["auction_number"] == "22"


async def test_an_iceberg_places_its_next_leg_when_a_leg_completes(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    first = await place(
        kite, variety="iceberg", quantity=30, order_type="LIMIT", price=1400, market_protection=None,
        iceberg_legs=3, iceberg_quantity=10,
    )  # fmt: skip
    fake_kite.fill(first)
    legs = [o for o in await call(kite.orders) if o["variety"] == "iceberg"]
    assert [(o["status"], o["meta"]["iceberg"]["leg"], o["quantity"]) for o in legs] == [
        ("COMPLETE", 1, 10),
        ("OPEN", 2, 10),
    ]


async def test_a_limit_order_rests_fills_in_parts_and_completes(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.set_price("NSE", "SBIN", 962)
    order_id = await place(
        kite, tradingsymbol="SBIN", quantity=10, order_type="LIMIT", price=950, market_protection=None
    )
    assert fake_kite.order(order_id)["status"] == "OPEN"
    assert await call(kite.order_trades, order_id) == []

    fake_kite.fill(order_id, quantity=4, price=949.5)
    (order,) = await call(kite.orders)
    assert (order["status"], order["filled_quantity"], order["pending_quantity"]) == ("OPEN", 4, 6)
    assert order["average_price"] == 949.5

    fake_kite.fill(order_id)  # the rest, at the order's price
    (order,) = await call(kite.orders)
    assert (order["status"], order["filled_quantity"], order["pending_quantity"]) == ("COMPLETE", 10, 0)
    assert order["average_price"] == pytest.approx((4 * 949.5 + 6 * 950) / 10)
    trades = await call(kite.order_trades, order_id)
    assert [(t["quantity"], t["average_price"]) for t in trades] == [(4, 949.5), (6, 950.0)]
    assert await call(kite.trades) == trades
    statuses = [h["status"] for h in await call(kite.order_history, order_id)]
    assert statuses == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING", "OPEN", "OPEN", "COMPLETE"]


async def test_a_marketable_limit_fills_at_once_and_stops_wait_for_their_trigger(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.set_price("NSE", "INFY", 1500)
    marketable = await place(kite, order_type="LIMIT", price=1510, market_protection=None)
    assert fake_kite.order(marketable)["status"] == "COMPLETE"
    assert fake_kite.order(marketable)["average_price"] == 1500  # the market's price, better than the limit
    stop = await place(kite, transaction_type="SELL", order_type="SL-M", trigger_price=1450)
    stop_limit = await place(
        kite, transaction_type="SELL", order_type="SL", trigger_price=1450, price=1445, market_protection=None
    )
    assert fake_kite.order(stop)["status"] == "TRIGGER PENDING"
    assert fake_kite.order(stop_limit)["status"] == "TRIGGER PENDING"

    fake_kite.set_price("NSE", "INFY", 1449)  # crosses both triggers
    assert fake_kite.order(stop)["status"] == "COMPLETE" and fake_kite.order(stop)["average_price"] == 1449
    assert fake_kite.order(stop_limit)["status"] == "COMPLETE"
    history = [h["status"] for h in fake_kite.order_history(stop)]
    assert history[-3:] == ["TRIGGER PENDING", "OPEN", "COMPLETE"]


async def test_modify_then_cancel_and_kites_refusals_after(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.set_price("NSE", "INFY", 1500)
    order_id = await place(kite, order_type="LIMIT", price=1400, quantity=5, market_protection=None)
    assert await call(kite.modify_order, "regular", order_id, price=1401, quantity=6) == order_id
    assert fake_kite.requests_for("order.modify")[0].form == {
        "variety": "regular", "order_id": order_id, "price": "1401", "quantity": "6",
    }  # fmt: skip
    order = fake_kite.order(order_id)
    assert (order["price"], order["quantity"], order["modified"], order["status"]) == (1401, 6, True, "OPEN")
    assert await call(kite.cancel_order, "regular", order_id) == order_id
    order = fake_kite.order(order_id)
    assert (order["status"], order["cancelled_quantity"], order["pending_quantity"]) == ("CANCELLED", 6, 6)
    statuses = [h["status"] for h in await call(kite.order_history, order_id)]
    assert statuses[3:] == [
        "OPEN", "MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED", "OPEN", "CANCEL PENDING", "CANCELLED",
    ]  # fmt: skip
    with pytest.raises(InputException, match="CANCELLED"):
        await call(kite.cancel_order, "regular", order_id)
    with pytest.raises(InputException, match="CANCELLED"):
        await call(kite.modify_order, "regular", order_id, price=1402)
    with pytest.raises(InputException, match="order_id"):
        await call(kite.order_history, "999")


async def test_the_26th_modification_of_an_order_is_refused(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.set_price("NSE", "INFY", 1500)
    order_id = await place(kite, order_type="LIMIT", price=1300, market_protection=None)
    for i in range(25):
        await call(kite.modify_order, "regular", order_id, price=1300 + i)
    with pytest.raises(InputException, match="Maximum allowed order modifications exceeded") as refused:
        await call(kite.modify_order, "regular", order_id, price=1350)
    assert refused.value.code == 400
    order = fake_kite.order(order_id)
    assert order["price"] == 1324 and order["status"] == "OPEN"  # the 26th changed nothing


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"market_protection": None}, MARKET_PROTECTION_MESSAGE),
        ({"market_protection": 0}, MARKET_PROTECTION_MESSAGE),
        ({"order_type": "SL-M", "trigger_price": 1400, "market_protection": None}, MARKET_PROTECTION_MESSAGE),
        ({"market_protection": 101}, "market_protection"),
        ({"tag": "a" * 21}, "tag"),
        ({"tag": "not alnum"}, "tag"),
        ({"tradingsymbol": "NOSUCHSTOCK"}, "has either expired or does not exist"),
        ({"exchange": "NFO", "tradingsymbol": "NIFTY25NOVFUT", "product": "NRML", "quantity": 10}, "lot size"),
        ({"order_type": "LIMIT", "price": 1500.03, "market_protection": None}, "tick size"),
        ({"transaction_type": "HOLD"}, "transaction_type"),
    ],
)
async def test_kites_input_checks_refuse_an_order_before_it_reaches_the_book(
    fake_kite: FakeKite, fields: dict[str, object], message: str
) -> None:
    kite = kite_client(fake_kite)
    with pytest.raises(InputException, match=message) as refused:
        await place(kite, **fields)
    assert refused.value.code == 400
    assert await call(kite.orders) == []


async def test_an_order_placed_on_kite_web_is_in_the_book_without_a_tag(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    order_id = fake_kite.place_external("NSE", "SBIN", "SELL", 3)
    (order,) = await call(kite.orders)
    assert order["order_id"] == order_id and order["tag"] is None and "tags" not in order
    assert order["placed_by"] == "AB1234" and order["status"] == "COMPLETE"


async def test_the_exchange_can_cancel_a_resting_order(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    order_id = await place(kite, order_type="LIMIT", price=1000, market_protection=None, validity="DAY")
    fake_kite.cancel_by_exchange(order_id, "Order cancelled by the exchange at market close.")
    (order,) = await call(kite.orders)
    assert (
        order["status"] == "CANCELLED" and order["status_message"] == "Order cancelled by the exchange at market close."
    )
    assert "CANCEL PENDING" not in [h["status"] for h in fake_kite.order_history(order_id)]


async def test_an_ioc_order_that_cannot_fill_is_cancelled_at_once(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.set_price("NSE", "INFY", 1500)
    order_id = await place(kite, order_type="LIMIT", price=1400, validity="IOC", market_protection=None)
    assert fake_kite.order(order_id)["status"] == "CANCELLED"


# portfolio


async def test_positions_and_margins_follow_the_trades(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    before = await call(kite.margins)
    fake_kite.set_price("NSE", "INFY", 1500)
    await place(kite, quantity=2)
    fake_kite.set_price("NSE", "INFY", 1510)
    await place(kite, quantity=1, transaction_type="SELL")
    fake_kite.set_price("NSE", "INFY", 1520)

    positions = await call(kite.positions)
    (net,) = positions["net"]
    assert net == positions["day"][0]
    assert (net["tradingsymbol"], net["product"], net["quantity"]) == ("INFY", "CNC", 1)
    assert (net["buy_quantity"], net["buy_value"], net["sell_quantity"], net["sell_value"]) == (2, 3000, 1, 1510)
    assert net["value"] == -1490 and net["pnl"] == 30  # -1490 + 1 x 1520
    assert net["realised"] == 10 and net["unrealised"] == 20 and net["last_price"] == 1520

    after = await call(kite.margins)
    assert after["equity"]["utilised"]["debits"] > before["equity"]["utilised"]["debits"]
    assert after["equity"]["net"] < before["equity"]["net"]
    assert await call(kite.margins, "equity") == after["equity"]
    assert (await call(kite.margins, "commodity"))["net"] == before["commodity"]["net"]
    with pytest.raises(InputException):
        await call(kite.margins, "crypto")


async def test_holdings_are_priced_at_the_market(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.set_price("NSE", "INFY", 1480.5)
    holdings = {h["tradingsymbol"]: h for h in await call(kite.holdings)}
    assert set(holdings) == {"INFY", "SBIN"}
    assert holdings["INFY"]["last_price"] == 1480.5
    assert holdings["INFY"]["pnl"] == pytest.approx((1480.5 - holdings["INFY"]["average_price"]) * 10)


# market data


async def test_instruments_are_served_as_kites_csv(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    everything = await call(kite.instruments)
    by_key = {(i["exchange"], i["tradingsymbol"]): i for i in everything}
    assert by_key[("NSE", "INFY")]["instrument_token"] == 408065
    assert by_key[("NSE", "SBIN")]["instrument_token"] == 779521
    assert by_key[("NFO", "NIFTY25NOVFUT")]["lot_size"] == 50
    assert by_key[("NFO", "BANKNIFTY25NOVFUT")]["lot_size"] == 25
    assert str(by_key[("NFO", "NIFTY25NOVFUT")]["expiry"]) == "2025-11-25"
    nfo = await call(kite.instruments, "NFO")
    assert nfo and {i["exchange"] for i in nfo} == {"NFO"}


async def test_quotes_ltp_and_ohlc_read_the_fakes_prices(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.set_price("NSE", "INFY", 1512.35)
    ltp = await call(kite.ltp, "NSE:INFY", "NSE:SBIN", "NSE:NOSUCH")
    assert ltp["NSE:INFY"] == {"instrument_token": 408065, "last_price": 1512.35}
    assert ltp["NSE:SBIN"]["last_price"] == float(fake_kite.price("NSE", "SBIN"))
    assert "NSE:NOSUCH" not in ltp  # Kite leaves out what it does not know
    quote = (await call(kite.quote, "NSE:INFY"))["NSE:INFY"]
    assert quote["last_price"] == 1512.35 and quote["ohlc"]["high"] == 1512.35
    assert quote["depth"]["sell"][0]["price"] == 1512.35 and len(quote["depth"]["buy"]) == 5
    ohlc = await call(kite.ohlc, "408065")  # a bare token is accepted too
    assert ohlc["408065"]["ohlc"] == quote["ohlc"]


async def test_historical_candles_are_deterministic_and_kites_limits_apply(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    args = (408065, "2025-11-03 09:15:00", "2025-11-03 09:44:00", "5minute")
    first = await call(kite.historical_data, *args)
    assert [c["date"].strftime("%H:%M") for c in first] == ["09:15", "09:20", "09:25", "09:30", "09:35", "09:40"]
    assert str(first[0]["date"].utcoffset()) == "5:30:00"
    assert await call(kite.historical_data, *args) == first
    with_oi = await call(
        kite.historical_data, 12602626, "2025-11-03 09:15:00", "2025-11-03 09:16:00", "minute", oi=True
    )
    assert all(c["oi"] > 0 for c in with_oi)
    with pytest.raises(InputException, match="60 days"):
        await call(kite.historical_data, 408065, "2025-01-01 09:15:00", "2025-03-03 09:15:00", "minute")
    with pytest.raises(InputException, match="interval"):
        await call(kite.historical_data, 408065, "2025-01-01 09:15:00", "2025-01-02 09:15:00", "2minute")


async def test_a_held_price_stays_while_the_model_steps_the_others(fake_kite: FakeKite) -> None:
    fake_kite.set_price("NSE", "INFY", Decimal("1500.00"))
    sbin_path = [fake_kite.price("NSE", "SBIN")]
    for _ in range(20):
        fake_kite.advance_prices()
        sbin_path.append(fake_kite.price("NSE", "SBIN"))
    assert fake_kite.price("NSE", "INFY") == Decimal("1500.00")
    assert len(set(sbin_path)) > 1
    # the same steps from a fresh fake give the same path
    again = FakeKite(API_KEY, API_SECRET, tick_interval=None)
    again_path = [again.price("NSE", "SBIN")]
    for _ in range(20):
        again.advance_prices()
        again_path.append(again.price("NSE", "SBIN"))
    assert again_path == sbin_path
