"""The ticker client's inboxes and backoff: what a slow consumer gets, and how long a refused client waits."""

from __future__ import annotations

import asyncio

import pytest

from tests.kite_frames import ltp_packet
from ticker_service.brokers.kite.ticker import OrderInbox, TickBuffer, TickerConfig
from ticker_service.brokers.kite.ticker_messages import OrderUpdate
from ticker_service.marketdata.packets import parse_packet


def tick(n: int, price: float) -> bytes:
    """Instrument `n` of NSE (prices in paise)."""
    return ltp_packet((n << 8) | 1, round(price * 100))


async def test_below_capacity_every_tick_is_kept_in_order() -> None:
    buffer = TickBuffer(capacity=10)
    sent = [tick(1, 1.0), tick(2, 1.0), tick(1, 2.0), tick(1, 3.0)]
    for t in sent:
        buffer.put(t)

    assert await buffer.get() == sent
    assert buffer.conflated == 0


async def test_when_full_only_the_latest_tick_per_instrument_is_kept() -> None:
    buffer = TickBuffer(capacity=4)
    for price in range(1, 101):
        for token in (1, 2, 3):
            buffer.put(tick(token, float(price)))
        assert len(buffer) <= 4 + 3
    buffer.put(tick(9, 1.0))  # an instrument first seen while conflating

    batch = await buffer.get()

    assert batch is not None
    ticks = [parse_packet(p) for p in batch]
    assert {t.instrument_token >> 8: t.last_price for t in ticks} == {1: 100.0, 2: 100.0, 3: 100.0, 9: 1.0}
    assert len(batch) == 4
    assert buffer.conflated == 300 - 3


async def test_a_frame_put_at_once_is_kept_whole_below_capacity_and_conflated_past_it() -> None:
    buffer = TickBuffer(capacity=4)
    buffer.put_all([tick(1, 1.0), tick(2, 1.0), tick(1, 2.0)])
    buffer.put_all([tick(1, 3.0), tick(2, 3.0), tick(3, 3.0)])  # past capacity: one per instrument from here

    batch = await buffer.get()

    assert batch is not None
    assert sorted((t.instrument_token >> 8, t.last_price) for t in map(parse_packet, batch)) == [
        (1, 3.0),
        (2, 3.0),
        (3, 3.0),
    ]
    assert buffer.conflated == 3


async def test_after_a_read_the_buffer_is_fifo_again() -> None:
    buffer = TickBuffer(capacity=2)
    for price in range(5):
        buffer.put(tick(1, float(price)))
    await buffer.get()

    buffer.put(tick(1, 10.0))
    buffer.put(tick(1, 11.0))

    assert await buffer.get() == [tick(1, 10.0), tick(1, 11.0)]


async def test_a_reader_waits_for_ticks_and_ends_after_close_once_drained() -> None:
    buffer = TickBuffer(capacity=2)
    reader = asyncio.create_task(buffer.get())
    await asyncio.sleep(0)
    assert not reader.done()

    buffer.put(tick(1, 1.0))
    assert await reader == [tick(1, 1.0)]

    buffer.put(tick(2, 1.0))
    buffer.close()
    assert await buffer.get() == [tick(2, 1.0)]
    assert await buffer.get() is None


async def test_order_updates_are_never_dropped_and_keep_their_order() -> None:
    inbox = OrderInbox()
    updates = [OrderUpdate(order_id=str(i), status="OPEN") for i in range(50_000)]
    for update in updates:
        inbox.put(update)
    inbox.close()

    assert await inbox.get() == updates
    assert await inbox.get() is None


def test_backoff_grows_exponentially_with_equal_jitter_up_to_the_bound() -> None:
    config = TickerConfig(backoff_initial=0.5, backoff_max=8.0)
    for failures in range(12):
        step = min(8.0, 0.5 * 2**failures)
        delays = [config.backoff(failures) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 1  # jittered: many clients do not retry in step


@pytest.mark.parametrize(
    "settings",
    [{"silence_timeout": 0}, {"backoff_initial": 2.0, "backoff_max": 1.0}, {"tick_buffer_size": 0}],
)
def test_nonsense_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        TickerConfig(**settings)  # type: ignore[arg-type]
