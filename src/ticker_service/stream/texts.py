"""A WebSocket's incoming messages as text, until the client leaves.

The order stream and the tick sockets both read only small control messages (a ping, KiteTicker's
subscribe/mode JSON); some clients send them as binary frames, so those are read as UTF-8.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import WebSocket

OnText = Callable[[str], Awaitable[None]]


async def receive_texts(socket: WebSocket[Any, Any, Any], on_text: OnText) -> None:
    """Every text (or binary, read as UTF-8) message to `on_text`, until the client leaves."""
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if not isinstance(text, str):
            raw = message.get("bytes")
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else ""
        await on_text(text)
