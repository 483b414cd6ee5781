"""The fake Kite on an event loop of its own, in a thread, for tests of the whole service.

Litestar's test client runs the application on another loop and blocks the test's loop while it
waits for an answer, so a fake on the test's loop could not answer the service's calls in the
meantime. This fake keeps answering whatever the test does; the test reaches it through `do()`,
which runs a function on the fake's loop (its state is only ever touched there).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest

from tests.fakekite_fixture import API_KEY, API_SECRET
from ticker_service.fakekite import FakeKite

T = TypeVar("T")


class FakeKiteThread:
    def __init__(self, **settings: Any) -> None:
        settings = {"api_key": API_KEY, "api_secret": API_SECRET, "tick_interval": None, **settings}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-kite", daemon=True)
        self.fake = FakeKite(**settings)

    async def start(self) -> FakeKiteThread:
        self.thread.start()
        await self.arun(self.fake.start())
        return self

    async def arun(self, coro: Any) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def do(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the fake's loop (awaited there when it returns a coroutine)."""

        async def call() -> T:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                return await result  # type: ignore[no-any-return]
            return result

        return await self.arun(call())  # type: ignore[no-any-return]

    async def stop(self) -> None:
        await self.arun(self.fake.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self.thread.join, 10)

    @property
    def url(self) -> str:
        return self.fake.url

    @property
    def ticker_url(self) -> str:
        return self.fake.ticker_url


@pytest.fixture
async def threaded_fakes() -> AsyncIterator[list[FakeKiteThread]]:
    made: list[FakeKiteThread] = []
    yield made
    for fake in made:
        await fake.stop()


async def start_threaded_fake(made: list[FakeKiteThread], **settings: Any) -> FakeKiteThread:
    fake = await FakeKiteThread(**settings).start()
    made.append(fake)
    return fake


@pytest.fixture
async def kite(threaded_fakes: list[FakeKiteThread]) -> FakeKiteThread:
    """A fake Kite on its own loop (the service's tests use this one)."""
    return await start_threaded_fake(threaded_fakes)
