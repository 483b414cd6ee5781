"""Live ticks of a Kite account: the service's ticker connections to the project's fake Kite, and
clients on `/ws/ticks` and `/ws/kite` (the real `kiteconnect.KiteTicker`, in a child process).

What reached "Kite" is read from the fake itself (its connections and the control messages it got),
not inferred from the service's answers.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.conftest import SPEC_ORDER, eventually
from tests.e2e.server import ServerProcess
from tests.fake_kite_thread import FakeKiteThread, kite, threaded_fakes
from tests.kite_setup import ACCOUNT, SERVICE_KEY, kite_account, kite_env

__all__ = ["kite", "threaded_fakes"]  # fixtures

INFY, RELIANCE, SBIN, TCS, SBIN_BSE, NIFTY_FUT, NIFTY_50 = 408065, 738561, 779521, 2953217, 128028676, 12602626, 256265
HEADERS = {"X-API-Key": SERVICE_KEY}
TICKER_CLIENT = Path(__file__).resolve().parents[1] / "kite_ticker_client.py"

StartServer = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def token(kite: FakeKiteThread) -> str:
    return await kite.do(kite.fake.issue_access_token)


@pytest.fixture
async def start_server(
    database_url: str, tmp_path: Path, kite: FakeKiteThread, token: str
) -> AsyncIterator[StartServer]:
    servers: list[ServerProcess] = []

    async def start(**env: str) -> ServerProcess:
        accounts = {ACCOUNT: kite_account(kite, access_token=token), "primary": {}}
        server = ServerProcess(
            database_url, tmp_path, accounts, TICKER_API_KEYS=json.dumps({SERVICE_KEY: ["*"]}), **kite_env(**env)
        )
        servers.append(server)
        server.start()
        await server.wait_healthy()
        return server

    yield start
    for server in servers:
        server.stop()


async def upstream(kite: FakeKiteThread) -> list[dict[int, str]]:
    """What each of the fake's ticker connections is subscribed to, and in which mode."""
    return await kite.do(lambda: [dict(c.subscriptions) for c in kite.fake.hub.connections])


async def subscribe_messages(kite: FakeKiteThread, token: int) -> int:
    stats = await kite.do(lambda: kite.fake.ticker_stats.to_json())
    return sum(1 for m in stats["messages"] if m["a"] == "subscribe" and token in m["v"])


async def open_ticks(session: aiohttp.ClientSession, server: ServerProcess) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"ws://127.0.0.1:{server.port}/ws/ticks?account_id={ACCOUNT}&api_key={SERVICE_KEY}")
    connected = json.loads((await ws.receive(timeout=10)).data)
    assert connected["type"] == "connected", connected
    return ws


async def tick_of(ws: aiohttp.ClientWebSocketResponse, token: int, timeout: float = 10.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.05, deadline - loop.time()))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        message = json.loads(msg.data)
        for tick in message.get("data", []) if message["type"] == "ticks" else []:
            if tick["instrument_token"] == token:
                return dict(tick)


async def test_a_quote_and_a_full_client_make_one_upstream_subscription_in_full_then_back_to_quote(
    start_server: StartServer, kite: FakeKiteThread
) -> None:
    server = await start_server()
    async with aiohttp.ClientSession() as session:
        quote = await open_ticks(session, server)
        await quote.send_str(json.dumps({"a": "subscribe", "v": [INFY]}))
        await eventually(lambda: _equals(upstream(kite), [{INFY: "quote"}]), timeout=10)
        assert "depth" not in await tick_of(quote, INFY)

        full = await open_ticks(session, server)
        await full.send_str(json.dumps({"a": "subscribe", "v": [INFY]}))
        await full.send_str(json.dumps({"a": "mode", "v": ["full", [INFY]]}))
        await eventually(lambda: _equals(upstream(kite), [{INFY: "full"}]), timeout=10)
        await kite.do(kite.fake.set_price, "NSE", "INFY", "1573.70")
        got_full = await tick_of(full, INFY)
        while got_full["last_price"] != 1573.7:
            got_full = await tick_of(full, INFY)
        assert got_full["mode"] == "full" and len(got_full["depth"]["sell"]) == 5
        got_quote = await tick_of(quote, INFY)
        while got_quote["last_price"] != 1573.7:
            got_quote = await tick_of(quote, INFY)
        assert got_quote["mode"] == "quote" and "depth" not in got_quote  # cut to what it asked for

        await full.close()  # the last full client leaves: the one upstream subscription goes back to quote
        await eventually(lambda: _equals(upstream(kite), [{INFY: "quote"}]), timeout=10)
        await quote.close()
        await eventually(lambda: _equals(upstream(kite), [{}]), timeout=10)
        assert await subscribe_messages(kite, INFY) == 1  # one upstream subscription throughout


