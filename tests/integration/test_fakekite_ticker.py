"""The fake's ticker WebSocket through the real `kiteconnect.KiteTicker` (one child process per client,
its Twisted reactor being process-global): ticks in each mode decode to the fake's market, order
updates arrive through `on_order_update`, an expired token fails the handshake with 403 while an open
socket stays open, and the client reconnects after the fake drops every socket. Protocol details
(heartbeats, the connection cap, silence) are checked with a plain aiohttp WebSocket client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from tests.fakekite_fixture import (
    TickerProcess,
    call,
    fake_kite,
    fake_kites,
    kite_client,
    start_ticker,
    tickers,
)
from ticker_service.fakekite import FakeKite

__all__ = ["fake_kite", "fake_kites", "tickers"]  # the fixtures

INFY, NIFTY_INDEX, USDINR_CDS = 408065, 256265, 412675
POSTBACK_KEYS = {
    "user_id", "unfilled_quantity", "app_id", "checksum", "placed_by", "order_id", "exchange_order_id",
    "parent_order_id", "status", "status_message", "status_message_raw", "order_timestamp",
    "exchange_update_timestamp", "exchange_timestamp", "variety", "exchange", "tradingsymbol", "instrument_token",
    "order_type", "transaction_type", "validity", "product", "quantity", "disclosed_quantity", "price",
    "trigger_price", "average_price", "filled_quantity", "pending_quantity", "cancelled_quantity",
    "market_protection", "meta", "tag", "guid",
}  # fmt: skip


def latest_tick(token: int, mode: str, price: float | None = None) -> Any:
    def check(events: list[dict[str, Any]]) -> Any:
        for event in reversed(events):
            for tick in event.get("ticks", ()):
                if (tick["instrument_token"], tick["mode"]) == (token, mode) and price in (None, tick["last_price"]):
                    return tick
        return None

    return check


@pytest.mark.parametrize("mode", ["ltp", "quote", "full"])
async def test_ticks_in_each_mode_decode_to_the_fakes_market(
    fake_kite: FakeKite, tickers: list[TickerProcess], mode: str
) -> None:
    fake_kite.set_price("NSE", "INFY", 1512.35)
    fake_kite.set_price("CDS", "USDINR25NOVFUT", "83.2575")
    client = await start_ticker(
        fake_kite, fake_kite.issue_access_token(), tokens=[INFY, NIFTY_INDEX, USDINR_CDS], mode=mode
    )
    tickers.append(client)
    for token in (INFY, NIFTY_INDEX, USDINR_CDS):
        tick = await client.wait_for(latest_tick(token, mode))
        want = fake_kite.market.tick(token, mode)
        assert tick["last_price"] == float(want.last_price)
        assert tick["tradable"] is (token != NIFTY_INDEX)
        if mode != "ltp":
            assert tick["ohlc"] == {k: float(getattr(want, k)) for k in ("open", "high", "low", "close")}
        if mode != "ltp" and token != NIFTY_INDEX:
            assert tick["volume_traded"] == want.volume
            assert tick["total_buy_quantity"] == want.buy_quantity
        if mode == "full" and token != NIFTY_INDEX:
            assert [level["price"] for level in tick["depth"]["buy"]] == [float(d.price) for d in want.buy_depth]
            assert [level["orders"] for level in tick["depth"]["sell"]] == [d.orders for d in want.sell_depth]
            assert tick["oi"] == want.oi
    assert fake_kite.ticker_stats.subscribe_messages == 1

    fake_kite.set_price("NSE", "INFY", 1513.5)  # a change: a tick follows
    tick = await client.wait_for(latest_tick(INFY, mode, 1513.5))
    assert tick["last_price"] == 1513.5
    await client.wait_for(lambda events: [e for e in events if e["event"] == "message" and e["size"] == 1])  # heartbeat


async def test_order_updates_and_error_messages_reach_the_client(
    fake_kite: FakeKite, tickers: list[TickerProcess]
) -> None:
    client = await start_ticker(fake_kite, fake_kite.issue_access_token())
    tickers.append(client)
    await client.wait_for(lambda events: any(e["event"] == "connect" for e in events))
    kite = kite_client(fake_kite)
    mine = await call(kite.place_order, "regular", "NSE", "INFY", "BUY", 1, "CNC", "MARKET", market_protection=-1)
    external = fake_kite.place_external("NSE", "SBIN", "SELL", 2)

    def updates(events: list[dict[str, Any]]) -> Any:
        got = [(e["data"]["order_id"], e["data"]["status"]) for e in events if e["event"] == "order_update"]
        return got if len(got) >= 4 else None

    assert await client.wait_for(updates) == [
        (mine, "OPEN"),
        (mine, "COMPLETE"),
        (external, "OPEN"),
        (external, "COMPLETE"),
    ]
    for event in client.of("order_update"):
        assert set(event["data"]) == POSTBACK_KEYS and event["data"]["checksum"] == ""

    fake_kite.ticker_send_error("Feed degraded")
    error = await client.wait_for(lambda events: [e for e in events if e["event"] == "error"])
    assert error[0]["code"] == 0 and error[0]["reason"] == "Feed degraded"


async def test_an_expired_token_fails_new_handshakes_with_403_but_open_sockets_stay(
    fake_kite: FakeKite, tickers: list[TickerProcess]
) -> None:
    token = fake_kite.issue_access_token()
    before = await start_ticker(fake_kite, token)
    tickers.append(before)
    await before.wait_for(lambda events: any(e["event"] == "connect" for e in events))
    fake_kite.expire_token()

    after = await start_ticker(fake_kite, token, stop_on_close=True)
    tickers.append(after)
    closed = await after.wait_for(lambda events: [e for e in events if e["event"] == "close"])
    assert "403" in str(closed[0]["reason"])
    assert not after.of("connect")
    assert fake_kite.ticker_stats.refused == {403: 1}

    # the socket opened before the expiry still gets frames: heartbeats, and ticks on a change
    heartbeats = len(before.of("message"))
    await before.wait_for(lambda events: len([e for e in events if e["event"] == "message"]) > heartbeats)
    assert fake_kite.ticker_connections == 1 and not before.of("close")


async def test_the_client_reconnects_and_resubscribes_after_the_fake_drops_every_socket(
    fake_kite: FakeKite, tickers: list[TickerProcess]
) -> None:
    client = await start_ticker(fake_kite, fake_kite.issue_access_token(), tokens=[INFY], mode="full")
    tickers.append(client)
    await client.wait_for(latest_tick(INFY, "full"))
    assert await fake_kite.ticker_disconnect_all() == 1
    await client.wait_for(lambda events: len([e for e in events if e["event"] == "connect"]) == 2)
    fake_kite.set_price("NSE", "INFY", 1499.95)
    await client.wait_for(latest_tick(INFY, "full", 1499.95))
    assert client.of("close") and fake_kite.ticker_stats.connections_total == 2


@asynccontextmanager
async def ws_client(fake: FakeKite, token: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{fake.ticker_url}?api_key={fake.api_key}&access_token={token}") as ws,
    ):
        yield ws


async def frames(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[aiohttp.WSMessage]:
    got: list[aiohttp.WSMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            got.append(await ws.receive(timeout=left))
        except TimeoutError:
            break
    return got


async def test_at_most_three_sockets_per_key_a_fourth_handshake_gets_429(fake_kite: FakeKite) -> None:
    token = fake_kite.issue_access_token()
    async with ws_client(fake_kite, token), ws_client(fake_kite, token), ws_client(fake_kite, token):
        assert fake_kite.ticker_connections == 3
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(f"{fake_kite.ticker_url}?api_key={fake_kite.api_key}&access_token={token}")
    assert refused.value.status == 429
    async with ws_client(fake_kite, token):  # a closed one frees its place
        assert fake_kite.ticker_connections == 1


async def test_silence_stops_every_frame_while_the_socket_stays_open(fake_kite: FakeKite) -> None:
    async with ws_client(fake_kite, fake_kite.issue_access_token()) as ws:
        await ws.send_json({"a": "subscribe", "v": [INFY]})
        window = 2.5
        heard = await frames(ws, window)
        assert any(m.type == aiohttp.WSMsgType.BINARY and len(m.data) == 1 for m in heard)  # heartbeats
        assert any(m.type == aiohttp.WSMsgType.BINARY and len(m.data) > 1 for m in heard)  # the snapshot
        fake_kite.ticker_silence(True)
        await frames(ws, 0.3)  # whatever was already on the wire when silence began
        fake_kite.set_price("NSE", "INFY", 1400)
        fake_kite.place_external("NSE", "INFY", "BUY", 1)
        assert await frames(ws, window) == []  # the same window that held heartbeats before holds nothing
        assert not ws.closed and fake_kite.ticker_connections == 1
        fake_kite.ticker_silence(False)
        assert any(m.type == aiohttp.WSMsgType.BINARY for m in await frames(ws, window))


async def test_subscriptions_modes_and_unsubscribe_over_the_wire(fake_kite: FakeKite) -> None:
    async with ws_client(fake_kite, fake_kite.issue_access_token()) as ws:
        await ws.send_json({"a": "subscribe", "v": [INFY, 999999999]})  # an unknown token is ignored
        await ws.send_json({"a": "mode", "v": ["ltp", [INFY]]})
        sizes: list[int] = []
        while len(sizes) < 2:
            msg = await ws.receive(timeout=10)
            if msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) > 1:
                sizes.append(int.from_bytes(msg.data[2:4], "big"))
        assert sizes == [44, 8]  # a new subscription starts in quote; then ltp
        await ws.send_json({"a": "unsubscribe", "v": [INFY]})
        await ws.send_json({"a": "subscribe", "v": [779521]})  # a marker: unsubscribe was handled before it
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) > 1:
                assert int.from_bytes(msg.data[4:8], "big") == 779521
                break
        fake_kite.set_price("NSE", "INFY", 1401)
        fake_kite.set_price("NSE", "SBIN", 901)
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) > 1:
                assert int.from_bytes(msg.data[4:8], "big") == 779521  # no INFY tick after unsubscribing
                break
    stats = fake_kite.ticker_stats
    assert (stats.subscribe_messages, stats.mode_messages, stats.unsubscribe_messages) == (2, 1, 1)


async def test_ticker_sockets_survive_the_rest_api_refusing_connections(fake_kite: FakeKite) -> None:
    async with ws_client(fake_kite, fake_kite.issue_access_token()) as ws:
        await fake_kite.stop_listening()
        try:
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.BINARY  # a heartbeat still arrives
        finally:
            await fake_kite.start_listening()
