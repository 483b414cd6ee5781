"""The WebSocket order stream against real server processes, real PostgreSQL and real WebSocket clients.

Every stream assertion is about seq: each connection receives strictly consecutive seqs from its
start (no gap, no duplicate), and what it receives matches the outbox rows in the database.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from tests.conftest import SPEC_ORDER, eventually
from tests.e2e.server import ServerProcess

ACCOUNTS = {
    "primary": {"broker": "paper", "funds": 1e12},
    "second": {"broker": "paper", "funds": 1e12},
}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
API_KEY_ALL = "all-accounts-key-0001"
API_KEY_SECOND = "second-only-key-0002"

StartServer = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def start_server(database_url: str, tmp_path: Path) -> AsyncIterator[StartServer]:
    servers: list[ServerProcess] = []

    async def start(**env: str) -> ServerProcess:
        server = ServerProcess(database_url, tmp_path, ACCOUNTS, **env)
        servers.append(server)
        server.start()
        await server.wait_healthy()
        return server

    yield start
    for server in servers:
        server.stop()


def ws_url(server: ServerProcess, account_id: str = "primary", **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"ws://127.0.0.1:{server.port}/advanced/ws/orders/{account_id}" + (f"?{query}" if query else "")


class Stream:
    """An aiohttp WebSocket client that keeps every message it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, server: ServerProcess, account_id: str = "primary", **params: Any
    ) -> Stream:
        return cls(await session.ws_connect(ws_url(server, account_id, **params)))

    @property
    def updates(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "order_update"]

    @property
    def seqs(self) -> list[int]:
        return [m["seq"] for m in self.updates]

    async def next(self, timeout: float = 20.0) -> dict[str, Any] | None:
        """The next message, or None once the server closed the socket."""
        msg = await self.ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            message: dict[str, Any] = json.loads(msg.data)
            self.messages.append(message)
            return message
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            if msg.type == aiohttp.WSMsgType.CLOSE:
                self.close_code, self.close_reason = msg.data, msg.extra
            else:
                self.close_code = self.ws.close_code
            return None
        raise AssertionError(f"unexpected frame {msg!r}")

    async def until(self, done: Callable[[Stream], bool], timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not done(self):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"stream condition not met within {timeout}s; last seqs {self.seqs[-5:]}")
            if await self.next(timeout=left) is None:
                raise AssertionError(f"socket closed ({self.close_code} {self.close_reason}) before the condition")

    async def until_closed(self, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while await self.next(timeout=max(0.1, deadline - asyncio.get_running_loop().time())) is not None:
            pass


async def place(http: httpx.AsyncClient, n: int, *, account_id: str = "primary", wait: float = 0) -> list[str]:
    """Place `n` spec orders concurrently; their task ids."""
    sem = asyncio.Semaphore(32)

    async def one() -> str:
        async with sem:
            r = await http.post(f"/orders/place?wait={wait:g}", json=SPEC_ORDER | {"account_id": account_id})
            assert r.status_code in (201, 202), r.text
            task_id: str = r.json()["task_id"]
            return task_id

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def last_seq(db: asyncpg.Connection, account_id: str = "primary") -> int:
    value: int = await db.fetchval(
        "SELECT COALESCE((SELECT last_seq FROM account_seq WHERE account_id = $1), 0)", account_id
    )
    return value


async def all_settled(db: asyncpg.Connection) -> bool:
    """Every task resolved, so no more events are coming."""
    return bool(await db.fetchval("SELECT count(*) = 0 FROM order_tasks WHERE status NOT IN ('completed','rejected')"))


def assert_consecutive(seqs: list[int], start: int) -> None:
    assert seqs == list(range(start, start + len(seqs))), f"not consecutive from {start}: {seqs[:20]}..."


async def assert_matches_outbox(db: asyncpg.Connection, updates: list[dict[str, Any]], account_id: str) -> None:
    """Each update is the outbox row of its seq: same event id, same data."""
    rows = await db.fetch(
        "SELECT seq, event_id, data FROM outbox_events WHERE account_id = $1 AND seq = ANY($2::bigint[])",
        account_id,
        [u["seq"] for u in updates],
    )
    by_seq = {r["seq"]: r for r in rows}
    for u in updates:
        row = by_seq[u["seq"]]
        assert u["event_id"] == row["event_id"] and u["data"] == row["data"] and u["account_id"] == account_id


# ---- protocol -------------------------------------------------------------------------------------


async def test_spec_order_streams_connected_then_every_event_in_seq_order(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server()
    async with aiohttp.ClientSession() as session, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        stream = await Stream.open(session, server)
        hello = await stream.next()
        assert hello is not None and hello["type"] == "connected" and hello["account_id"] == "primary"
        assert RFC3339_UTC.match(hello["timestamp"]) and hello["since"] == 0

        r = await http.post("/orders/place?wait=5", json=SPEC_ORDER | {"tag": "ws-spec"})
        assert r.status_code == 201, r.text
        task_id, order_id = r.json()["task_id"], r.json()["order_id"]

        def kinds(s: Stream) -> list[tuple[str, str]]:
            return [(u["data"]["event"], u["data"].get("status")) for u in s.updates]

        wanted = {("task_status", "completed"), ("order_placed", "COMPLETE"), ("order_completed", "COMPLETE")}
        await stream.until(lambda s: wanted <= set(kinds(s)))
        events = kinds(stream)
        assert events[:2] == [("task_status", "pending"), ("task_status", "running")]
        assert events.index(("order_placed", "COMPLETE")) < events.index(("order_completed", "COMPLETE"))
        assert_consecutive(stream.seqs, 1)
        for u in stream.updates:
            assert u["type"] == "order_update" and u["account_id"] == "primary"
            assert RFC3339_UTC.match(u["timestamp"]) and u["event_id"]
            assert u["data"]["task_id"] == task_id
        done = next(u["data"] for u in stream.updates if u["data"]["event"] == "order_completed")
        assert done["order_id"] == order_id and done["status"] == "COMPLETE" and done["filled_quantity"] == 50
        assert done["average_price"] > 0 and done["transaction_type"] == "BUY"
        assert done["tradingsymbol"] == "NIFTY25NOVFUT" and done["tag"] == "ws-spec"
        await assert_matches_outbox(db, stream.updates, "primary")
        assert stream.seqs[-1] == await last_seq(db)
        await stream.ws.close()


async def test_ping_gets_pong_and_stats_count_sockets_per_account(start_server: StartServer) -> None:
    server = await start_server()

    async def stats(http: httpx.AsyncClient) -> dict[str, Any]:
        r = await http.get("/advanced/ws/stats")
        assert r.status_code == 200
        body: dict[str, Any] = r.json()
        return body

    async def gauge(http: httpx.AsyncClient, account_id: str) -> float:
        text = (await http.get("/metrics")).text
        m = re.search(rf'^active_websocket_connections{{account="{account_id}"}} (\S+)$', text, re.M)
        return float(m.group(1)) if m else 0.0

    async with aiohttp.ClientSession() as session, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await stats(http))["total_connections"] == 0
        streams = [
            await Stream.open(session, server, "primary"),
            await Stream.open(session, server, "primary"),
            await Stream.open(session, server, "second"),
        ]
        for s in streams:
            assert (await s.next()) is not None  # connected
        await streams[0].ws.send_str("ping")
        assert await streams[0].next() == {"type": "pong"}
        await streams[2].ws.send_str('{"type": "ping"}')
        assert await streams[2].next() == {"type": "pong"}
        await streams[1].ws.send_str("hello")
        reply = await streams[1].next()
        assert reply is not None and reply["type"] == "error"

        body = await stats(http)
        instance = (await http.get("/health")).json()["instance_id"]
        assert body["total_connections"] == 3 and body["accounts"] == {"primary": 2, "second": 1}
        assert body["instance_id"] == instance
        assert await gauge(http, "primary") == 2 and await gauge(http, "second") == 1

        for s in streams:
            await s.ws.close()
        await eventually(lambda: _zero(http))
        assert await gauge(http, "primary") == 0 and await gauge(http, "second") == 0


async def _zero(http: httpx.AsyncClient) -> bool:
    body = (await http.get("/advanced/ws/stats")).json()
    return bool(body["total_connections"] == 0 and body["accounts"] == {"primary": 0, "second": 0})


async def _refused(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> Stream:
    stream = Stream(await session.ws_connect(url, headers=headers))
    assert await stream.next() is None, "expected a close, got a message"
    return stream


async def test_refusals_carry_an_application_close_code_and_a_reason(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    keys = json.dumps({API_KEY_ALL: ["*"], API_KEY_SECOND: ["second"]})
    server = await start_server(TICKER_API_KEYS=keys)
    async with aiohttp.ClientSession() as session:
        s = await _refused(session, ws_url(server, "primary"))
        assert s.close_code == 4401 and "X-API-Key" in (s.close_reason or "")
        s = await _refused(session, ws_url(server, "primary", api_key="not-a-key-at-all-000"))
        assert s.close_code == 4401
        s = await _refused(session, ws_url(server, "primary"), headers={"X-API-Key": API_KEY_SECOND})
        assert s.close_code == 4403 and "primary" in (s.close_reason or "")
        s = await _refused(session, ws_url(server, "nobody", api_key=API_KEY_ALL))
        assert s.close_code == 4404 and "nobody" in (s.close_reason or "")
        s = await _refused(session, ws_url(server, "primary", api_key=API_KEY_ALL, since="abc"))
        assert s.close_code == 4400 and "since" in (s.close_reason or "")
        s = await _refused(session, ws_url(server, "primary", api_key=API_KEY_ALL, since=5))
        assert s.close_code == 4400 and "since=5" in (s.close_reason or "")

        for stream in (
            Stream(await session.ws_connect(ws_url(server, "primary", api_key=API_KEY_ALL))),
            Stream(await session.ws_connect(ws_url(server, "second"), headers={"X-API-Key": API_KEY_SECOND})),
        ):
            hello = await stream.next()
            assert hello is not None and hello["type"] == "connected"
            await stream.ws.close()

        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.get("/advanced/ws/stats")).status_code == 401
            r = await http.get("/advanced/ws/stats", headers={"X-API-Key": API_KEY_SECOND})
            assert r.status_code == 200 and set(r.json()["accounts"]) == {"second"}

    # events deleted by the clean-up can no longer be replayed: say so instead of skipping them
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers={"X-API-Key": API_KEY_ALL}) as http:
        await place(http, 2, wait=5)
    await db.execute("DELETE FROM outbox_events WHERE account_id = 'primary' AND seq <= 3")
    async with aiohttp.ClientSession() as session:
        s = await _refused(session, ws_url(server, "primary", api_key=API_KEY_ALL, since=1))
        assert s.close_code == 4410 and "after seq 1" in (s.close_reason or "") and "seq 4" in (s.close_reason or "")
        ok = Stream(await session.ws_connect(ws_url(server, "primary", api_key=API_KEY_ALL, since=3)))
        await ok.until(lambda st: len(st.updates) >= 3)
        assert_consecutive(ok.seqs, 4)
        await ok.ws.close()


# ---- since ------------------------------------------------------------------------------------------


async def test_since_replays_exactly_the_missed_events_then_continues_live(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server()
    async with aiohttp.ClientSession() as session, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        await place(http, 6, wait=5)
        await eventually(lambda: all_settled(db))
        top = await last_seq(db)
        assert top >= 30
        k = 7
        stream = await Stream.open(session, server, since=k)
        hello = await stream.next()
        assert hello is not None and hello["type"] == "connected" and hello["since"] == k
        await stream.until(lambda s: len(s.updates) >= top - k)
        assert_consecutive(stream.seqs, k + 1)

        everything = await Stream.open(session, server, since=0)
        await everything.until(lambda s: len(s.updates) >= top)
        assert_consecutive(everything.seqs, 1)

        fresh = await Stream.open(session, server)  # no since: only what comes after connecting
        hello = await fresh.next()
        assert hello is not None and hello["since"] == top

        await place(http, 2)
        await eventually(lambda: all_settled(db))
        final = await last_seq(db)
        for s in (stream, everything):
            await s.until(lambda s: s.seqs[-1] >= final)
        await fresh.until(lambda s: bool(s.seqs) and s.seqs[-1] >= final)
        assert_consecutive(stream.seqs, k + 1)
        assert_consecutive(everything.seqs, 1)
        assert_consecutive(fresh.seqs, top + 1)
        assert stream.seqs[-1] == everything.seqs[-1] == fresh.seqs[-1] == final
        await assert_matches_outbox(db, everything.updates, "primary")


async def test_reconnecting_with_since_during_a_burst_misses_nothing(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server()
    n_orders = 150
    connections: list[list[int]] = []
    starts: list[int] = []
    async with aiohttp.ClientSession() as session, httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        stream = await Stream.open(session, server, since=0)
        burst = asyncio.create_task(place(http, n_orders))
        received = 0
        since = 0
        for cut in (40, 90, 150, 260, 400):  # disconnect after this many updates, mid-burst, then resume
            need = cut - received
            await stream.until(lambda s, need=need: len(s.updates) >= need, timeout=60)
            await stream.ws.close()
            connections.append(stream.seqs)
            starts.append(since)
            received += len(stream.updates)
            since = stream.seqs[-1] if stream.seqs else since
            stream = await Stream.open(session, server, since=since)
        assert len(await burst) == n_orders
        await eventually(lambda: all_settled(db), timeout=90)
        final = await last_seq(db)
        await stream.until(lambda s: bool(s.seqs) and s.seqs[-1] >= final, timeout=60)
        connections.append(stream.seqs)
        starts.append(since)
        await stream.ws.close()
        await eventually(lambda: _zero(http))
    assert since < final, "the last reconnect should have come before the end of the burst"

    for start, seqs in zip(starts, connections, strict=True):
        assert_consecutive(seqs, start + 1)  # every connection: no gap, no duplicate, in order
    union = sorted({s for seqs in connections for s in seqs})
    assert union == list(range(1, final + 1))
    assert final >= n_orders * 5


# ---- slow readers ----------------------------------------------------------------------------------


async def test_a_reader_that_stops_reading_is_closed_while_others_get_everything(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server(TICKER_WS_BACKLOG="50")
    async with aiohttp.ClientSession() as session, httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        normal = await Stream.open(session, server, since=0)
        reader = asyncio.create_task(normal.until(lambda s: False, timeout=300))  # reads everything, all along

        # the slow reader: a tiny receive buffer, and a client that stops taking frames after the first
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        slow = await ws_connect(ws_url(server, since=0), sock=sock, max_queue=1, ping_interval=None, compression=None)
        hello = json.loads(await slow.recv())
        assert hello["type"] == "connected"

        async def live() -> int:
            body = (await http.get("/advanced/ws/stats")).json()
            tailer = body["tailers"].get("primary", {})
            return int(tailer.get("live", 0))

        await eventually(lambda: _equals(live(), 2))
        rounds = 0
        while await live() == 2:  # keep the events coming until the slow reader is dropped
            assert rounds < 40, "the slow reader was never dropped"
            await place(http, 25)
            await eventually(lambda: all_settled(db), timeout=120)
            top = await last_seq(db)
            await eventually(lambda top=top: bool(normal.seqs) and normal.seqs[-1] >= top, timeout=60)
            rounds += 1

        # it reads again: what it gets is consecutive, then the close says where to resume
        got: list[int] = []
        closed: websockets.ConnectionClosed | None = None
        while closed is None:
            try:
                got.append(json.loads(await asyncio.wait_for(slow.recv(), 30))["seq"])
            except websockets.ConnectionClosed as exc:
                closed = exc
        assert closed.rcvd is not None, "no close frame"
        code, reason = closed.rcvd.code, closed.rcvd.reason
        assert code == 4008, (code, reason)
        assert_consecutive(got, 1)
        assert reason == f"backlog limit exceeded; reconnect with since={got[-1]}"

        await eventually(lambda: all_settled(db), timeout=120)
        final = await last_seq(db)
        resumed = await Stream.open(session, server, since=got[-1])
        await resumed.until(lambda s: bool(s.seqs) and s.seqs[-1] >= final, timeout=60)
        assert_consecutive(resumed.seqs, got[-1] + 1)

        await eventually(lambda: bool(normal.seqs) and normal.seqs[-1] >= final, timeout=60)
        reader.cancel()
        assert_consecutive(normal.seqs, 1)
        assert normal.close_code is None
        await resumed.ws.close()
        await normal.ws.close()


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


# ---- connection lifecycle --------------------------------------------------------------------------


async def test_dead_connections_are_closed_by_protocol_pings(start_server: StartServer) -> None:
    server = await start_server(TICKER_WS_PING_INTERVAL="0.3", TICKER_WS_PING_TIMEOUT="0.5")
    async with aiohttp.ClientSession() as session, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        alive = Stream(await session.ws_connect(ws_url(server), autoping=True))
        dead = Stream(await session.ws_connect(ws_url(server), autoping=False))  # never answers a ping
        assert await alive.next() is not None and await dead.next() is not None
        keep_reading = asyncio.create_task(alive.until(lambda s: False, timeout=300))  # answers pings meanwhile

        async def primary() -> int:
            return int((await http.get("/advanced/ws/stats")).json()["accounts"]["primary"])

        await eventually(lambda: _equals(primary(), 1), timeout=30)
        # the dead one was closed by the server; the live one is still served
        await alive.ws.send_str("ping")
        await eventually(lambda: {"type": "pong"} in alive.messages)
        assert not keep_reading.done()
        keep_reading.cancel()
        while True:
            msg = await dead.ws.receive(timeout=10)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break
        await alive.ws.close()


async def test_shutdown_closes_sockets_with_1001_and_the_seq_to_resume_from(
    start_server: StartServer, db: asyncpg.Connection
) -> None:
    server = await start_server()
    async with aiohttp.ClientSession() as session, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        stream = await Stream.open(session, server)
        await stream.next()
        await place(http, 1, wait=5)
        await eventually(lambda: all_settled(db))
        final = await last_seq(db)
        await stream.until(lambda s: bool(s.seqs) and s.seqs[-1] == final)
        await asyncio.to_thread(server.stop)  # SIGTERM
        await stream.until_closed()
        assert stream.close_code == 1001
        assert stream.close_reason == f"server shutting down; reconnect with since={final}"
