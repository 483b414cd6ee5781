"""What a caller of `/health` and `/metrics` may see: how the service is, never whose accounts.

Both routes act for no account (load balancers and Prometheus call them), yet their detail names
accounts (health's account states and problems, the metrics' `account` label). So:

- `TICKER_METRICS_KEY` set: its holder sees everything; anyone else gets health's one word
  (`ok` / `degraded` / `down`, the status code a load balancer reads) and a 401 from `/metrics`.
- unset: the detail is given, but only of the accounts the caller's API key may use (every account
  when there are no API keys; none for a caller without a key).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection

from ticker_service.settings import Settings
from ticker_service.system.auth import presented_key, resolve_caller
from ticker_service.system.errors import ApiError


@dataclass(frozen=True, slots=True)
class OperatorView:
    detailed: bool  # False: health's status word only, /metrics refused
    accounts: frozenset[str] | None  # the accounts whose ids may be shown; None: every one

    def shows(self, account_id: str) -> bool:
        return self.accounts is None or account_id in self.accounts


EVERYTHING = OperatorView(detailed=True, accounts=None)
SUMMARY = OperatorView(detailed=False, accounts=frozenset())


def operator_view(connection: ASGIConnection[Any, Any, Any, Any], settings: Settings) -> OperatorView:
    """The view this request is entitled to; an unknown API key is a 401 as on every other route."""
    metrics_key = settings.server.metrics_key
    presented = presented_key(connection)
    if metrics_key is not None:
        if presented and hmac.compare_digest(presented.encode(), metrics_key.encode()):
            return EVERYTHING
        return SUMMARY
    if not settings.api_keys:
        return EVERYTHING
    if not presented:
        return OperatorView(detailed=True, accounts=frozenset())
    return OperatorView(detailed=True, accounts=resolve_caller(connection, settings.api_keys).accounts)


def require_metrics_access(view: OperatorView) -> None:
    if not view.detailed:
        raise ApiError(401, "X-API-Key: /metrics needs the metrics key (TICKER_METRICS_KEY)")
