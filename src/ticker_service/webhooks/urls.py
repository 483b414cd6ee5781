"""Which URLs a webhook may point at, and which addresses its deliveries may connect to.

A webhook makes this service send requests on a client's behalf, so by default it refuses URLs
that resolve to private, loopback, link-local or otherwise internal addresses (SSRF), including
IPv6 forms that carry an internal IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4, Teredo).
`WEBHOOK_ALLOW_PRIVATE=true` lifts it (tests, or receivers on the same private network).

The check runs when the webhook is created (a 422 naming `url`) and again at each delivery, where
it is part of the connection itself: the sender's connector resolves the host through
`GuardedResolver`, which refuses internal answers and hands only checked addresses to the
connection. There is no separate lookup before the connection, so a DNS answer that changes between
a check and the connection (DNS rebinding) cannot slip an internal address in. A refusal never says
which address the name resolved to: internal DNS answers stay internal.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges whose last 32 bits are an IPv4 address the packets end up at
_EMBEDDING_LAST_32 = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated): ::127.0.0.1
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64, the well-known prefix
)
# IPv6 ranges that are internal whatever they carry, beyond what `ipaddress` calls non-global (its
# table differs between Python versions)
_INTERNAL_V6 = (
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # NAT64, local use
    ipaddress.IPv6Network("100::/64"),  # discard-only
    ipaddress.IPv6Network("2001:db8::/32"),  # documentation
    ipaddress.IPv6Network("fc00::/7"),  # unique local
    ipaddress.IPv6Network("fe80::/10"),  # link-local
    ipaddress.IPv6Network("fec0::/10"),  # site-local (deprecated)
)
_LOOPBACK_NAMES = ("localhost", "localhost.")


class UnsafeUrl(ValueError):
    """The URL is malformed or points at an address webhooks may not reach."""


class UnsafeAddress(OSError):
    """A delivery's host resolved to an address webhooks may not reach (raised inside the connection)."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str  # as in the URL, without brackets
    port: int
    literal: IPAddress | None  # the host is an IP address


def parse(url: str) -> Target:
    """The parts of an absolute http(s) URL, or UnsafeUrl naming the problem."""
    if len(url) > 2048:
        raise UnsafeUrl("url: longer than 2048 characters")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise UnsafeUrl("url: must not contain control characters or spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"url: malformed ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("url: must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("url: has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("url: must not carry credentials")
    literal = _literal(host)
    if literal is None:
        try:
            host.encode("idna")
        except UnicodeError:
            raise UnsafeUrl("url: the host is not a valid domain name (it cannot be IDNA-encoded)") from None
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), literal)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded = [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)] if any(ip in n for n in _EMBEDDING_LAST_32) else []
    if ip.sixtofour is not None:
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:
        embedded.extend(ip.teredo)
    return embedded


def is_internal(address: str | IPAddress) -> bool:
    """True for an address webhooks may not reach without WEBHOOK_ALLOW_PRIVATE."""
    ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip == ipaddress.IPv6Address("::"):
            return True
        embedded = _embedded_ipv4(ip)
        if embedded:
            return any(is_internal(v4) for v4 in embedded)
        if any(ip in n for n in _INTERNAL_V6):
            return True
    return not ip.is_global or ip.is_multicast


def _refusal(host: str) -> str:
    return f"{host!r} resolves to a private, loopback or link-local address; set WEBHOOK_ALLOW_PRIVATE=true to allow it"


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for the sender's connector: one lookup, checked, and only checked addresses
    go to the connection. A host with any internal address is refused (raises UnsafeAddress)."""

    def __init__(self, allow_private: bool, base: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self._base = base

    def _resolver(self) -> AbstractResolver:
        if self._base is None:
            self._base = ThreadedResolver(asyncio.get_running_loop())
        return self._base

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._resolver().resolve(host, port, family)
        if not self.allow_private and any(is_internal(a["host"]) for a in answers):
            raise UnsafeAddress(_refusal(host))
        return answers

    async def close(self) -> None:
        if self._base is not None:
            await self._base.close()


class UrlGuard:
    """The webhook URL rules: at creation (`check`), before each delivery (`check_literal`, with the
    connector's `GuardedResolver` for names), and whether a URL may carry the plain secret."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.resolver = GuardedResolver(allow_private)

    async def check(self, url: str) -> None:
        """The URL is well formed and, unless allowed, its host resolves to public addresses only."""
        target = self.check_literal(url)
        if self.allow_private or target.literal is not None:
            return
        try:
            await self.resolver.resolve(target.host, target.port, socket.AF_UNSPEC)
        except UnsafeAddress as exc:
            raise UnsafeUrl(f"url: {exc}") from None
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no address"
            raise UnsafeUrl(f"url: cannot resolve {target.host!r} ({reason})") from None

    def check_literal(self, url: str) -> Target:
        """Parse the URL and refuse an internal IP address written in it (names are checked by the
        resolver when the connection is made: aiohttp does not resolve an IP address)."""
        target = parse(url)
        if target.literal is not None and not self.allow_private and is_internal(target.literal):
            raise UnsafeUrl(
                "url: a private, loopback or link-local address; set WEBHOOK_ALLOW_PRIVATE=true to allow it"
            )
        return target

    def may_carry_secret(self, target: Target) -> bool:
        """`X-Webhook-Secret` travels only encrypted (https), or to this machine when private
        addresses are allowed; over plain http elsewhere the signature alone goes (it reveals nothing)."""
        if target.scheme == "https":
            return True
        if not self.allow_private:
            return False
        if target.literal is not None:
            return target.literal.is_loopback or (
                isinstance(target.literal, ipaddress.IPv6Address)
                and target.literal.ipv4_mapped is not None
                and target.literal.ipv4_mapped.is_loopback
            )
        return target.host.lower() in _LOOPBACK_NAMES
