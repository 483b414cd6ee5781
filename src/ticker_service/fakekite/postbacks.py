"""Postbacks: each order change POSTed as raw JSON to the app's postback URL, best effort.

One at a time, in the order the changes happened (Kite promises no order, but a fake that reorders
at random would make tests flaky without teaching anything the switches do not). No retries: Kite
documents none. The checksum is sha256(order_id + order_timestamp + api_secret), hex.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp


def postback_checksum(order_id: str, order_timestamp: str, api_secret: str) -> str:
    return hashlib.sha256((order_id + order_timestamp + api_secret).encode()).hexdigest()


@dataclass
class SentPostback:
    payload: dict[str, Any]
    sent_wall: float
    status: int | None = None
    error: str | None = None


class PostbackSender:
    def __init__(self, url: str | None, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self.sent: list[SentPostback] = []
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="fakekite-postbacks")

    def send(self, payload: dict[str, Any]) -> None:
        if self.url is not None:
            self._queue.put_nowait(payload)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued postback has been attempted (for tests and for an orderly stop)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    async def _run(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            while True:
                payload = await self._queue.get()
                try:
                    await self._post(payload)
                finally:
                    self._queue.task_done()
        finally:
            await self._session.close()

    async def _post(self, payload: dict[str, Any]) -> None:
        assert self._session is not None and self.url is not None
        record = SentPostback(payload, time.time())
        self.sent.append(record)
        body = json.dumps(payload).encode()
        try:
            async with self._session.post(self.url, data=body, headers={"Content-Type": "application/json"}) as resp:
                record.status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            record.error = f"{type(exc).__name__}: {exc}"

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
