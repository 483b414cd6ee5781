"""Ceilings: the least an order gateway can do, with no project code.

`POST /orders/place` is the intake ceiling; `POST /kite/place` the floor of a durable Kite gateway;
`WS /ws/ticks` the ceiling of tick fan-out.

A bare Litestar app whose POST handler, through a raw asyncpg pool, does in ONE transaction what
the service's intake must do at minimum: insert a task row (shaped like `order_tasks`), insert an
outbox event (shaped like `outbox_events`) and `pg_notify`, then answers 202 with a small JSON.
The service's accepted-orders/s is compared against this app's on the same machine and database.

Run (as bench/intake.py does):

    DATABASE_URL=postgresql+asyncpg://postgres@/postgres?host=/some/pgdata PORT=8191 \
        .venv/bin/python bench/ceiling_app.py

`POST /kite/place` (bench/kite_overhead.py) is what any gateway that keeps invariants 1 and 2 must
do for one Kite order, and nothing more: commit the accepted order (a 2xx promises it survives),
commit that it is being sent (so a crash cannot send it twice unseen), call Kite with the official
client on a worker thread (kiteconnect is synchronous), commit the answer, reply. Three durable
commits and a thread hop; no rate limits, no events, no validation beyond the body's types. Set
KITE_ROOT, KITE_API_KEY and KITE_ACCESS_TOKEN for it.

`WS /ws/ticks` (bench/ticks.py): with CEILING_TICKS_UPSTREAM (a Kite ticker URL with api_key and
access_token) and CEILING_TICKS_TOKENS (comma-separated instrument tokens) set, the app holds one
ticker connection, subscribes those instruments in quote mode, and turns each binary frame into ONE
JSON text in Kite's tick shape (`{"type": "ticks", "data": [...]}`, the shape `/ws/ticks` sends),
encoded once and handed to every connected socket, each drained by its own sender. No database, no
conflation, no wants: the least a tick fan-out over the same HTTP stack can do.

It creates its own `bench_`-prefixed tables at start-up. Served by uvicorn, one worker, with the
same uvicorn options as `ticker-service serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import asyncpg
import msgspec
import uvicorn
from kiteconnect import KiteConnect
from litestar import Litestar, Response, WebSocket, get, post, websocket

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_order_tasks (
    task_id    text PRIMARY KEY,
    params     jsonb NOT NULL,
    status     text NOT NULL,
    account_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE IF NOT EXISTS bench_outbox_seq;
CREATE TABLE IF NOT EXISTS bench_outbox_events (
    id         bigserial PRIMARY KEY,
    event_id   text NOT NULL UNIQUE,
    account_id text NOT NULL,
    seq        bigint NOT NULL,
    data       jsonb NOT NULL
);
"""

INSERT_TASK = (
    "INSERT INTO bench_order_tasks (task_id, params, status, account_id) VALUES ($1, $2::jsonb, 'pending', $3)"
)
INSERT_EVENT = (
    "INSERT INTO bench_outbox_events (event_id, account_id, seq, data) "
    "VALUES ($1, $2, nextval('bench_outbox_seq'), $3::jsonb)"
)
NOTIFY = "SELECT pg_notify('bench', $1)"
KITE_SENDING = "UPDATE bench_order_tasks SET status = 'sending' WHERE task_id = $1"
KITE_DONE = "UPDATE bench_order_tasks SET status = 'completed', params = params || $2::jsonb WHERE task_id = $1"


class PlaceOrder(msgspec.Struct):
    """The same body the service takes (parsed and type-checked, like the service does)."""

    exchange: str
    tradingsymbol: str
    transaction_type: str
    quantity: int
    product: str
    order_type: str
    price: float | None = None
    trigger_price: float | None = None
    account_id: str = "primary"


_pool: asyncpg.Pool | None = None


def _dsn() -> str:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@/postgres")
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def lifespan(_app: Litestar) -> AsyncIterator[None]:
    global _pool
    # same size as the service's engine (pool_size 12 + overflow 10)
    _pool = await asyncpg.create_pool(_dsn(), min_size=12, max_size=22)
    async with _pool.acquire() as conn:
        await conn.execute(SCHEMA)
    upstream = os.environ.get("CEILING_TICKS_UPSTREAM")
    feed = asyncio.create_task(_tick_feed(upstream)) if upstream else None
    try:
        yield
    finally:
        if feed is not None:
            feed.cancel()
            with contextlib.suppress(BaseException):
                await feed
        await _pool.close()


@post("/orders/place", status_code=202)
async def place(data: PlaceOrder, wait: float = 0.0) -> Response[dict[str, str]]:
    assert _pool is not None
    task_id = uuid.uuid4().hex
    params = msgspec.json.encode(data).decode()
    event = msgspec.json.encode({"event": "task.accepted", "task_id": task_id, "status": "pending"}).decode()
    async with _pool.acquire() as conn, conn.transaction():
        await conn.execute(INSERT_TASK, task_id, params, data.account_id)
        await conn.execute(INSERT_EVENT, uuid.uuid4().hex, data.account_id, event)
        await conn.execute(NOTIFY, task_id)
    return Response({"task_id": task_id, "status": "pending"}, status_code=202)


