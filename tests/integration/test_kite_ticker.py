"""The asyncio Kite ticker client against a Kite ticker server on loopback (`tests/fake_kite_ticker.py`).

Time bounds come from the client's configured values plus a baseline measured in the same test
(how long a connect-and-subscribe took here), never from fixed expectations of speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from tests.fake_kite_ticker import FakeKiteTicker, wait_until
from tests.kite_frames import frame, ltp_packet, postback, quote_packet, sample_json, sample_packet
from ticker_service.brokers.kite.ticker import KiteTickerClient, TickerConfig, TickerState
from ticker_service.brokers.kite.ticker_messages import OrderUpdate
from ticker_service.marketdata.packets import Tick, parse_packet

TOKEN = "day1-SECRET-token-3f9a"
NEW_TOKEN = "day2-SECRET-token-77c1"
API_KEY = "kitefront"
INFY, RELIANCE, NIFTY = 408065, 738561, 256265


@dataclass
class TokenBox:
    """The token store: what the service would read from PostgreSQL at each (re)connect."""

    value: str | None
    calls: int = 0

    async def __call__(self) -> str | None:
        self.calls += 1
        return self.value


class Logs:
    def __init__(self, buffer: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
        self.buffer = buffer
        self.caplog = caplog

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines() if line]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["event"] == event]

    def text(self) -> str:
        return self.buffer.getvalue() + self.caplog.text


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Logs]:
    """Every structlog line the client writes, rendered as in production (JSON), plus stdlib logs."""
    previous = structlog.get_config()
    buffer = io.StringIO()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=buffer),
        cache_logger_on_first_use=False,
    )
    caplog.set_level(logging.DEBUG)
    try:
        yield Logs(buffer, caplog)
    finally:
        structlog.configure(**previous)


@pytest.fixture
async def kite() -> AsyncIterator[FakeKiteTicker]:
    server = FakeKiteTicker(valid_tokens={TOKEN})
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def make_client(server: FakeKiteTicker, tokens: TokenBox, **config: Any) -> KiteTickerClient:
    settings = {"silence_timeout": 1.0, "backoff_initial": 0.1, "backoff_max": 1.0, "token_poll_interval": 0.2}
    return KiteTickerClient(
        api_key=API_KEY,
        access_token=tokens,
        ticker_root=server.url,
        account_id="kite-test",
        config=TickerConfig(**{**settings, **config}),
    )


@contextlib.asynccontextmanager
async def running(client: KiteTickerClient) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(client.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await client.close()


async def connected_and_subscribed(server: FakeKiteTicker, client: KiteTickerClient, connections: int) -> None:
    await wait_until(
        lambda: (
            len(server.connections) >= connections
            and server.current.subscriptions() == client.subscriptions
            and client.state is TickerState.CONNECTED
        ),
        what=f"connection {connections} subscribed",
    )


async def drain_ticks(client: KiteTickerClient, into: list[Tick]) -> None:
    async for batch in client.ticks():
        into.extend(map(parse_packet, batch))


async def drain_orders(client: KiteTickerClient, into: list[OrderUpdate]) -> None:
    async for batch in client.order_updates():
        into.extend(batch)


async def test_ticks_and_order_updates_arrive_and_bad_frames_are_skipped(kite: FakeKiteTicker, logs: Logs) -> None:
    client = make_client(kite, TokenBox(TOKEN))
    await client.subscribe([INFY], "full")
    await client.subscribe([NIFTY])
    ticks: list[Tick] = []
    orders: list[OrderUpdate] = []
    async with running(client):
        readers = [asyncio.create_task(drain_ticks(client, ticks)), asyncio.create_task(drain_orders(client, orders))]
        await connected_and_subscribed(kite, client, 1)
        assert kite.handshakes[0].api_key == API_KEY
        # a new subscription starts in quote; the mode message follows the subscribe, as KiteTicker does
        assert [m for _, m in kite.current.controls] == [
            {"a": "subscribe", "v": [INFY]},
            {"a": "mode", "v": ["full", [INFY]]},
            {"a": "subscribe", "v": [NIFTY]},
            {"a": "mode", "v": ["quote", [NIFTY]]},
        ]

        await kite.current.send(frame(sample_packet("full")))
        await kite.current.send(b"\x00\x05garbage")  # malformed: skipped, the connection stays
        await kite.current.send(json.dumps({"type": "order", "data": postback()}))
        await kite.current.send(json.dumps({"type": "error", "data": "Invalid instrument"}))
        await kite.current.send(json.dumps({"type": "brand_new_type", "data": {}}))
        await kite.current.send(frame(sample_packet("quote"), ltp_packet(NIFTY, 2_450_000)))
        await wait_until(lambda: len(ticks) == 3 and len(orders) == 1, what="ticks and the order update")

        assert ticks[0].to_dict() == sample_json("full")
        assert (ticks[1].instrument_token, ticks[1].mode, ticks[2].last_price) == (INFY, "quote", 24500.0)
        assert orders[0].order_id == postback()["order_id"]
        assert orders[0].raw == postback()
        status = client.status()
        assert status.state is TickerState.CONNECTED
        assert (status.reconnects, status.malformed_frames) == (0, 1)
        assert status.last_error == "kite: Invalid instrument"
        assert logs.named("malformed ticker frame skipped")
        assert logs.named("unknown ticker message ignored")[0]["type"] == "brand_new_type"

    # close() (on the way out of `running`) ends the consumers' iterators
    await asyncio.wait_for(asyncio.gather(*readers), 10)
    assert client.state is TickerState.DISCONNECTED


async def test_control_messages_while_connected_and_resubscription_after_a_drop(
    kite: FakeKiteTicker, logs: Logs
) -> None:
    client = make_client(kite, TokenBox(TOKEN))
    await client.subscribe([INFY, RELIANCE])
    async with running(client):
        await connected_and_subscribed(kite, client, 1)
        sent_before = len(kite.current.controls)

        await client.subscribe([NIFTY], "ltp")
        await client.set_mode("full", [RELIANCE])
        await client.unsubscribe([INFY])
        await wait_until(lambda: len(kite.current.controls) == sent_before + 4, what="control messages")
        assert [m for _, m in kite.current.controls[sent_before:]] == [
            {"a": "subscribe", "v": [NIFTY]},
            {"a": "mode", "v": ["ltp", [NIFTY]]},
            {"a": "mode", "v": ["full", [RELIANCE]]},
            {"a": "unsubscribe", "v": [INFY]},
        ]
        assert client.subscriptions == {RELIANCE: "full", NIFTY: "ltp"}

        await kite.current.ws.close()  # Kite drops the connection
        await connected_and_subscribed(kite, client, 2)

        assert kite.current.subscriptions() == {RELIANCE: "full", NIFTY: "ltp"}
        assert client.status().reconnects == 1
        assert logs.named("ticker connection closed")
        last = kite.current

    await wait_until(last.closed.is_set, what="the server to see the client leave")
    assert last.ws.close_code == 1000  # a clean goodbye, not a cut socket


async def test_silence_means_a_dead_socket_reconnect_and_resubscribe(kite: FakeKiteTicker, logs: Logs) -> None:
    client = make_client(kite, TokenBox(TOKEN), silence_timeout=0.5, backoff_initial=0.2, backoff_max=2.0)
    config = client.config
    await client.subscribe([INFY], "full")
    await client.subscribe([NIFTY], "ltp")
    loop = asyncio.get_running_loop()
    async with running(client):
        started = loop.time()
        await connected_and_subscribed(kite, client, 1)
        baseline = loop.time() - started  # one connect-and-subscribe on this machine, now
        await asyncio.sleep(config.silence_timeout)  # heartbeats keep it alive meanwhile
        assert client.status().reconnects == 0

        first = kite.current
        first.silent = True  # the socket stays open; nothing more comes
        await connected_and_subscribed(kite, client, 2)

        assert first.last_sent_at is not None
        resubscribed_at = kite.current.controls[-1][0]
        elapsed = resubscribed_at - first.last_sent_at
        assert elapsed >= config.silence_timeout
        slack = 4 * baseline + 0.5  # scheduling on a busy machine, generously
        assert elapsed <= config.silence_timeout + config.backoff_initial + slack
        assert kite.current.subscriptions() == {INFY: "full", NIFTY: "ltp"}
        assert client.status().reconnects == 1
        assert logs.named("ticker silent; reconnecting")
        await wait_until(lambda: first.closed.is_set(), what="the silent socket closed by the client")


async def test_refused_token_waits_for_a_new_one_without_hammering(kite: FakeKiteTicker, logs: Logs) -> None:
    kite.valid_tokens = {NEW_TOKEN}
    tokens = TokenBox(TOKEN)  # yesterday's
    client = make_client(kite, tokens, token_poll_interval=0.1, backoff_initial=0.01, backoff_max=0.02)
    await client.subscribe([INFY])
    loop = asyncio.get_running_loop()
    async with running(client):
        await wait_until(lambda: client.state is TickerState.TOKEN_EXPIRED, what="token_expired")
        polls = tokens.calls
        await wait_until(lambda: tokens.calls >= polls + 5, what="the token store polled")

        # five polls later, still one handshake: the retry waits for the token, not for a backoff
        assert len(kite.handshakes) == 1
        last_error = client.status().last_error
        assert last_error is not None and "403" in last_error

        changed_at = loop.time()
        tokens.value = NEW_TOKEN
        await connected_and_subscribed(kite, client, 1)

        assert len(kite.handshakes) == 2
        assert kite.handshakes[1].at - changed_at <= 2 * client.config.token_poll_interval + 1.0
        assert logs.named("ticker handshake refused; waiting for a new access token")[0]["status"] == 403


async def test_token_changed_nudge_reconnects_at_once(kite: FakeKiteTicker, logs: Logs) -> None:
    kite.valid_tokens = {NEW_TOKEN}
    tokens = TokenBox(TOKEN)
    client = make_client(kite, tokens, token_poll_interval=60.0)
    async with running(client):
        await wait_until(lambda: client.state is TickerState.TOKEN_EXPIRED, what="token_expired")

        tokens.value = NEW_TOKEN
        client.token_changed()
        # well inside the 60 s poll interval: only the nudge can have woken it
        await wait_until(lambda: client.state is TickerState.CONNECTED, timeout=20, what="connected after nudge")

        assert [h.status for h in kite.handshakes] == [403, 101]


async def test_too_many_connections_backs_off(kite: FakeKiteTicker, logs: Logs) -> None:
    kite.refuse.extend([429, 429, 429])
    client = make_client(kite, TokenBox(TOKEN), backoff_initial=0.1, backoff_max=0.3)
    async with running(client):
        await wait_until(lambda: client.state is TickerState.RATE_LIMITED, what="rate_limited")
        await connected_and_subscribed(kite, client, 1)

    assert [h.status for h in kite.handshakes] == [429, 429, 429, 101]
    gaps = [b.at - a.at for a, b in zip(kite.handshakes, kite.handshakes[1:], strict=False)]
    for failures, gap in enumerate(gaps):  # at least half of each exponential step ("equal jitter")
        assert gap >= min(0.3, 0.1 * 2**failures) / 2
    assert len(logs.named("ticker handshake refused: too many connections; backing off")) == 3


async def test_a_slow_tick_consumer_delays_neither_heartbeats_nor_order_updates(
    kite: FakeKiteTicker, logs: Logs
) -> None:
    capacity = 20
    client = make_client(kite, TokenBox(TOKEN), silence_timeout=0.3, tick_buffer_size=capacity)
    instruments = [INFY, RELIANCE, (5 << 8) | 1]
    await client.subscribe(instruments, "quote")
    release = asyncio.Event()
    seen: list[Tick] = []
    orders: list[OrderUpdate] = []

    async def stuck_consumer() -> None:
        async for batch in client.ticks():
            seen.extend(map(parse_packet, batch))
            await release.wait()  # stuck on the first batch until the test lets go

    loop = asyncio.get_running_loop()
    async with running(client):
        consumer = asyncio.create_task(stuck_consumer())
        order_reader = asyncio.create_task(drain_orders(client, orders))
        await connected_and_subscribed(kite, client, 1)
        frames_before = client.status().frames
        sent = 0
        started = loop.time()
        price = 0
        # ticks, order updates and heartbeats for well over the silence timeout
        while loop.time() - started < 4 * client.config.silence_timeout or sent < 300:
            price += 1
            await kite.current.send(frame(*(quote_packet(t, last=price, close=1) for t in instruments)))
            sent += 1
            if price % 10 == 0:
                data = {**postback(), "order_id": f"ord-{price // 10}", "status": "OPEN"}
                await kite.current.send(json.dumps({"type": "order", "data": data}))
                sent += 1
            await asyncio.sleep(0.002)
        await wait_until(lambda: client.status().frames - frames_before >= sent, what="every frame read by the client")
        expected_orders = [f"ord-{i}" for i in range(1, price // 10 + 1)]
        await wait_until(lambda: len(orders) == len(expected_orders), what="every order update")

        status = client.status()
        assert [o.order_id for o in orders] == expected_orders
        assert status.reconnects == 0
        assert status.state is TickerState.CONNECTED
        assert len(kite.handshakes) == 1
        assert not logs.named("ticker silent; reconnecting")
        assert status.pending_ticks <= capacity + len(instruments)
        assert status.ticks_conflated > 0

        release.set()
        await wait_until(
            lambda: (
                {t.instrument_token: t.last_price for t in seen[-len(instruments) :]}
                == dict.fromkeys(instruments, price / 100)
            ),
            what="the latest tick of each instrument",
        )
        consumer.cancel()
        order_reader.cancel()


async def test_the_token_never_reaches_the_logs(kite: FakeKiteTicker, logs: Logs) -> None:
    kite.valid_tokens = {NEW_TOKEN}
    kite.refuse.extend([500])
    tokens = TokenBox(TOKEN)
    client = make_client(kite, tokens, silence_timeout=0.3)
    await client.subscribe([INFY], "full")
    async with running(client):
        await wait_until(lambda: client.state is TickerState.TOKEN_EXPIRED, what="token_expired")
        tokens.value = NEW_TOKEN
        client.token_changed()
        await connected_and_subscribed(kite, client, 1)
        await kite.current.send(json.dumps({"type": "error", "data": f"session {NEW_TOKEN} is not valid"}))
        kite.current.silent = True
        await connected_and_subscribed(kite, client, 2)
    # and a server that is gone
    await kite.stop()
    gone = make_client(kite, TokenBox(NEW_TOKEN))
    async with running(gone):
        await wait_until(lambda: gone.status().last_error is not None, what="a connection failure")

    assert [h.status for h in kite.handshakes] == [500, 403, 101, 101]
    text = logs.text()
    for event in (
        "ticker handshake refused",
        "ticker handshake refused; waiting for a new access token",
        "ticker connected",
        "kite ticker error message",
        "ticker silent; reconnecting",
        "ticker connection failed",
    ):
        assert logs.named(event), event  # the capture saw the whole story
    assert TOKEN not in text
    assert NEW_TOKEN not in text
    for status in (client.status(), gone.status()):
        assert NEW_TOKEN not in repr(status)
        assert TOKEN not in repr(status)
