"""A batch offered to every client is encoded once per wants: the sockets following the stored list
share one message; a client with other wants, or with ticks left from before, builds its own."""

from __future__ import annotations

from ticker_service.marketdata.packets import Mode, Tick
from ticker_service.marketdata.ticks.client import Messages, SharedBatch, TickClient
from ticker_service.marketdata.ticks.entry import TickEntry
from ticker_service.marketdata.ticks.wire import pack_tick

INFY, SBIN = 408065, 779521


def entry(token: int, price: float) -> TickEntry:
    return TickEntry(pack_tick(Tick(mode="ltp", tradable=True, instrument_token=token, last_price=price)))


async def messages_of(client: TickClient, shared_builds: list[str]) -> Messages:
    batch = await client.take(0)
    assert batch

    def build() -> Messages:
        shared_builds.append(client.endpoint)
        return [",".join(f"{t}:{e.token}" for t, e in sorted(batch.items()))]

    if client.taken_from is None:
        return build()
    return client.taken_from.messages(client.endpoint, client.wants, build)


async def test_clients_following_the_stored_list_share_one_message_per_batch() -> None:
    stored: dict[int, Mode] = {INFY: "ltp", SBIN: "ltp"}
    followers = [TickClient("acc", "ticks", stored) for _ in range(3)]
    chooser = TickClient("acc", "ticks", stored)
    chooser.subscribe([INFY], "ltp")  # its own list now, equal in content but not the same list
    entries = [entry(INFY, 1500.0), entry(SBIN, 600.0)]
    shared = SharedBatch(entries)
    for client in [*followers, chooser]:
        client.offer_all(entries, shared)
    builds: list[str] = []
    sent = [await messages_of(client, builds) for client in followers]
    assert len(builds) == 1 and all(m is sent[0] for m in sent)  # built once, the same object to all
    assert await messages_of(chooser, builds) == sent[0] and len(builds) == 2  # same bytes, its own build


async def test_a_client_with_ticks_left_from_before_does_not_take_the_shared_message() -> None:
    stored: dict[int, Mode] = {INFY: "ltp", SBIN: "ltp"}
    slow, fresh = TickClient("acc", "ticks", stored), TickClient("acc", "ticks", stored)
    earlier = [entry(SBIN, 599.0)]
    slow.offer_all(earlier, SharedBatch(earlier))  # not taken yet: slow is behind
    entries = [entry(INFY, 1500.0)]
    shared = SharedBatch(entries)
    for client in (slow, fresh):
        client.offer_all(entries, shared)
    builds: list[str] = []
    fresh_message = await messages_of(fresh, builds)
    slow_message = await messages_of(slow, builds)
    assert fresh.taken_from is shared and slow.taken_from is None
    assert fresh_message == [f"{INFY}:{INFY}"] and slow_message == [f"{INFY}:{INFY},{SBIN}:{SBIN}"]


async def test_an_unsubscribe_between_offer_and_take_drops_the_shared_message() -> None:
    stored: dict[int, Mode] = {INFY: "ltp", SBIN: "ltp"}
    client = TickClient("acc", "ticks", stored)
    entries = [entry(INFY, 1500.0), entry(SBIN, 600.0)]
    client.offer_all(entries, SharedBatch(entries))
    client.unsubscribe([SBIN])
    builds: list[str] = []
    assert await messages_of(client, builds) == [f"{INFY}:{INFY}"] and client.taken_from is None
