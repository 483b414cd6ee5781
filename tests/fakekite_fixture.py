"""The fake Kite for tests: a `fake_kite` fixture, a factory for fakes with other settings, and the real
`KiteTicker` as a child process whose callbacks a test can wait for.

The fake runs on the test's event loop; the official REST client is synchronous, so call it through
`asyncio.to_thread` (`call(...)` below), or the fake never gets to answer.

Prices move only when a test sets them (`fake.set_price`) or steps them (`fake.advance_prices()`),
unless a test asks for a tick loop (`fake.set_tick_interval(seconds)`): order tests are never raced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kiteconnect import KiteConnect

from ticker_service.fakekite import FakeKite

API_KEY = "fakekey"
API_SECRET = "fakesecret"
TICKER_SCRIPT = Path(__file__).with_name("kite_ticker_client.py")

T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking kiteconnect call off the loop the fake answers on."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def start_fake_kite(made: list[FakeKite], **settings: Any) -> FakeKite:
    """A fake on a free loopback port, stopped by the `fake_kites` fixture after the test."""
    settings = {"api_key": API_KEY, "api_secret": API_SECRET, "tick_interval": None, **settings}
    fake = FakeKite(**settings)
    await fake.start()
    made.append(fake)
    return fake


@pytest.fixture
async def fake_kites() -> AsyncIterator[list[FakeKite]]:
    made: list[FakeKite] = []
    yield made
    for fake in made:
        await fake.stop()


@pytest.fixture
async def fake_kite(fake_kites: list[FakeKite]) -> FakeKite:
    """A running fake with its defaults (api key `fakekey`, secret `fakesecret`, user AB1234)."""
    return await start_fake_kite(fake_kites)


def kite_client(fake: FakeKite, *, timeout: float | None = None, access_token: str | None = None) -> KiteConnect:
    """The real client, pointed at the fake, with a fresh session unless one is given."""
    token = access_token or fake.issue_access_token()
    return KiteConnect(fake.api_key, access_token=token, root=fake.url, timeout=timeout)


class TickerProcess:
    """`kiteconnect.KiteTicker` in a child process (its Twisted reactor cannot restart in ours)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            self.events.append(json.loads(line))
            self._changed.set()
        self._changed.set()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    async def wait_for(self, check: Callable[[list[dict[str, Any]]], Any], timeout: float = 30.0) -> Any:
        """Wait until `check(events)` is truthy, and return what it returned."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = check(self.events)
            if result:
                return result
            if self._reader.done() and self.proc.returncode is not None:
                raise AssertionError(f"ticker client exited ({self.proc.returncode}); events: {self.events[-5:]}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"not seen within {timeout}s; last events: {self.events[-5:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        await self.proc.wait()
        await self._reader


async def start_ticker(
    fake: FakeKite,
    access_token: str,
    *,
    tokens: list[int] | None = None,
    mode: str = "quote",
    stop_on_close: bool = False,
) -> TickerProcess:
    args = [str(TICKER_SCRIPT), fake.ticker_url, fake.api_key, access_token, "--mode", mode]
    if tokens:
        args += ["--tokens", ",".join(map(str, tokens))]
    if stop_on_close:
        args.append("--stop-on-close")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    return TickerProcess(proc)


@pytest.fixture
async def tickers() -> AsyncIterator[list[TickerProcess]]:
    """Ticker client processes a test starts (append them), stopped after it."""
    made: list[TickerProcess] = []
    yield made
    for t in made:
        await t.stop()
