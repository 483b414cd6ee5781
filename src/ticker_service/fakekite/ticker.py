"""The ticker WebSocket: Kite's handshake checks, subscriptions and modes, binary ticks, order messages.

Each connection has one writer task draining its own queue, so a frame is never interleaved with
another and a slow client never holds up the others. Silence drops every frame (heartbeats, ticks,
order messages) while the socket stays open: the dead-but-open socket a client must detect itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from ticker_service.fakekite.errors import INVALID_SESSION, TOO_MANY_REQUESTS, TOO_MANY_TICKER_CONNECTIONS
from ticker_service.fakekite.market import Market
from ticker_service.fakekite.packets import HEARTBEAT, MODES, pack_frame, pack_packet

MAX_INSTRUMENTS_PER_CONNECTION = 3000
_STAMPED_SIZES = (44, 184)  # a stock's quote and full packets: the ones with a last_quantity (bytes 8-12)
_U32 = struct.Struct(">I")


def stamp_send_time(packets: list[bytes]) -> list[bytes]:
    """Each stock packet's last_quantity replaced by the time now in microseconds modulo 2**32.

    For benchmarks (`--stamp-send-time`): Kite's own timestamps are whole seconds, this lets a client
    measure a tick's way from the feed to itself to the microsecond, as `(now_us - stamp) % 2**32`.
    """
    stamp = _U32.pack(time.time_ns() // 1000 % 2**32)
    return [p[:8] + stamp + p[12:] if len(p) in _STAMPED_SIZES else p for p in packets]


@dataclass
class TickerStats:
    """Counts for tests: handshakes accepted and refused, control messages received."""

    connections_total: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    subscribe_messages: int = 0
    unsubscribe_messages: int = 0
    mode_messages: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "connections_total": self.connections_total,
            "refused": {str(k): v for k, v in self.refused.items()},
            "subscribe_messages": self.subscribe_messages,
            "unsubscribe_messages": self.unsubscribe_messages,
            "mode_messages": self.mode_messages,
            "messages": list(self.messages),
        }


class TickerConnection:
    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self.ws = ws
        self.transport = transport
        self.subscriptions: dict[int, str] = {}
        self.queue: asyncio.Queue[bytes | str | None] = asyncio.Queue()


class TickerHub:
    def __init__(
        self,
        market: Market,
        *,
        api_key: str,
        token_valid: Callable[[str], bool],
        max_connections: int = 3,
        heartbeat_interval: float = 1.0,
        stamp_send_time: bool = False,
    ) -> None:
        self.market = market
        self.stamp_send_time = stamp_send_time
        self.api_key = api_key
        self.token_valid = token_valid
        self.max_connections = max_connections
        self.heartbeat_interval = heartbeat_interval
        self.connections: list[TickerConnection] = []
        self.silenced = False
        self.stats = TickerStats()

    @staticmethod
    def _refuse(status: int, error_type: str, message: str) -> web.Response:
        body = {"status": "error", "message": message, "data": None, "error_type": error_type}
        return web.json_response(body, status=status)

    def handshake_error(self, request: web.Request) -> web.Response | None:
        """Kite's handshake checks: a valid session (403 otherwise), at most N sockets per key (429)."""
        api_key = request.query.get("api_key", "")
        access_token = request.query.get("access_token", "")
        refusal: web.Response | None = None
        if api_key != self.api_key or not self.token_valid(access_token):
            refusal = self._refuse(403, "TokenException", INVALID_SESSION)
        elif len(self.connections) >= self.max_connections:
            refusal = self._refuse(429, "NetworkException", f"{TOO_MANY_REQUESTS}: {TOO_MANY_TICKER_CONNECTIONS}")
        if refusal is not None:
            self.stats.refused[refusal.status] = self.stats.refused.get(refusal.status, 0) + 1
        return refusal

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """The socket's life after a successful handshake."""
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        conn = TickerConnection(ws, request.transport)
        self.connections.append(conn)  # before the first await: the cap holds for concurrent handshakes
        tasks: list[asyncio.Task[None]] = []
        try:
            await ws.prepare(request)
            self.stats.connections_total += 1
            loop = asyncio.get_running_loop()
            tasks = [loop.create_task(self._write(conn)), loop.create_task(self._heartbeat(conn))]
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_control(conn, msg.data)
        finally:
            if conn in self.connections:
                self.connections.remove(conn)
            conn.queue.put_nowait(None)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return ws

    async def _write(self, conn: TickerConnection) -> None:
        while True:
            item = await conn.queue.get()
            if item is None:
                return
            if self.silenced or conn.ws.closed:
                continue
            try:
                if isinstance(item, bytes):
                    await conn.ws.send_bytes(item)
                else:
                    await conn.ws.send_str(item)
            except (ConnectionError, RuntimeError):
                return

    async def _heartbeat(self, conn: TickerConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if not self.silenced:
                conn.queue.put_nowait(HEARTBEAT)

    def _on_control(self, conn: TickerConnection, text: str) -> None:
        try:
            message = json.loads(text)
            action = message["a"]
            value = message["v"]
        except (ValueError, KeyError, TypeError):
            self._send_error(conn, "Invalid message")
            return
        self.stats.messages.append(message)
        if action == "subscribe":
            self.stats.subscribe_messages += 1
            tokens = self._known(value)
            room = MAX_INSTRUMENTS_PER_CONNECTION - len(conn.subscriptions)
            fresh = [t for t in tokens if t not in conn.subscriptions][: max(room, 0)]
            for token in fresh:
                conn.subscriptions[token] = "quote"
            self._send_ticks(conn, [t for t in tokens if t in conn.subscriptions])
        elif action == "unsubscribe":
            self.stats.unsubscribe_messages += 1
            for token in self._known(value):
                conn.subscriptions.pop(token, None)
        elif action == "mode":
            self.stats.mode_messages += 1
            if not isinstance(value, list) or len(value) != 2 or value[0] not in MODES:
                self._send_error(conn, "Invalid mode")
                return
            mode, tokens = value[0], [t for t in self._known(value[1]) if t in conn.subscriptions]
            for token in tokens:
                conn.subscriptions[token] = mode
            self._send_ticks(conn, tokens)

    def _known(self, value: Any) -> list[int]:
        if not isinstance(value, list):
            return []
        table = self.market.instruments
        return [t for t in value if isinstance(t, int) and table.by_token(t) is not None]

    def _send_ticks(self, conn: TickerConnection, tokens: Iterable[int]) -> None:
        packets = [pack_packet(self.market.tick(t, conn.subscriptions[t])) for t in tokens]
        if packets and self.stamp_send_time:
            packets = stamp_send_time(packets)
        if packets:
            conn.queue.put_nowait(pack_frame(packets))

    def _send_error(self, conn: TickerConnection, message: str) -> None:
        conn.queue.put_nowait(json.dumps({"type": "error", "data": message}))

    # what the fake pushes

    def broadcast_ticks(self, tokens: Iterable[int]) -> None:
        tokens = list(tokens)
        for conn in self.connections:
            self._send_ticks(conn, [t for t in tokens if t in conn.subscriptions])

    def broadcast_order(self, data: dict[str, Any]) -> None:
        text = json.dumps({"type": "order", "data": data})
        for conn in self.connections:
            conn.queue.put_nowait(text)

    def broadcast_error(self, message: str) -> None:
        for conn in self.connections:
            self._send_error(conn, message)

    async def disconnect_all(self, *, abort: bool = False) -> int:
        """Close every socket (a close frame, or with `abort` the bare TCP connection); how many."""
        closing = list(self.connections)
        for conn in closing:
            if abort:
                if isinstance(conn.transport, asyncio.Transport):
                    conn.transport.abort()
            else:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.close(code=1001, message=b"going away")
        return len(closing)
