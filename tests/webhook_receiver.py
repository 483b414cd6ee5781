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
    mode: str = "ok"  # ok | down (503) | gone (410) | hang | retry_after
    received: list[dict[str, Any]] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append({"headers": dict(request.headers), "body": body, "mode": self.mode})
        self.arrival.append(time.monotonic())
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "down":
            return web.Response(status=503)
        if self.mode == "gone":
            return web.Response(status=410)
        if self.mode == "retry_after":
            return web.Response(status=429, headers={"Retry-After": "1"})
        if self.mode == "redirect":
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        return web.Response(text="OK")

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


async def start_receiver(made: list[Receiver], mode: str = "ok") -> Receiver:
    receiver = Receiver(port=free_port(), mode=mode)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    receiver.runner = web.AppRunner(app, shutdown_timeout=0.1)
    await receiver.runner.setup()
    await web.TCPSite(receiver.runner, "127.0.0.1", receiver.port).start()
    made.append(receiver)
    return receiver
