"""A small Kite ticker server on loopback for the ticker client's tests (aiohttp).

It speaks what KITE.md describes: the handshake with `api_key` and `access_token` in the query
(403 for a token it does not know, or any status the test queues), a 1-byte heartbeat on a
schedule, JSON control messages from the client, binary frames and text messages pushed by the
test. A test can make one connection fall silent (the socket stays open, nothing is sent) or
close it. Every handshake and every control message is recorded with the loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

HEARTBEAT = b"\x00"


@dataclass
class Handshake:
    at: float
    api_key: str | None
    access_token: str | None
    status: int  # 101 when accepted


@dataclass
class Connection:
    ws: web.WebSocketResponse
    opened_at: float
    controls: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    silent: bool = False
    last_sent_at: float | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def subscriptions(self) -> dict[int, str]:
        """What Kite would now stream on this connection, from the control messages it received."""
        state: dict[int, str] = {}
        for _, message in self.controls:
            action, value = message["a"], message["v"]
            if action == "subscribe":
                for token in value:
                    state.setdefault(token, "quote")
            elif action == "unsubscribe":
                for token in value:
                    state.pop(token, None)
            elif action == "mode":
                mode, tokens = value
                for token in tokens:
                    if token in state:
                        state[token] = mode
        return state

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)
        self.last_sent_at = asyncio.get_running_loop().time()


class FakeKiteTicker:
    def __init__(self, *, valid_tokens: set[str], heartbeat_interval: float = 0.05) -> None:
        self.valid_tokens = valid_tokens
        self.heartbeat_interval = heartbeat_interval
        self.refuse: deque[int] = deque()  # statuses for the next handshakes, before token checks
        self.handshakes: list[Handshake] = []
        self.connections: list[Connection] = []
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)  # its access log would show the token
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"ws://{host}:{port}/"
        return self.url

    async def stop(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(Exception):
                await connection.ws.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def current(self) -> Connection:
        return self.connections[-1]

    def accepted(self) -> list[Handshake]:
        return [h for h in self.handshakes if h.status == 101]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        token = request.query.get("access_token")
        status = self.refuse.popleft() if self.refuse else (101 if token in self.valid_tokens else 403)
        self.handshakes.append(Handshake(loop.time(), request.query.get("api_key"), token, status))
        if status != 101:
            return web.json_response(
                {"status": "error", "message": "refused", "error_type": "TokenException"}, status=status
            )
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = Connection(ws=ws, opened_at=loop.time())
        self.connections.append(connection)
        beats = asyncio.create_task(self._heartbeats(connection))
        self._tasks.add(beats)
        beats.add_done_callback(self._tasks.discard)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    connection.controls.append((loop.time(), json.loads(message.data)))
        finally:
            beats.cancel()
            connection.closed.set()
        return ws

    async def _heartbeats(self, connection: Connection) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while not connection.ws.closed:
                if not connection.silent:
                    await connection.send(HEARTBEAT)
                await asyncio.sleep(self.heartbeat_interval)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """A generous bound on an event, not a measure of speed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
