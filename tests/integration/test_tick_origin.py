"""The feed holder hands its ticks to its own process's clients directly; its hub then skips the
notification of the same ticks (no tick twice), while every other instance's hub delivers it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from ticker_service.db.engine import asyncpg_dsn
from ticker_service.db.pool import create_pool
from ticker_service.marketdata.packets import Tick
from ticker_service.marketdata.subscriptions.limits import FeedLimits
from ticker_service.marketdata.ticks.channel import decode_batch, encode_batches
from ticker_service.marketdata.ticks.hub import TickHub
from ticker_service.marketdata.ticks.wire import pack_tick

INFY = 408065


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(asyncpg_dsn(database_url), 2)
    yield p
    await p.close()


def packets(n: int) -> list[bytes]:
    return [
        pack_tick(Tick(mode="ltp", tradable=True, instrument_token=INFY + 256 * i, last_price=1500.0 + i))
        for i in range(n)
    ]


def test_a_payload_names_its_origin_and_round_trips() -> None:
    sent = packets(1000)  # more than one payload's worth
    payloads = encode_batches("abc123", "acct", sent)
    assert len(payloads) > 1 and all(len(p.encode()) < 8000 for p in payloads)
    decoded = [decode_batch(p) for p in payloads]
    assert {(origin, account) for origin, account, _ in decoded} == {("abc123", "acct")}
    assert [packet for _, _, batch in decoded for packet in batch] == sent


async def test_a_hub_skips_its_own_notifications_and_delivers_others(pool: asyncpg.Pool) -> None:
    here, there = TickHub("here", FeedLimits()), TickHub("there", FeedLimits())
    for hub in (here, there):
        hub.pool = pool
    local, remote = (
        await here.connect("acct", "ticks", follow_stored=False),
        await there.connect("acct", "ticks", follow_stored=False),
    )
    local.subscribe([INFY], "ltp")
    remote.subscribe([INFY], "ltp")
    batch = packets(1)
    here.deliver("acct", batch)  # the holder, in `here`'s process, hands its batch over directly
    [payload] = encode_batches(here.origin, "acct", batch)
    for hub in (here, there):  # the notification of the same batch reaches every hub
        hub.on_ticks(payload)
    assert list(await local.take(0)) == [INFY] and local.conflated == 0  # once, not twice
    assert list(await remote.take(0)) == [INFY]


async def test_a_client_that_came_between_the_hand_over_and_the_notification_still_gets_the_tick(
    pool: asyncpg.Pool,
) -> None:
    """Its snapshot read the table before the holder committed, and the hand-over came before it did."""
    hub = TickHub("here", FeedLimits())
    hub.pool = pool
    batch = packets(1)
    hub.deliver("acct", batch)  # nobody connected yet
    late = await hub.connect("acct", "ticks", follow_stored=False)
    late.subscribe([INFY], "ltp")
    [payload] = encode_batches(hub.origin, "acct", batch)
    hub.on_ticks(payload)
    assert list(await late.take(0)) == [INFY]


async def test_a_hub_does_not_even_decode_its_own_notification_of_ticks_its_clients_already_had(
    pool: asyncpg.Pool,
) -> None:
    """Its clients were connected when the holder handed the batch over (`since` is after the account
    came here): the notification is dropped from its head. Shown with a payload whose packets differ
    from what was handed over, which a decoding hub would pass on."""
    hub = TickHub("here", FeedLimits())
    hub.pool = pool
    client = await hub.connect("acct", "ticks", follow_stored=False)
    client.subscribe([INFY], "ltp")
    handed_over_at = time.monotonic()
    hub.deliver("acct", packets(1))
    assert list(await client.take(0)) == [INFY]

    [newer] = encode_batches(hub.origin, "acct", packets(2)[1:] + packets(1), since=handed_over_at)
    hub.on_ticks(newer)
    assert client.pending == 0

    client.subscribe([INFY + 256], "ltp")
    [before] = encode_batches(hub.origin, "acct", packets(2)[1:] + packets(1), since=handed_over_at - 3600)
    hub.on_ticks(before)  # handed over before the account's clients came: compared, the unseen tick passed on
    assert list(await client.take(0)) == [INFY + 256]  # INFY's packet is the one it had


async def test_clients_connecting_together_share_the_stored_list_and_each_batch_is_encoded_once(
    pool: asyncpg.Pool,
) -> None:
    """Each connect used to read the stored list and keep its own copy when they raced: a batch's
    message, shared per wants object, was then built once per copy (50 builds for 100 sockets)."""
    from ticker_service.marketdata.subscriptions import store

    tokens = [INFY + 256 * i for i in range(5)]
    await store.add(pool, "acct", dict.fromkeys(tokens, "ltp"))
    hub = TickHub("here", FeedLimits())
    hub.pool = pool
    clients = await asyncio.gather(*(hub.connect("acct", "ticks") for _ in range(20)))
    assert len({id(c.wants) for c in clients}) == 1
    for client in clients:
        assert sorted(await client.take(0)) == []  # no snapshot yet: nothing was ever ticked

    hub.deliver("acct", packets(5))
    builds = 0

    def build() -> list[str | bytes]:
        nonlocal builds
        builds += 1
        return ["message"]

    for client in clients:
        assert sorted(await client.take(0)) == tokens
        shared = client.taken_from
        assert shared is not None
        assert shared.messages(client.endpoint, client.wants, build) == ["message"]
    assert builds == 1
