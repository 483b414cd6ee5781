"""Webhook URLs and SSRF: internal IPv4 addresses carried in IPv6 forms are refused, the address a
delivery connects to is the one that was checked (no second lookup for DNS rebinding to swap), a
refusal does not reveal DNS answers, and the plain secret travels only over https or to loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import psutil
import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import eventually, make_client
from tests.webhook_receiver import Receiver, receivers, start_receiver
from ticker_service.webhooks.urls import UrlGuard, is_internal, parse

__all__ = ["receivers"]  # the fixture

INTERNAL_IN_IPV6 = [
    "::127.0.0.1",  # IPv4-compatible
    "::7f00:1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:a9fe:a9fe",  # ... the cloud metadata address
    "::ffff:0:10.0.0.1",  # IPv4-translated
    "64:ff9b::127.0.0.1",  # NAT64
    "64:ff9b::10.1.2.3",
    "64:ff9b::169.254.169.254",
    "64:ff9b:1::a00:1",  # NAT64, local use
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "fd00::1",
    "fe80::1",
    "::",
    "::1",
]
PUBLIC_IN_IPV6 = ["64:ff9b::8.8.8.8", "2002:808:808::1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", INTERNAL_IN_IPV6)
async def test_ipv6_forms_of_internal_addresses_are_refused(database_url: str, address: str) -> None:
    assert is_internal(address)
    async with make_client(database_url) as c:
        body = {"url": f"http://[{address}]:8080/hook", "account_id": "primary", "events": ["order_completed"]}
        r = await c.post("/advanced/webhooks", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "url"


def test_public_ipv6_forms_stay_allowed() -> None:
    assert not any(is_internal(a) for a in PUBLIC_IN_IPV6)
    assert not is_internal("93.184.215.14")


async def test_a_refusal_does_not_reveal_what_the_name_resolved_to(database_url: str) -> None:
    async with make_client(database_url) as c:
        body = {"url": "http://localhost:8080/hook", "account_id": "primary", "events": ["order_completed"]}
        r = await c.post("/advanced/webhooks", json=body)
        assert r.status_code == 422 and r.json()["field"] == "url"
        detail = r.json()["detail"]
        assert "private, loopback or link-local" in detail
        assert "127.0.0.1" not in detail and "::1" not in detail, detail


Resolver = Callable[..., Awaitable[list[Any]]]


async def test_a_delivery_connects_only_to_the_address_it_checked(
    database_url: str, db: asyncpg.Connection, receivers: list[Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers a public address first, then loopback, where a receiver
    listens. The creation's check sees the public one; the delivery must check the answer it
    connects with, so the receiver never hears from it."""
    receiver = await start_receiver(receivers)
    real: Resolver = asyncio.BaseEventLoop.getaddrinfo
    lookups: list[str] = []

    async def rebinding(loop: Any, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host != "rebind.example.com":
            return await real(loop, host, port, *args, **kwargs)
        lookups.append(host)
        address = "93.184.215.14" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]

    # every event loop's lookups (the test client runs the app on a loop of its own)
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", rebinding)
    env = {"WEBHOOK_RETRY_SCHEDULE": "0.1,0.1", "WEBHOOK_TIMEOUT": "1"}
    async with make_client(database_url, **env) as c:
        url = f"http://rebind.example.com:{receiver.port}/hook"
        r = await c.post("/advanced/webhooks", json={"url": url, "account_id": "primary", "events": ["order_placed"]})
        assert r.status_code == 201, r.text
        hook = r.json()
        assert (await c.post(f"/advanced/webhooks/{hook['webhook_id']}/test")).status_code == 202
        attempt = await eventually(
            lambda: db.fetchrow(
                "SELECT status, last_error FROM webhook_deliveries WHERE webhook_id = $1 AND attempts >= 1 "
                "AND status <> 'sending'",
                hook["webhook_id"],
            )
        )
        assert receiver.received == [], "the delivery reached the loopback receiver"
        error = attempt["last_error"]
        assert attempt["status"] == "retrying" and "private, loopback or link-local" in error, error
        assert "127.0.0.1" not in error, error
        assert len(lookups) >= 2


def _local_address() -> str | None:
    """An IPv4 address of this machine other than loopback (a receiver reached over plain http)."""
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return None


async def test_the_plain_secret_goes_only_over_https_or_to_loopback(
    database_url: str, receivers: list[Receiver]
) -> None:
    address = _local_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    remote = await start_receiver(receivers, host=address)
    local = await start_receiver(receivers)
    async with make_client(database_url, WEBHOOK_ALLOW_PRIVATE="true") as c:
        for receiver in (remote, local):
            r = await c.post(
                "/advanced/webhooks",
                json={"url": receiver.url, "account_id": "primary", "events": ["order_placed"], "secret": "s3cret-key"},
            )
            assert r.status_code == 201, r.text
            assert (await c.post(f"/advanced/webhooks/{r.json()['webhook_id']}/test")).status_code == 202
        await eventually(lambda: remote.received and local.received)
    over_http = remote.received[0]["headers"]
    assert "X-Webhook-Secret" not in over_http
    Webhook(b"s3cret-key").verify(remote.received[0]["body"], over_http)  # the signature alone
    assert local.received[0]["headers"]["X-Webhook-Secret"] == "s3cret-key"


def test_which_urls_may_carry_the_secret() -> None:
    strict, lenient = UrlGuard(allow_private=False), UrlGuard(allow_private=True)
    assert strict.may_carry_secret(parse("https://hooks.example.com/x"))
    assert not strict.may_carry_secret(parse("http://hooks.example.com/x"))
    assert not strict.may_carry_secret(parse("http://127.0.0.1/x"))
    assert lenient.may_carry_secret(parse("http://127.0.0.1:9000/x"))
    assert lenient.may_carry_secret(parse("http://localhost:9000/x"))
    assert lenient.may_carry_secret(parse("http://[::1]:9000/x"))
    assert not lenient.may_carry_secret(parse("http://10.0.0.5/x"))
