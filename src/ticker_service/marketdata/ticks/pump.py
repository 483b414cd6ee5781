"""A tick socket's two loops: sending what its conflating slot holds, and reading its control messages.

One writer per socket (`send_loop`), so frames never interleave. It takes everything pending at
once and sends it as one message; while that send waits on a slow reader, new ticks only replace
pending ones (`client.TickClient`). The session ends when either loop ends: the client left, the
connection broke, or the server is shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from litestar import WebSocket

from ticker_service.marketdata.ticks.client import TickClient
from ticker_service.marketdata.ticks.entry import TickEntry
from ticker_service.stream import close_codes

log = structlog.get_logger("ticker.marketdata")

Encode = Callable[[TickClient, dict[int, TickEntry]], list[str | bytes]]


async def refuse(socket: WebSocket[Any, Any, Any], code: int, text: str) -> None:
    with contextlib.suppress(Exception):
        await socket.close(code, close_codes.reason(text))


async def send(socket: WebSocket[Any, Any, Any], message: str | bytes) -> None:
    if isinstance(message, bytes):
        await socket.send_bytes(message)
    else:
        await socket.send_text(message)


async def send_loop(
    socket: WebSocket[Any, Any, Any],
    client: TickClient,
    encode: Encode,
    *,
    idle: float | None = None,
    idle_message: bytes | str | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> None:
    """Until the client is closed: pending ticks as `encode` makes them; `idle_message` after `idle` s."""
    while not client.closed:
        batch = await client.take(idle)
        if client.closed:
            return
        if not batch:
            if idle_message is not None:
                await send(socket, idle_message)
            continue
        shared = client.taken_from
        if shared is not None:  # exactly a batch every client was offered: built once per wants
            messages = shared.messages(client.endpoint, client.wants, functools.partial(encode, client, batch))
        else:
            messages = encode(client, batch)
        for message in messages:
            await send(socket, message)
        if on_sent is not None:
            on_sent(len(batch))


async def run_until_first_ends(*loops: Awaitable[None]) -> None:
    tasks = [asyncio.ensure_future(loop) for loop in loops]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and (error := task.exception()) is not None:
                log.debug("tick socket ended", error=type(error).__name__)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
