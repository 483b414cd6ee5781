"""Every broker, one contract: the same scenarios through the whole service on the paper broker and on
Kite (the real `kiteconnect` client against the project's fake Kite).

A scenario never asks which broker it runs on; what differs is only how the venue is provoked (a
lost answer, an exchange-side fill, an RMS rejection) and how its book is read, in `Venue`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import SPEC_ORDER, eventually, make_client
from tests.fake_kite_thread import FakeKiteThread, start_threaded_fake, threaded_fakes
from tests.kite_setup import kite_account, kite_env

__all__ = ["threaded_fakes"]

ACCOUNT = "venue"
RESTING = SPEC_ORDER | {"order_type": "LIMIT", "price": 18000, "account_id": ACCOUNT}  # far below ~19,550
ORDER = SPEC_ORDER | {"account_id": ACCOUNT}


@dataclass
class Venue:
    name: str
    client: AsyncTestClient[Any]
    db: asyncpg.Connection
    kite: FakeKiteThread | None = None

    def _paper(self) -> Any:
        return self.client.app.state.runtime.brokers[ACCOUNT]

    async def tags(self) -> list[str]:
        """The service tags of the orders in the venue's own book."""
        if self.kite is None:
            return [
                r["tag"] for r in await self.db.fetch("SELECT tag FROM paper_orders WHERE account_id = $1", ACCOUNT)
            ]
        return [o["tag"] for o in await self.kite.do(lambda: list(self.kite.fake.orders)) if o["tag"]]  # type: ignore[union-attr]

    async def lose_the_next_answer(self) -> None:
        if self.kite is None:
            broker = self._paper()
            broker.settings = msgspec.structs.replace(broker.settings, lose_response_rate=1.0)
        else:
            await self.kite.do(self.kite.fake.lose_next, 1, "order.place")

    async def reject_the_next_order(self) -> None:
        """Accepted, then rejected by the broker's risk checks (a REJECTED order)."""
        if self.kite is None:
            broker = self._paper()
            broker.settings = msgspec.structs.replace(broker.settings, funds=1.0)
        else:
            await self.kite.do(self.kite.fake.reject_next, 1, "Insufficient funds. Required margin is 146625.00")

    async def fill_at_the_exchange(self, order_id: str) -> None:
        """The exchange fills a resting order on its own (the price came to it)."""
        if self.kite is None:  # the paper matcher fills what the price crosses: move the limit to it
            await self.db.execute("UPDATE paper_orders SET price = 25000 WHERE order_id = $1", order_id)
        else:
            await self.kite.do(self.kite.fake.fill, order_id)


@pytest.fixture(params=["paper", "kite"])
async def venue(
    request: pytest.FixtureRequest, database_url: str, db: asyncpg.Connection, threaded_fakes: list[FakeKiteThread]
) -> AsyncIterator[Venue]:
    if request.param == "paper":
        async with make_client(database_url, {ACCOUNT: {"funds": 1e9}}, TICKER_BROKER_TIMEOUT="1") as c:
            yield Venue("paper", c, db)
        return
    fake = await start_threaded_fake(threaded_fakes)
    token = await fake.do(fake.fake.issue_access_token)
    accounts = {ACCOUNT: kite_account(fake, access_token=token)}
    async with make_client(database_url, accounts, **kite_env(TICKER_BROKER_TIMEOUT="1")) as c:
        yield Venue("kite", c, db, fake)


async def state(venue: Venue, order_id: str, status: str) -> dict[str, Any] | None:
    """The order as the service shows it (the broker's book), once it has reached `status`."""
    order: dict[str, Any] = (await venue.client.get(f"/orders/{order_id}")).json()
    return order if order.get("status") == status else None


async def _equals(events: Any, wanted: list[str]) -> bool:
    return bool(await events == wanted)


async def order_events(db: asyncpg.Connection, order_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT event FROM outbox_events WHERE order_id = $1 AND event <> 'task_status' ORDER BY seq", order_id
    )
    return [r["event"] for r in rows]


async def task_statuses(db: asyncpg.Connection, task_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT data->>'status' AS s FROM outbox_events WHERE task_id = $1 AND event = 'task_status' ORDER BY seq",
        task_id,
    )
    return [r["s"] for r in rows]


