"""The fake as a process (`python -m ticker_service.fakekite`), driven only over HTTP, as end-to-end
tests and benchmarks that run the service as separate processes will drive it: login, orders through
the real client, the request log and the switches through `/_fake/`, an outage, and a clean stop."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import requests
from kiteconnect import KiteConnect
from kiteconnect import exceptions as ex

from tests.e2e.server import free_port
from tests.fakekite_fixture import call
from tests.webhook_receiver import Receiver, receivers, start_receiver

__all__ = ["receivers"]  # the fixture

pytestmark = pytest.mark.slow


class FakeProcess:
    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url

    async def control(self, name: str, body: dict[str, Any] | None = None, *, method: str = "POST") -> Any:
        async with aiohttp.ClientSession() as http, http.request(method, f"{self.url}/_fake/{name}", json=body) as r:
            answer = await r.json()
        assert answer["status"] == "success", answer
        return answer["data"]


@pytest.fixture
async def fake_process(receivers: list[Receiver]) -> AsyncIterator[FakeProcess]:
    receiver = await start_receiver(receivers)  # postbacks must reach somewhere that answers 200
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ticker_service.fakekite", "--port", str(port), "--api-key", "pk", "--api-secret", "ps",
        "--user-id", "ZX9876", "--redirect-url", "http://127.0.0.1:9/cb", "--postback-url", receiver.url,
        "--tick-interval", "0",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.decode().strip() == f"fakekite listening on http://127.0.0.1:{port}"
    fake = FakeProcess(proc, f"http://127.0.0.1:{port}")
    yield fake
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def test_the_process_serves_the_login_orders_and_its_control_api(fake_process: FakeProcess) -> None:
    url = fake_process.url
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/connect/login?v=3&api_key=pk", allow_redirects=False) as r,
    ):
        assert r.status == 302
        location = r.headers["Location"]
    assert location.startswith("http://127.0.0.1:9/cb?")
    request_token = parse_qs(urlsplit(location).query)["request_token"][0]
    kite = KiteConnect("pk", root=url)
    session = await call(kite.generate_session, request_token, "ps")
    assert session["user_id"] == "ZX9876"

    await fake_process.control("price", {"exchange": "NSE", "tradingsymbol": "SBIN", "price": 955.5})
    order_id = await call(
        kite.place_order, "regular", "NSE", "SBIN", "BUY", 2, "MIS", "MARKET", market_protection=-1, tag="e2e"
    )
    (order,) = await call(kite.orders)
    assert order["order_id"] == order_id and order["average_price"] == 955.5

    (placed,) = await fake_process.control("requests", {"route": "order.place"}, method="GET")
    assert placed["form"]["tag"] == "e2e" and placed["form"]["market_protection"] == "-1"
    assert placed["arrived_monotonic"] > 0 and placed["status"] == 200

    await fake_process.control("fail", {"error_type": "OrderException", "route": "order.place"})
    with pytest.raises(ex.OrderException):
        await call(kite.place_order, "regular", "NSE", "SBIN", "BUY", 1, "MIS", "MARKET", market_protection=-1)
    await fake_process.control("lose", {"route": "order.place"})
    with pytest.raises(requests.ConnectionError):
        await call(kite.place_order, "regular", "NSE", "SBIN", "BUY", 1, "MIS", "MARKET", market_protection=-1)
    assert len(await call(kite.orders)) == 2  # the lost answer's order is in the book

    resting = await call(kite.place_order, "regular", "NSE", "SBIN", "BUY", 4, "MIS", "LIMIT", price=900)
    filled = await fake_process.control("fill", {"order_id": resting, "quantity": 1})
    assert filled["status"] == "OPEN" and filled["filled_quantity"] == 1
    external = await fake_process.control(
        "external_order", {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "quantity": 1}
    )
    assert external["order_id"] in {o["order_id"] for o in await call(kite.orders)}

    assert await fake_process.control("expire_token") == 1
    with pytest.raises(ex.TokenException):
        await call(kite.profile)
    fresh = await fake_process.control("session")
    assert (await call(KiteConnect("pk", access_token=fresh["access_token"], root=url).profile))["user_id"] == "ZX9876"

    sent = await fake_process.control("postbacks", method="GET")
    assert sent and all(p["status"] == 200 for p in sent)
    assert external["order_id"] not in {p["payload"]["order_id"] for p in sent}


async def test_an_outage_refuses_connections_for_a_while_then_the_same_port_answers(fake_process: FakeProcess) -> None:
    kite = KiteConnect(
        "pk", access_token=(await fake_process.control("session"))["access_token"], root=fake_process.url
    )
    await call(kite.profile)
    await fake_process.control("outage", {"seconds": 3})

    async def refused() -> bool:
        try:
            await call(kite.profile)
        except requests.ConnectionError as error:
            return "refused" in str(error).lower()
        return False

    for _ in range(100):  # the outage begins just after the answer that asked for it
        if await refused():
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the fake never refused a connection")
    for _ in range(300):
        try:
            assert (await call(kite.profile))["user_id"] == "ZX9876"
            break
        except requests.ConnectionError:
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("the fake did not listen again")


async def test_sigterm_stops_the_process_cleanly(fake_process: FakeProcess) -> None:
    fake_process.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(fake_process.proc.wait(), 30) == 0
