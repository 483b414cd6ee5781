"""The account a market-data route acts for, checked the way the rest of the service checks it."""

from __future__ import annotations

from typing import Any

from litestar import Request

from ticker_service.system.access import authorized
from ticker_service.system.errors import ApiError


def market_account(request: Request[Any, Any, Any], account_id: str, known: bool) -> str:
    """The guard's account (it matches the query's); an account that does not exist answers exactly
    as one the key may not use, so account names cannot be probed."""
    account = authorized(request).same(account_id)
    if not known:
        raise ApiError(403, "account_id: this API key may not use that account")
    return account