async def test_a_market_order_is_placed_once_and_reported(venue: Venue) -> None:
    r = await venue.client.post("/orders/place?wait=5", json=ORDER | {"tag": "strategy1"})
    assert r.status_code == 201, r.text  # the broker gave an order id (paper: and its state at once)
    body = r.json()
    assert body["order_id"] and body["tag"] == "strategy1"
    order = await eventually(lambda: state(venue, body["order_id"], "COMPLETE"))
    assert order["filled_quantity"] == 50 and order["tag"] == "strategy1" and order["task_id"] == body["task_id"]
    assert await venue.tags() == [body["broker_tag"]]
    assert await task_statuses(venue.db, body["task_id"]) == ["pending", "running", "completed"]
    two = ["order_placed", "order_completed"]  # Kite's updates may bring them one at a time
    await eventually(lambda: _equals(order_events(venue.db, body["order_id"]), two))
    assert await order_events(venue.db, body["order_id"]) == two
    positions = (await venue.client.get(f"/portfolio/positions?account_id={ACCOUNT}")).json()
    mine = [p for p in positions["net"] if p["tradingsymbol"] == "NIFTY25NOVFUT"]
    assert mine and mine[0]["quantity"] == 50 and {"average_price", "pnl", "product"} <= set(mine[0])


async def test_a_resting_order_is_modified_then_cancelled(venue: Venue) -> None:
    placed = await venue.client.post("/orders/place?wait=5", json=RESTING)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    await eventually(lambda: state(venue, order_id, "OPEN"))
    modified = await venue.client.put(f"/orders/{order_id}?wait=5", json={"price": 18100})
    assert modified.status_code == 200 and modified.json()["status"] == "completed", modified.text
    assert (await venue.client.get(f"/orders/{order_id}")).json()["price"] == 18100
    cancelled = await venue.client.delete(f"/orders/{order_id}?wait=5")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "completed", cancelled.text
    assert (await venue.client.get(f"/orders/{order_id}")).json()["status"] == "CANCELLED"
    three = ["order_placed", "order_updated", "order_cancelled"]
    await eventually(lambda: _equals(order_events(venue.db, order_id), three))
    assert await order_events(venue.db, order_id) == three


async def test_a_lost_answer_is_found_by_tag_and_placed_once(venue: Venue) -> None:
    await venue.lose_the_next_answer()
    r = await venue.client.post("/orders/place?wait=0", json=ORDER | {"expires_in": 60})
    task_id = r.json()["task_id"]
    await eventually(
        lambda: venue.db.fetchval("SELECT status = 'completed' FROM order_tasks WHERE task_id = $1", task_id),
        timeout=30,
    )
    assert await venue.tags() == [r.json()["broker_tag"]]
    assert await task_statuses(venue.db, task_id) == ["pending", "running", "unknown", "completed"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": 30}, "quantity"),  # not a multiple of the lot (50)
        ({"order_type": "LIMIT", "price": 19500.03}, "price"),  # not a multiple of the tick (0.05)
        ({"market_protection": 0}, "market_protection"),  # Kite rejects 0
        ({"variety": "iceberg"}, "iceberg_legs"),
    ],
)
async def test_what_the_broker_would_refuse_is_refused_before_anything_is_sent(
    venue: Venue, change: dict[str, Any], field: str
) -> None:
    r = await venue.client.post("/orders/place?wait=5", json=ORDER | change)
    assert r.status_code == 422 and r.json()["field"] == field, r.text
    assert await venue.tags() == []
    assert await venue.db.fetchval("SELECT count(*) FROM order_tasks") == 0


async def test_an_order_the_broker_rejects_is_a_422_with_its_message_and_never_announced_placed(venue: Venue) -> None:
    await venue.reject_the_next_order()
    r = await venue.client.post("/orders/place?wait=5", json=ORDER)
    # the paper broker knows at once; Kite gives an order id, then its RMS rejects it a moment later
    assert r.status_code in (201, 422), r.text
    order_id = r.json()["order_id"]
    order = await eventually(lambda: state(venue, order_id, "REJECTED"))
    assert "Insufficient funds" in order["status_message"]
    await eventually(lambda: order_events(venue.db, order_id))
    assert await order_events(venue.db, order_id) == ["order_rejected"]
    assert (await venue.client.get(f"/tasks/{r.json()['task_id']}")).json()["message"].startswith("Insufficient funds")


async def test_a_fill_at_the_exchange_is_reported_once(venue: Venue) -> None:
    placed = await venue.client.post("/orders/place?wait=5", json=RESTING)
    order_id = placed.json()["order_id"]
    await venue.fill_at_the_exchange(order_id)
    await eventually(lambda: venue.db.fetchval("SELECT status = 'COMPLETE' FROM orders WHERE order_id = $1", order_id))
    await eventually(lambda: order_events(venue.db, order_id), timeout=5)
    await asyncio.sleep(1.0)  # every path that could report it again (updates, reconciliation) has run
    assert await order_events(venue.db, order_id) == ["order_placed", "order_completed"]
