"""A webhook receiver for tests: a real aiohttp server on loopback that records every request."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.e2e.server import free_port


@dataclass
class Receiver:
    """A webhook receiver: records every request; `mode` decides the answer."""

    port: int = 0
    host: str = "127.0.0.1"
    mode: str = "ok"  # ok | down (503) | gone (410) | hang | retry_after
    received: list[dict[str, Any]] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)  # (arrived, answered or dropped) per request
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append({"headers": dict(request.headers), "body": body, "mode": self.mode})
        arrived = time.monotonic()
        self.arrival.append(arrived)
        try:
            return await self._answer(request)
        finally:
            self.spans.append((arrived, time.monotonic()))

    async def _answer(self, request: web.Request) -> web.Response:
        if self.mode == "hang":  # until the sender gives up and closes the connection (30 s at most)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and request.transport is not None and not request.transport.is_closing():
                await asyncio.sleep(0.01)
        if self.mode == "down":
            return web.Response(status=503)
        if self.mode == "gone":
            return web.Response(status=410)
        if self.mode == "retry_after":
            return web.Response(status=429, headers={"Retry-After": "1"})
        if self.mode == "redirect":
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        return web.Response(text="OK")

    def peak_concurrency(self, after: float = 0.0) -> int:
        """The most requests held open at once among those that arrived after `after` (monotonic)."""
        spans = [s for s in self.spans if s[0] > after]
        return max((sum(1 for a, b in spans if a <= start < b) for start, _ in spans), default=0)

    def ok_bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.received if r["mode"] == "ok"]


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    """Receivers started by the test (with `start_receiver`), stopped after it."""
    made: list[Receiver] = []
    yield made
    for r in made:
        if r.runner is not None:
            await r.runner.cleanup()


async def start_receiver(made: list[Receiver], mode: str = "ok", host: str = "127.0.0.1") -> Receiver:
    receiver = Receiver(port=free_port(), host=host, mode=mode)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    receiver.runner = web.AppRunner(app, shutdown_timeout=0.1)
    await receiver.runner.setup()
    await web.TCPSite(receiver.runner, host, receiver.port).start()
    made.append(receiver)
    return receiver