_kite_threads = ThreadPoolExecutor(8, thread_name_prefix="kite")
_kite: KiteConnect | None = None


def _kite_client() -> KiteConnect:
    global _kite
    if _kite is None:
        _kite = KiteConnect(
            os.environ.get("KITE_API_KEY", ""),
            access_token=os.environ.get("KITE_ACCESS_TOKEN"),
            root=os.environ.get("KITE_ROOT"),
        )
    return _kite


@post("/kite/place", status_code=201)
async def kite_place(data: PlaceOrder) -> Response[dict[str, str]]:
    assert _pool is not None
    task_id = uuid.uuid4().hex
    await _pool.execute(INSERT_TASK, task_id, msgspec.json.encode(data).decode(), data.account_id)
    await _pool.execute(KITE_SENDING, task_id)
    order = {
        "variety": "regular",
        "exchange": data.exchange,
        "tradingsymbol": data.tradingsymbol,
        "transaction_type": data.transaction_type,
        "quantity": data.quantity,
        "product": data.product,
        "order_type": data.order_type,
        "market_protection": -1,
        "tag": task_id[:20],
    }
    loop = asyncio.get_running_loop()
    order_id = await loop.run_in_executor(_kite_threads, lambda: _kite_client().place_order(**order))
    await _pool.execute(KITE_DONE, task_id, msgspec.json.encode({"order_id": order_id}).decode())
    return Response({"task_id": task_id, "order_id": str(order_id)}, status_code=201)


# ---- tick fan-out ceiling --------------------------------------------------------------------------

_QUOTE = struct.Struct(">IiIiIIIiiii")  # a stock's quote packet (44 bytes), Kite's layout
_U16 = struct.Struct(">H")
_tick_sockets: set[_TickSocket] = set()
_tick_encoder = msgspec.json.Encoder()


class _TickSocket:
    __slots__ = ("pending", "ready")

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.ready = asyncio.Event()


def _quote_json(packet: bytes) -> dict[str, object]:
    token, last, last_qty, avg, volume, buy_qty, sell_qty, open_, high, low, close = _QUOTE.unpack(packet)
    return {
        "mode": "quote",
        "tradable": True,
        "instrument_token": token,
        "last_price": last / 100,
        "last_quantity": last_qty,
        "average_price": avg / 100,
        "volume": volume,
        "buy_quantity": buy_qty,
        "sell_quantity": sell_qty,
        "ohlc": {"open": open_ / 100, "high": high / 100, "low": low / 100, "close": close / 100},
        "change": (last - close) / 100 if close else 0.0,
    }


def _frame_json(frame: bytes) -> str | None:
    """One upstream frame as the one JSON text every socket gets (None for a heartbeat)."""
    if len(frame) < 2:
        return None
    (count,) = _U16.unpack_from(frame, 0)
    ticks, at = [], 2
    for _ in range(count):
        (size,) = _U16.unpack_from(frame, at)
        if size == _QUOTE.size:
            ticks.append(_quote_json(frame[at + 2 : at + 2 + size]))
        at += 2 + size
    return _tick_encoder.encode({"type": "ticks", "data": ticks}).decode() if ticks else None


async def _tick_feed(upstream: str) -> None:
    import aiohttp

    tokens = [int(t) for t in os.environ.get("CEILING_TICKS_TOKENS", "").split(",") if t]
    while True:
        try:
            async with aiohttp.ClientSession() as session, session.ws_connect(upstream, max_msg_size=0) as ws:
                await ws.send_str(json.dumps({"a": "subscribe", "v": tokens}))
                await ws.send_str(json.dumps({"a": "mode", "v": ["quote", tokens]}))
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.BINARY:
                        continue
                    text = _frame_json(msg.data)
                    if text is None:
                        continue
                    for sock in _tick_sockets:
                        sock.pending.append(text)
                        sock.ready.set()
        except (OSError, aiohttp.ClientError) as exc:
            print(f"tick upstream: {exc}; reconnecting", flush=True)
        await asyncio.sleep(1.0)


@websocket("/ws/ticks")
async def ticks(socket: WebSocket[object, object, object]) -> None:
    await socket.accept()
    me = _TickSocket()
    _tick_sockets.add(me)
    try:
        with contextlib.suppress(Exception):  # a send to a client that left: forget the client
            await socket.send_text(_tick_encoder.encode({"type": "connected"}).decode())
            while True:
                await me.ready.wait()
                me.ready.clear()
                batch, me.pending = me.pending, []
                for text in batch:
                    await socket.send_text(text)
    finally:
        _tick_sockets.discard(me)


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[place, kite_place, ticks, health], lifespan=[lifespan], debug=False)


def main() -> None:
    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8191")),
        log_config=None,
        access_log=False,
        lifespan="on",
        ws_per_message_deflate=False,  # as `ticker-service serve` by default (TICKER_WS_COMPRESSION)
    )


if __name__ == "__main__":
    main()
