"""API keys (`TICKER_API_KEYS`): which accounts a caller may use. Off when the variable is unset."""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection

from ticker_service.system.errors import ApiError


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str | None  # a short, loggable prefix of the key; never the key itself
    accounts: frozenset[str] | None  # None: every account
    budget: str = "open"  # whose rate limit budget the caller spends (a digest of the key, never the key)

    def may(self, account_id: str) -> bool:
        return self.accounts is None or account_id in self.accounts

    def require(self, account_id: str) -> None:
        """403 unless the key may use the account; the message does not name it (no probing)."""
        if not self.may(account_id):
            raise ApiError(403, "account_id: this API key may not use that account")

    def visible(self, account_ids: list[str]) -> list[str]:
        return [a for a in account_ids if self.accounts is None or a in self.accounts]


OPEN = Caller(key_id=None, accounts=None)


@functools.cache
def budget_of(key: str) -> str:
    """The name of a key's rate limit budget in PostgreSQL: a digest, so the database holds no key."""
    return "api-key:" + hashlib.sha256(key.encode()).hexdigest()[:32]


def resolve_caller(
    connection: ASGIConnection[Any, Any, Any, Any],
    api_keys: dict[str, list[str]] | None,
    query_key: str | None = None,
) -> Caller:
    """The caller behind `X-API-Key` (or `Authorization: Bearer`); `query_key` is the fallback for
    WebSocket clients, which cannot set headers in a browser (`?api_key=`)."""
    if not api_keys:
        return OPEN
    presented = connection.headers.get("x-api-key")
    if presented is None:
        auth = connection.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            presented = auth[7:].strip()
    if presented is None:
        presented = query_key
    if not presented:
        raise ApiError(401, "X-API-Key: an API key is required")
    for key, allowed in api_keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            return Caller(
                key_id=key[:4], accounts=None if "*" in allowed else frozenset(allowed), budget=budget_of(key)
            )
    raise ApiError(401, "X-API-Key: unknown API key")
