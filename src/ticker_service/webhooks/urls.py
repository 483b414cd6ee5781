"""Which URLs a webhook may point at.

A webhook makes this service send requests on a client's behalf, so by default it refuses URLs
that resolve to private, loopback, link-local or otherwise internal addresses (SSRF). The check
runs when the webhook is created and again before each delivery, since DNS can change.
`WEBHOOK_ALLOW_PRIVATE=true` lifts it (tests, or receivers on the same private network).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    """The URL is malformed or points at an address webhooks may not reach."""


def parse(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL, or UnsafeUrl naming the problem."""
    if len(url) > 2048:
        raise UnsafeUrl("url: longer than 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"url: malformed ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("url: must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeUrl("url: has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("url: must not carry credentials")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


class UrlGuard:
    """Resolves hosts (cached briefly) and refuses internal addresses unless allowed."""

    def __init__(self, allow_private: bool, ttl: float = 30.0) -> None:
        self.allow_private = allow_private
        self.ttl = ttl
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def check(self, url: str) -> None:
        _, host, port = parse(url)
        if self.allow_private:
            return
        now = time.monotonic()
        cached = self._cache.get((host, port))
        if cached is None or cached[0] < now:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise UnsafeUrl(f"url: cannot resolve {host!r} ({exc.strerror or exc})") from None
            cached = (now + self.ttl, sorted({str(info[4][0]) for info in infos}))
            self._cache[(host, port)] = cached
        internal = [a for a in cached[1] if is_internal(a)]
        if internal:
            raise UnsafeUrl(
                f"url: {host!r} resolves to a private, loopback or link-local address ({internal[0]}); "
                "set WEBHOOK_ALLOW_PRIVATE=true to allow it"
            )
