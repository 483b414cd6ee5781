"""Each of the fake's switches, through the real `kiteconnect` client: the exception kiteconnect raises
for it, and whether the request took effect, judged by the order book (what a client facing an
ambiguous outcome would have to find out)."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as ex

from tests.fakekite_fixture import call, fake_kite, fake_kites, kite_client, start_fake_kite
from ticker_service.fakekite import FakeKite

__all__ = ["fake_kite", "fake_kites"]  # the fixtures

ORDER = {
    "variety": "regular",
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "transaction_type": "BUY",
    "quantity": 1,
    "product": "CNC",
    "order_type": "MARKET",
    "market_protection": -1,
}


async def place(kite: KiteConnect) -> str:
    order_id: str = await call(kite.place_order, **ORDER)
    return order_id


@pytest.mark.parametrize(
    ("error_type", "status", "exception"),
    [
        ("InputException", 400, ex.InputException),
        ("OrderException", 500, ex.OrderException),
        ("PermissionException", 403, ex.PermissionException),
        ("TokenException", 403, ex.TokenException),
        ("GeneralException", 500, ex.GeneralException),
        ("DataException", 502, ex.DataException),
        ("NetworkException", 503, ex.NetworkException),
    ],
)
async def test_a_forced_error_raises_kiteconnects_class_and_places_nothing(
    fake_kite: FakeKite, error_type: str, status: int, exception: type[Exception]
) -> None:
    kite = kite_client(fake_kite)
    fake_kite.fail_next(1, error_type, route="order.place")
    with pytest.raises(exception) as raised:
        await place(kite)
    assert raised.value.code == status  # type: ignore[attr-defined]
    assert await call(kite.orders) == []
    await place(kite)  # the switch is spent
    assert len(await call(kite.orders)) == 1


async def test_an_rms_rejection_can_be_a_500_order_exception_with_kites_words(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.fail_next(1, "OrderException", "RMS:Margin Exceeds,Required:1500.25, Available:0.00", route="order.*")
    with pytest.raises(ex.OrderException, match="Margin Exceeds") as raised:
        await place(kite)
    assert raised.value.code == 500


async def test_orders_from_an_unregistered_ip_are_refused_but_reads_are_not(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.set_allowed_ips(["203.0.113.7"])
    with pytest.raises(ex.PermissionException, match="static IP") as raised:
        await place(kite)
    assert raised.value.code == 403
    assert await call(kite.orders) == []
    assert (await call(kite.profile))["user_id"] == "AB1234"
    fake_kite.set_allowed_ips(["127.0.0.1"])
    await place(kite)


async def test_a_rate_limited_request_is_a_429_network_exception_and_not_executed(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.rate_limit_next(2, route="order.place")
    for _ in range(2):
        with pytest.raises(ex.NetworkException, match="Too many requests") as raised:
            await place(kite)
        assert raised.value.code == 429
    assert await call(kite.orders) == []
    assert [r.outcome for r in fake_kite.requests_for("order.place")] == ["rate_limited", "rate_limited"]


async def test_an_accepted_order_can_be_rejected_by_rms_afterwards(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.reject_next()
    order_id = await place(kite)
    (order,) = await call(kite.orders)
    assert order["order_id"] == order_id and order["status"] == "REJECTED"
    assert order["status_message"].startswith("Insufficient funds")
    assert order["filled_quantity"] == 0 and order["pending_quantity"] == 0


async def test_an_expired_token_is_a_403_token_exception_and_calls_the_session_hook(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    expired: list[bool] = []
    kite.set_session_expiry_hook(lambda: expired.append(True))
    await call(kite.profile)
    assert fake_kite.expire_token() == 1
    for fn in (kite.profile, kite.orders, lambda: kite.place_order(**ORDER)):
        with pytest.raises(ex.TokenException) as raised:
            await call(fn)
        assert raised.value.code == 403
    assert expired == [True, True, True]
    fresh = kite_client(fake_kite)  # a new day's login works again
    assert (await call(fresh.profile))["user_id"] == "AB1234"


async def test_a_lost_answer_closes_the_connection_after_the_order_is_in_the_book(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.lose_next(1, "order.place")
    with pytest.raises(requests.ConnectionError):
        await place(kite)
    (order,) = await call(kite.orders)  # it took effect: placing again would double it
    assert order["status"] == "COMPLETE"
    assert [r.outcome for r in fake_kite.requests_for("order.place")] == ["lost"]


async def test_a_held_answer_times_the_client_out_after_the_order_is_in_the_book(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite, timeout=0.5)
    fake_kite.lose_next(1, "order.place", how="hold", hold_seconds=30)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        await place(kite)
    assert time.monotonic() - started >= 0.5
    assert len(await call(kite.orders)) == 1


async def test_a_dropped_request_closes_the_connection_before_the_order_is_in_the_book(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    fake_kite.drop_next(1, "order.place")
    with pytest.raises(requests.ConnectionError):
        await place(kite)
    assert await call(kite.orders) == []
    assert [r.outcome for r in fake_kite.requests_for("order.place")] == ["dropped"]


async def test_latency_holds_the_answer_after_the_request_took_effect(fake_kite: FakeKite) -> None:
    impatient, patient = kite_client(fake_kite, timeout=0.3), kite_client(fake_kite, timeout=30)
    fake_kite.set_latency(800, "order.place")
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        await place(impatient)
    assert time.monotonic() - started >= 0.3
    assert len(await call(patient.orders)) == 1  # it took effect; and `orders` itself was not held
    assert [r.outcome for r in fake_kite.requests_for("orders")] == ["answered"]
    fake_kite.set_latency(0, "order.place")
    fake_kite.set_latency(300, "order.*")  # a route group
    started = time.monotonic()
    await place(patient)
    assert time.monotonic() - started >= 0.3


async def test_a_fake_that_stops_listening_refuses_connections_and_resumes_on_the_same_port(
    fake_kite: FakeKite,
) -> None:
    kite = kite_client(fake_kite)
    await call(kite.profile)  # a pooled keep-alive connection exists
    port = fake_kite.port
    await fake_kite.stop_listening()
    with pytest.raises(requests.ConnectionError) as raised:
        await place(kite)
    assert "refused" in str(raised.value).lower()
    assert fake_kite.requests_for("order.place") == []  # it never arrived
    await fake_kite.start_listening()
    assert fake_kite.port == port
    await place(kite)
    assert len(await call(kite.orders)) == 1


async def test_the_request_log_shows_a_paced_client_never_exceeded_ten_orders_a_second(fake_kite: FakeKite) -> None:
    kite = kite_client(fake_kite)
    for _ in range(15):
        await place(kite)
        await asyncio.sleep(0.11)  # at least 0.11 s apart: any second holds at most 10 arrivals
    arrivals = fake_kite.requests_for("order.place")
    assert len(arrivals) == 15
    assert fake_kite.max_requests_in_window("order.place", 1.0) <= 10
    assert all(r.arrived_wall > 0 for r in arrivals)
    assert [r.arrived_monotonic for r in arrivals] == sorted(r.arrived_monotonic for r in arrivals)


async def test_kites_own_limits_when_enforced_refuse_exactly_what_the_log_says_they_should(
    fake_kites: list[FakeKite],
) -> None:
    fake = await start_fake_kite(fake_kites, enforce_rate_limits=True)
    kite = kite_client(fake)
    results = await asyncio.gather(*(call(_try_place, kite) for _ in range(14)))
    assert results.count("ok") + results.count(429) == 14
    accepted: list[float] = []
    for record in sorted(fake.requests_for("order.place"), key=lambda r: r.arrived_monotonic):
        recent = [t for t in accepted if record.arrived_monotonic - t < 1.0]
        if record.outcome == "answered":
            assert len(recent) < 10
            accepted.append(record.arrived_monotonic)
        else:
            assert record.outcome == "rate_limited" and record.status == 429 and len(recent) >= 10
    assert len(await call(kite.orders)) == results.count("ok")


def _try_place(kite: KiteConnect) -> object:
    try:
        kite.place_order(**ORDER)
    except ex.NetworkException as e:
        return e.code
    return "ok"