async def _equals(value: Awaitable[Any], expected: Any) -> bool:
    return bool(await value == expected)


async def test_instruments_spread_over_connections_and_past_the_limit_are_refused(
    start_server: StartServer, kite: FakeKiteThread
) -> None:
    server = await start_server(TICKER_FEED_INSTRUMENTS_PER_CONNECTION="2")
    async with httpx.AsyncClient(base_url=server.url, headers=HEADERS) as http:
        five = [INFY, RELIANCE, SBIN, TCS, NIFTY_50]  # an index among them: Kite's index packets
        r = await http.post("/subscriptions", json={"account_id": ACCOUNT, "instrument_token": five})
        assert r.status_code == 201, r.text

        async def spread() -> bool:
            return sorted(len(c) for c in await upstream(kite)) == [1, 2, 2]

        await eventually(spread, timeout=15)
        assert set().union(*(await upstream(kite))) == set(five)
        r = await http.post("/subscriptions", json={"account_id": ACCOUNT, "instrument_token": [SBIN_BSE, NIFTY_FUT]})
        assert r.status_code == 422 and "at most 6 instruments" in r.json()["detail"], r.text
        r = await http.post("/subscriptions", json={"account_id": ACCOUNT, "instrument_token": 999999901})
        assert r.status_code == 422 and "999999901" in r.json()["detail"], r.text


async def test_the_real_kiteticker_on_ws_kite_parses_the_values_the_fake_sent(
    start_server: StartServer, kite: FakeKiteThread, token: str
) -> None:
    server = await start_server()
    await kite.do(kite.fake.set_price, "NSE", "INFY", "1573.70")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TICKER_CLIENT),
        f"ws://127.0.0.1:{server.port}/ws/kite",
        kite.fake.api_key,
        token,  # the account's own Kite credentials, as KiteTicker sends them
        "--tokens",
        str(INFY),
        "--mode",
        "full",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        events: list[dict[str, Any]] = []

        async def parsed_tick() -> dict[str, Any]:
            while True:
                line = await proc.stdout.readline()
                assert line, f"KiteTicker exited: {events[-5:]}"
                event = json.loads(line)
                events.append(event)
                for tick in event.get("ticks", []):
                    if tick["instrument_token"] == INFY and tick["mode"] == "full" and tick["last_price"] == 1573.75:
                        return dict(tick)

        async def move() -> None:
            await asyncio.sleep(1.0)  # after KiteTicker subscribed: a change the fake sends upstream
            await kite.do(kite.fake.set_price, "NSE", "INFY", "1573.75")

        mover = asyncio.create_task(move())
        got = await asyncio.wait_for(parsed_tick(), 30)
        await mover
        sent = await kite.do(kite.fake.market.tick, INFY, "full")
        assert got["last_price"] == float(sent.last_price)
        assert got["ohlc"] == {k: float(getattr(sent, k)) for k in ("open", "high", "low", "close")}
        assert got["volume_traded"] == sent.volume and got["last_traded_quantity"] == sent.last_quantity
        assert got["total_buy_quantity"] == sent.buy_quantity and got["total_sell_quantity"] == sent.sell_quantity
        assert got["average_traded_price"] == float(sent.average_price)
        for side, levels in (("buy", sent.buy_depth), ("sell", sent.sell_depth)):
            assert [(d["price"], d["quantity"], d["orders"]) for d in got["depth"][side]] == [
                (float(Decimal(level.price)), level.quantity, level.orders) for level in levels
            ]
        assert any(e["event"] == "connect" for e in events)
    finally:
        proc.kill()
        await proc.wait()


