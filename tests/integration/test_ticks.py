"""Live ticks on a paper account, through real servers on loopback and a real PostgreSQL.

Each server is a `ticker-service serve` process; ticks come from the paper price model and reach
sockets through PostgreSQL (the holder's NOTIFY), so every test here crosses the whole path.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.e2e.server import ServerProcess
from ticker_service.instruments import load_instruments
from ticker_service.marketdata.instruments.expiry import Holidays
from ticker_service.marketdata.instruments.paper_list import RollingInstrumentBook
from ticker_service.timeutil import today_ist

INFY, RELIANCE, SBIN, TCS = 408065, 738561, 779521, 2953217
KEY_ALPHA = "alpha-key-0123456789"
KEY_BRAVO = "bravo-key-0123456789"
ACCOUNTS = {"primary": {}, "bravo": {}}
FAST_TICKS = {"TICKER_PAPER_TICK_INTERVAL": "0.2"}

StartServer = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def start_server(database_url: str, tmp_path: Path) -> AsyncIterator[StartServer]:
    servers: list[ServerProcess] = []

    async def start(**env: str) -> ServerProcess:
        server = ServerProcess(database_url, tmp_path, ACCOUNTS, **{**FAST_TICKS, **env})
        servers.append(server)
        server.start()
        await server.wait_healthy()
        return server

    yield start
    for server in servers:
        server.stop()


class TickSocket:
    """A /ws/ticks client that keeps every message, and when each arrived."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[tuple[float, dict[str, Any]]] = []

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, server: ServerProcess, account_id: str = "primary", **params: str
    ) -> TickSocket:
        query = "&".join(f"{k}={v}" for k, v in {"account_id": account_id, **params}.items())
        return cls(await session.ws_connect(f"ws://127.0.0.1:{server.port}/ws/ticks?{query}"))

    async def next(self, timeout: float = 10.0) -> dict[str, Any] | None:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return None
        message: dict[str, Any] = json.loads(msg.data) if msg.data != "pong" else {"type": "pong"}
        self.messages.append((time.monotonic(), message))
        return message

    async def ticks_of(self, token: int, timeout: float = 10.0) -> dict[str, Any]:
        """The next tick of `token` (reading everything before it)."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(timeout=max(0.05, deadline - time.monotonic()))
            assert message is not None, "socket closed"
            for tick in message.get("data", []) if message["type"] == "ticks" else []:
                if tick["instrument_token"] == token:
                    return dict(tick)

    async def tokens_during(self, seconds: float) -> set[int]:
        seen: set[int] = set()
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = await self.next(timeout=left)
            except TimeoutError:
                break
            if message is not None and message["type"] == "ticks":
                seen |= {t["instrument_token"] for t in message["data"]}
        return seen

    async def send(self, action: str, value: Any) -> None:
        await self.ws.send_str(json.dumps({"a": action, "v": value}))


async def upstream(http: httpx.AsyncClient, account_id: str = "primary") -> int:
    body = (await http.get("/subscriptions", params={"account_id": account_id})).json()
    return int(body["upstream"])


async def test_subscribe_gives_a_snapshot_then_ticks_within_a_second_and_unsubscribe_stops_them(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with httpx.AsyncClient(base_url=server.url) as http, aiohttp.ClientSession() as session:
        r = await http.post("/subscriptions", json={"instrument_token": INFY})
        assert r.status_code == 201, r.text
        assert [s["instrument_token"] for s in r.json()["subscriptions"]] == [INFY]
        sock = await TickSocket.open(session, server)
        connected = await sock.next()
        assert connected is not None and connected["type"] == "connected"
        assert connected["subscriptions"] == [{"instrument_token": INFY, "mode": "quote"}]
        opened = time.monotonic()
        first = await sock.ticks_of(INFY, timeout=5)
        assert time.monotonic() - opened < 1.0  # the snapshot (or the first tick) at once
        assert (
            first["mode"] == "quote"
            and first["last_price"] > 0
            and set(first["ohlc"])
            == {
                "open",
                "high",
                "low",
                "close",
            }
        )
        assert "volume" in first and "change" in first and "depth" not in first

        # a stored subscription added later reaches the socket too, with a tick within a second
        asked = time.monotonic()
        assert (
            await http.post("/subscriptions", json={"instruments": ["NSE:SBIN"], "mode": "full"})
        ).status_code == 201
        full = await sock.ticks_of(SBIN, timeout=5)
        assert time.monotonic() - asked < 1.0
        assert full["mode"] == "full" and len(full["depth"]["buy"]) == 5 and full["exchange_timestamp"]

        # KiteTicker's own messages narrow the socket: INFY stops, SBIN goes on
        await sock.send("unsubscribe", [INFY])
        await sock.tokens_during(0.5)  # what was on its way before
        assert await sock.tokens_during(1.5) == {SBIN}

        # and the stored list: deleting SBIN stops it for a socket that follows the stored list
        other = await TickSocket.open(session, server)
        await other.next()
        assert (await http.delete(f"/subscriptions/{SBIN}")).status_code == 200
        await other.tokens_during(0.5)  # what was on its way before
        assert await other.tokens_during(1.5) == {INFY}
        assert [s["instrument_token"] for s in (await http.get("/subscriptions")).json()["subscriptions"]] == [INFY]


async def test_subscriptions_survive_a_restart(start_server: StartServer) -> None:
    first = await start_server()
    async with httpx.AsyncClient(base_url=first.url) as http:
        r = await http.post("/subscriptions", json={"instrument_token": [INFY, RELIANCE], "mode": "ltp"})
        assert r.status_code == 201, r.text
    first.stop()
    second = await start_server()
    async with httpx.AsyncClient(base_url=second.url) as http, aiohttp.ClientSession() as session:
        listed = (await http.get("/subscriptions")).json()["subscriptions"]
        assert {(s["instrument_token"], s["mode"]) for s in listed} == {(INFY, "ltp"), (RELIANCE, "ltp")}
        sock = await TickSocket.open(session, second)
        await sock.next()
        tick = await sock.ticks_of(RELIANCE)
        assert tick["mode"] == "ltp" and set(tick) == {"mode", "tradable", "instrument_token", "last_price"}


async def test_ticks_reach_sockets_on_every_instance_though_one_holds_the_feed(start_server: StartServer) -> None:
    one = await start_server()
    two = await start_server()
    async with httpx.AsyncClient(base_url=one.url) as http, aiohttp.ClientSession() as session:
        assert (await http.post("/subscriptions", json={"instrument_token": TCS})).status_code == 201
        sockets = [await TickSocket.open(session, server) for server in (one, two)]
        for sock in sockets:
            await sock.next()
        ticks = [await sock.ticks_of(TCS) for sock in sockets]
        assert all(t["last_price"] > 0 for t in ticks)
        # only one process holds the account's tick feed (an advisory lock), yet both deliver live ticks
        for sock in sockets:
            assert TCS in await sock.tokens_during(1.0)


async def test_unknown_tokens_are_refused_naming_them_and_the_limit_with_a_clear_message(
    start_server: StartServer,
) -> None:
    server = await start_server(TICKER_FEED_CONNECTIONS="1", TICKER_FEED_INSTRUMENTS_PER_CONNECTION="2")
    async with httpx.AsyncClient(base_url=server.url) as http, aiohttp.ClientSession() as session:
        r = await http.post("/subscriptions", json={"instrument_token": [INFY, 999999901]})
        assert r.status_code == 422 and "999999901" in r.text and str(INFY) not in r.json()["detail"], r.text
        r = await http.post("/subscriptions", json={"instruments": ["NSE:NOSUCH"]})
        assert r.status_code == 422 and "NSE:NOSUCH" in r.text
        assert (await http.get("/subscriptions")).json()["subscriptions"] == []
        assert (await http.post("/subscriptions", json={"instrument_token": [INFY, SBIN]})).status_code == 201
        r = await http.post("/subscriptions", json={"instrument_token": TCS})
        assert r.status_code == 422 and "at most 2 instruments" in r.text, r.text
        # a socket's own subscription past the limit is refused with the same words; nothing changes
        sock = await TickSocket.open(session, server)
        await sock.next()
        await sock.send("subscribe", [TCS, 999999901])
        error = await _next_of(sock, "error")
        assert "999999901" in error["message"]
        await sock.send("subscribe", [TCS])
        error = await _next_of(sock, "error")
        assert "at most 2 instruments" in error["message"]
        assert await upstream(http) == 2


async def _next_of(sock: TickSocket, kind: str) -> dict[str, Any]:
    while True:
        message = await sock.next()
        assert message is not None
        if message["type"] == kind:
            return message


async def test_a_key_that_may_not_use_the_account_gets_the_answer_of_an_unknown_account(
    start_server: StartServer,
) -> None:
    keys = json.dumps({KEY_ALPHA: ["primary"], KEY_BRAVO: ["bravo"]})
    server = await start_server(TICKER_API_KEYS=keys)
    alpha = {"X-API-Key": KEY_ALPHA}
    async with httpx.AsyncClient(base_url=server.url) as http, aiohttp.ClientSession() as session:
        assert (
            await http.post(
                "/subscriptions",
                json={"account_id": "bravo", "instrument_token": INFY},
                headers={"X-API-Key": KEY_BRAVO},
            )
        ).status_code == 201
        answers = []
        for account in ("bravo", "no-such-account"):
            post = await http.post(
                "/subscriptions", json={"account_id": account, "instrument_token": INFY}, headers=alpha
            )
            get = await http.get("/subscriptions", params={"account_id": account}, headers=alpha)
            delete = await http.delete(f"/subscriptions/{INFY}", params={"account_id": account}, headers=alpha)
            answers.append([(r.status_code, r.json()["detail"]) for r in (post, get, delete)])
        assert answers[0] == answers[1] and all(status == 403 for status, _ in answers[0]), answers
        closes = []
        for account in ("bravo", "no-such-account"):
            ws = await session.ws_connect(
                f"ws://127.0.0.1:{server.port}/ws/ticks?account_id={account}&api_key={KEY_ALPHA}"
            )
            msg = await ws.receive(timeout=10)
            closes.append((msg.type, msg.data, msg.extra.replace(account, "<account>")))
        assert closes[0] == closes[1] and closes[0][1] == 4404, closes
        stored = (
            await http.get("/subscriptions", params={"account_id": "bravo"}, headers={"X-API-Key": KEY_BRAVO})
        ).json()
        assert [s["instrument_token"] for s in stored["subscriptions"]] == [INFY]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_client_that_stops_reading_does_not_grow_the_servers_memory_and_others_still_get_ticks(
    start_server: StartServer,
) -> None:
    server = await start_server(TICKER_PAPER_TICK_INTERVAL="0.05", LOG_LEVEL="ERROR")
    assert server.proc is not None
    async with httpx.AsyncClient(base_url=server.url) as http, aiohttp.ClientSession() as session:
        book = RollingInstrumentBook(load_instruments(), today_ist(), Holidays(()))
        tokens = [i.instrument_token for i in book][:120]
        assert len(tokens) >= 50
        assert (await http.post("/subscriptions", json={"instrument_token": tokens, "mode": "full"})).status_code == 201
        # a reader that stops: a tiny receive buffer, and never a read after the first message
        stalled = await session.ws_connect(f"ws://127.0.0.1:{server.port}/ws/ticks?account_id=primary")
        reader = await TickSocket.open(session, server)
        received = 0
        size = 0

        async def read_for(seconds: float) -> None:
            nonlocal received, size
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                try:
                    msg = await reader.ws.receive(timeout=left)
                except TimeoutError:
                    return
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise AssertionError(f"reader's socket ended: {msg!r}")
                message = json.loads(msg.data)
                if message["type"] == "ticks":
                    received += len(message["data"])
                    size += len(msg.data)

        await read_for(4.0)  # warm up: the stalled socket's kernel buffers fill meanwhile
        baseline = rss_bytes(server.proc.pid)
        received = size = 0
        await read_for(8.0)
        grown = rss_bytes(server.proc.pid) - baseline
        assert received > 1000, received  # the reading client kept getting ticks
        # what an unbounded per-client queue would have had to hold for the stalled socket by now
        queued_if_unbounded = size
        assert grown < queued_if_unbounded / 4, (grown, queued_if_unbounded)
        stats = (await http.get("/metrics")).text
        conflated = [
            line for line in stats.splitlines() if line.startswith('market_ticks_conflated_total{stage="client"}')
        ]
        assert conflated and float(conflated[0].split()[-1]) > 0
        await stalled.close()
