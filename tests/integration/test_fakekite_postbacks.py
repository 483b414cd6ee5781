"""Postbacks from the fake to a real local receiver: one for every change of an order placed with the
app's key (placement, partial fill, fill, modification, cancellation, rejection), each with a checksum
that verifies; none for an order placed elsewhere; a wrong checksum on demand; no retries."""

from __future__ import annotations

import hashlib
import json

from kiteconnect import KiteConnect

from tests.fakekite_fixture import API_SECRET, call, fake_kites, kite_client, start_fake_kite
from tests.webhook_receiver import Receiver, receivers, start_receiver
from ticker_service.fakekite import FakeKite

__all__ = ["fake_kites", "receivers"]  # the fixtures


def verifies(body: dict[str, object]) -> bool:
    expected = hashlib.sha256(f"{body['order_id']}{body['order_timestamp']}{API_SECRET}".encode()).hexdigest()
    return body["checksum"] == expected


async def limit_buy(kite: KiteConnect, quantity: int = 10) -> str:
    order_id: str = await call(
        kite.place_order, "regular", "NSE", "SBIN", "BUY", quantity, "CNC", "LIMIT", price=900, tag="pb1"
    )
    return order_id


async def test_every_change_of_an_apps_order_is_posted_with_a_checksum_that_verifies(
    fake_kites: list[FakeKite], receivers: list[Receiver]
) -> None:
    receiver = await start_receiver(receivers)
    fake = await start_fake_kite(fake_kites, postback_url=receiver.url)
    kite = kite_client(fake)
    fake.set_price("NSE", "SBIN", 962)
    filled = await limit_buy(kite)
    fake.fill(filled, quantity=4)
    fake.fill(filled)
    modified = await limit_buy(kite)
    await call(kite.modify_order, "regular", modified, price=901)
    await call(kite.cancel_order, "regular", modified)
    fake.reject_next()
    rejected = await limit_buy(kite)
    await fake.drain_postbacks()

    assert all(r["headers"]["Content-Type"] == "application/json" for r in receiver.received)
    bodies = receiver.ok_bodies()
    assert all(verifies(b) for b in bodies)
    events = [(b["order_id"], b["status"]) for b in bodies]
    assert events == [
        (filled, "OPEN"),
        (filled, "UPDATE"),  # the partial fill
        (filled, "COMPLETE"),
        (modified, "OPEN"),
        (modified, "UPDATE"),  # the modification
        (modified, "CANCELLED"),
        (rejected, "REJECTED"),
    ]
    partial = bodies[1]
    assert (partial["filled_quantity"], partial["pending_quantity"], partial["unfilled_quantity"]) == (4, 6, 6)
    assert bodies[4]["price"] == 901
    assert bodies[6]["status_message"].startswith("Insufficient funds")
    assert {b["app_id"] for b in bodies} == {1234} and {b["user_id"] for b in bodies} == {"AB1234"}
    assert all(b["tag"] == "pb1" for b in bodies)


async def test_orders_placed_elsewhere_get_no_postback(fake_kites: list[FakeKite], receivers: list[Receiver]) -> None:
    receiver = await start_receiver(receivers)
    fake = await start_fake_kite(fake_kites, postback_url=receiver.url)
    kite = kite_client(fake)
    external = fake.place_external("NSE", "INFY", "BUY", 1)
    mine = await limit_buy(kite)
    await fake.drain_postbacks()
    posted = {b["order_id"] for b in receiver.ok_bodies()}
    assert posted == {mine}
    assert external in {o["order_id"] for o in fake.orders}


async def test_a_wrong_checksum_on_demand(fake_kites: list[FakeKite], receivers: list[Receiver]) -> None:
    receiver = await start_receiver(receivers)
    fake = await start_fake_kite(fake_kites, postback_url=receiver.url)
    kite = kite_client(fake)
    fake.corrupt_postback_checksum(1)
    first = await limit_buy(kite)
    await call(kite.cancel_order, "regular", first)
    await fake.drain_postbacks()
    bodies = receiver.ok_bodies()
    assert [verifies(b) for b in bodies] == [False, True]


async def test_a_failing_receiver_gets_each_postback_once(
    fake_kites: list[FakeKite], receivers: list[Receiver]
) -> None:
    receiver = await start_receiver(receivers, mode="down")
    fake = await start_fake_kite(fake_kites, postback_url=receiver.url)
    kite = kite_client(fake)
    order_id = await limit_buy(kite)
    await call(kite.cancel_order, "regular", order_id)
    await fake.drain_postbacks()
    assert [json.loads(r["body"])["status"] for r in receiver.received] == ["OPEN", "CANCELLED"]
    assert [p.status for p in fake.postbacks_sent] == [503, 503]
