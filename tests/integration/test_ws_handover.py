"""The hand-over from a socket's own catch-up to the tailer's live fan-out, driven directly against PostgreSQL.

Events are appended with the real outbox writer while a subscriber catches up; what the subscriber
sends must be every seq after its start, once, in order, whichever side is ahead at the join.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import eventually, make_settings
from ticker_service.db.engine import asyncpg_dsn
from ticker_service.db.pool import create_pool
from ticker_service.outbox.event import new_event
from ticker_service.outbox.writer import append_events
from ticker_service.stream.hub import StreamHub
from ticker_service.stream.subscriber import Subscriber
from ticker_service.stream.tailer import AccountTailer

ACCOUNT = "primary"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(asyncpg_dsn(database_url), 2)
    yield pool
    await pool.close()


async def append(engine: asyncpg.Pool, n: int, per_transaction: int = 1) -> None:
    for _ in range(0, n, per_transaction):
        events = [
            new_event("task_status", {"status": "pending"}, task_id="t", order_id=None) for _ in range(per_transaction)
        ]
        async with engine.acquire() as conn, conn.transaction():
            await append_events(conn, ACCOUNT, events)


async def make_hub(database_url: str, poll_interval: str, backlog: str = "1000") -> StreamHub:
    settings = make_settings(None, TICKER_POLL_INTERVAL=poll_interval, TICKER_WS_BACKLOG=backlog)
    hub = StreamHub(settings, asyncpg_dsn(database_url))
    await hub.start()
    return hub


class Receiver:
    """A socket stand-in: records the seq of every message it is sent, optionally slowly."""

    def __init__(self, delay: float = 0.0) -> None:
        self.seqs: list[int] = []
        self.delay = delay

    async def send(self, message: str) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.seqs.append(json.loads(message)["seq"])


async def follow(
    hub: StreamHub, since: int | None, receiver: Receiver
) -> tuple[Subscriber, AccountTailer, asyncio.Task[None]]:
    subscriber, tailer = await hub.subscribe(ACCOUNT, since)
    return subscriber, tailer, asyncio.create_task(hub.deliver(subscriber, tailer, receiver.send))


def leave(hub: StreamHub, *entries: tuple[Subscriber, AccountTailer, asyncio.Task[None]]) -> None:
    """What a session does when its socket goes: the delivery ends and the subscriber is unregistered."""
    for subscriber, tailer, task in entries:
        assert not task.done(), task
        task.cancel()
        hub.unsubscribe(subscriber, tailer)


async def test_catch_up_behind_the_tailer_joins_without_a_gap(database_url: str, engine: asyncpg.Pool) -> None:
    """Catch-up one row per read while the tailer, woken at once, runs ahead: the join comes exactly
    when the subscriber has everything the tailer has fanned out."""
    await append(engine, 20)
    hub = await make_hub(database_url, poll_interval="0.05")
    hub.catch_up_page = 1
    try:
        live = Receiver()
        first = await follow(hub, None, live)  # keeps the tailer running
        tailer = first[1]
        late = Receiver(delay=0.002)
        second = await follow(hub, 5, late)
        await append(engine, 60)
        await eventually(lambda: tailer.position == 80 and late.seqs[-1:] == [80] and live.seqs[-1:] == [80])
        assert late.seqs == list(range(6, 81))
        assert live.seqs == list(range(21, 81))
        assert second[0] in tailer.members  # it did join the live fan-out
        leave(hub, first, second)
        assert not hub.connections()
    finally:
        await hub.stop()


async def test_catch_up_ahead_of_the_tailer_skips_what_it_already_sent(database_url: str, engine: asyncpg.Pool) -> None:
    """The tailer only polls (no NOTIFY here) and lags; catch-up reads past its position, joins, and
    the tailer's later offers of those seqs are not sent twice."""
    await append(engine, 10)
    hub = await make_hub(database_url, poll_interval="30")
    try:
        first = Receiver()
        a = await follow(hub, None, first)
        tailer = a[1]
        await eventually(lambda: tailer.ready.is_set())
        assert tailer.position == 10
        await append(engine, 20, per_transaction=4)  # the tailer does not know yet
        second = Receiver()
        b = await follow(hub, 0, second)
        await eventually(lambda: second.seqs[-1:] == [30])
        assert tailer.position == 10 and b[0] in tailer.members  # joined ahead of the tailer
        assert first.seqs == []
        tailer.wake(None)  # the tailer reads 11..30 now and offers them to both
        await eventually(lambda: first.seqs[-1:] == [30])
        await append(engine, 5)
        tailer.wake(35)
        await eventually(lambda: second.seqs[-1:] == [35] and first.seqs[-1:] == [35])
        assert second.seqs == list(range(1, 36))
        assert first.seqs == list(range(11, 36))
        leave(hub, a, b)
    finally:
        await hub.stop()


async def test_a_full_backlog_drops_the_subscriber_and_frees_it(database_url: str, engine: asyncpg.Pool) -> None:
    hub = await make_hub(database_url, poll_interval="0.05", backlog="10")
    try:
        stuck = asyncio.Event()

        async def never(_message: str) -> None:
            await stuck.wait()

        subscriber, tailer = await hub.subscribe(ACCOUNT, None)
        task = asyncio.create_task(hub.deliver(subscriber, tailer, never))
        fine = Receiver()
        other = await follow(hub, None, fine)
        # both live before any event: a reader stuck while still catching up holds only its own page
        await eventually(lambda: subscriber in tailer.members and other[0] in tailer.members, interval=0.01)
        await append(engine, 40, per_transaction=4)
        await eventually(lambda: fine.seqs[-1:] == [40])
        assert subscriber.close_code == 4008 and subscriber.backlog == 0 and subscriber.closing.is_set()
        assert subscriber not in tailer.members
        assert subscriber.delivered_seq == 0  # nothing went out: reconnect with since=0
        assert fine.seqs == list(range(1, 41))
        leave(hub, (subscriber, tailer, task), other)
    finally:
        await hub.stop()