async def test_the_real_kiteticker_on_ws_kite_gets_the_accounts_order_updates(start_server: StartServer) -> None:
    """KiteTicker's `on_order_update`: the paper account's order, placed over REST while it listens,
    arrives as Kite's `{"type": "order"}` messages, ending with the fill; task events stay out."""
    server = await start_server()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TICKER_CLIENT),
        f"ws://127.0.0.1:{server.port}/ws/kite",
        "primary",
        SERVICE_KEY,  # an account id and a service key that may use it
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        updates: list[dict[str, Any]] = []

        async def next_event() -> dict[str, Any]:
            line = await proc.stdout.readline()
            assert line, "KiteTicker exited"
            event: dict[str, Any] = json.loads(line)
            return event

        while (await asyncio.wait_for(next_event(), 30))["event"] != "connect":
            pass
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers=HEADERS) as http:
            r = await http.post("/orders/place", json=SPEC_ORDER | {"tag": "kws-order"})
            assert r.status_code == 201, r.text
            order_id = r.json()["order"]["order_id"]

        async def until_complete() -> None:
            while True:
                event = await next_event()
                if event["event"] == "order_update":
                    updates.append(event["data"])
                    if event["data"]["status"] == "COMPLETE":
                        return

        await asyncio.wait_for(until_complete(), 30)
    finally:
        proc.kill()
        await proc.wait()
    assert {u["order_id"] for u in updates} == {order_id}
    last = updates[-1]
    assert (last["tradingsymbol"], last["transaction_type"], last["quantity"]) == ("NIFTY25NOVFUT", "BUY", 50)
    assert last["filled_quantity"] == 50 and last["average_price"] > 0 and last["tag"] == "kws-order"
    assert all(u["event"].startswith("order_") for u in updates)


async def test_kitetickers_credentials_must_open_the_account(start_server: StartServer, kite: FakeKiteThread) -> None:
    server = await start_server()
    async with aiohttp.ClientSession() as session:
        for api_key, access_token in (
            (kite.fake.api_key, "not-the-token"),
            ("primary", "not-a-service-key-000"),
            ("no-such-account", SERVICE_KEY),
        ):
            url = f"ws://127.0.0.1:{server.port}/ws/kite?api_key={api_key}&access_token={access_token}"
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url)
            assert refused.value.status == 403
        # a service key that may use a paper account opens it: KiteTicker's protocol, heartbeats included
        ws = await session.ws_connect(
            f"ws://127.0.0.1:{server.port}/ws/kite?api_key=primary&access_token={SERVICE_KEY}"
        )
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == b"\x00"
        await ws.close()


async def test_a_silent_upstream_is_detected_health_shows_it_and_ticks_resume_after_the_reconnect(
    start_server: StartServer, kite: FakeKiteThread
) -> None:
    server = await start_server()
    async with httpx.AsyncClient(base_url=server.url) as http, aiohttp.ClientSession() as session:
        r = await http.post("/subscriptions", json={"account_id": ACCOUNT, "instrument_token": INFY}, headers=HEADERS)
        assert r.status_code == 201
        ws = await open_ticks(session, server)
        await tick_of(ws, INFY)

        async def running() -> bool:
            return bool((await http.get("/health")).json()["ticker"]["running"])

        await eventually(running, timeout=15)  # the feed's state recorded as connected first
        before = (await kite.do(lambda: kite.fake.ticker_stats)).connections_total
        await kite.do(kite.fake.ticker_silence, True)

        async def not_running() -> dict[str, Any] | None:
            # the operator's key: since issue 12 a caller without a key sees no account's feed
            health: dict[str, Any] = (await http.get("/health", headers=HEADERS)).json()
            return health if health["ticker"]["running"] is False else None

        health = await eventually(not_running, timeout=15)
        assert health["ticker"]["feeds"][ACCOUNT] != "connected"
        await kite.do(kite.fake.ticker_silence, False)
        await eventually(lambda: kite.do(lambda: kite.fake.ticker_stats.connections_total > before), timeout=15)
        await eventually(lambda: _equals(upstream(kite), [{INFY: "quote"}]), timeout=10)  # resubscribed
        await kite.do(kite.fake.set_price, "NSE", "INFY", "1499.95")
        tick = await tick_of(ws, INFY)
        while tick["last_price"] != 1499.95:
            tick = await tick_of(ws, INFY)
        await eventually(running, timeout=15)
