"""What each failure of a Kite call means, in one table (KITE.md "Errors"; a test per row).

`kiteconnect` raises its own exception classes for Kite's answers and lets `requests`' exceptions
through for everything below HTTP. The executor decides between retrying, pausing, rejecting and
reconciling by the class of `brokers.base` error it gets, so the one question here is: did the
request reach Kite, and if it did, what did Kite say?

| raised | for a change (place, modify, cancel) | for a read |
|---|---|---|
| `TokenException` | session refused: the account pauses until a new token | the same |
| `PermissionException` | rejected, saying plainly that orders come only from the registered static IP | rejected |
| `InputException`, `OrderException` | rejected with Kite's message | not found (an unknown order id) |
| `NetworkException` 429 | throttled: not executed, retry after a backoff | throttled |
| `NetworkException`, `GeneralException`, `DataException` | ambiguous: reconcile by tag | unavailable |
| connection refused, connect timeout | not sent: retry | unavailable |
| read timeout, connection dropped after sending | ambiguous: reconcile by tag | unavailable |
| anything else | ambiguous | unavailable |
"""

from __future__ import annotations

import requests
from kiteconnect import exceptions as kite

from ticker_service.brokers.base import (
    BrokerAmbiguous,
    BrokerAuthError,
    BrokerError,
    BrokerRejected,
    BrokerUnavailable,
    OrderNotFound,
)

IP_RULE = (
    "Kite refused this order's origin: since 1 April 2026 (SEBI) Kite accepts orders only from the static IP "
    "registered for the app in the Kite developer console; register this machine's public IP there"
)


class BrokerThrottled(BrokerUnavailable):
    """Kite answered 429: the request was not executed. Safe to send again after a pause."""


def _not_sent(exc: BaseException) -> bool:
    """True when `requests` failed before the request could reach Kite (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = repr(exc)
        return any(s in text for s in ("NewConnectionError", "ConnectionRefusedError", "Connection refused"))
    return False


def change_error(exc: BaseException) -> BrokerError:
    """The error a failed place, modify or cancel maps to."""
    if isinstance(exc, kite.TokenException):
        return BrokerAuthError(str(exc))
    if isinstance(exc, kite.PermissionException):
        return BrokerRejected(f"{IP_RULE}. Kite said: {exc}")
    if isinstance(exc, kite.InputException | kite.OrderException):
        return BrokerRejected(str(exc))
    if isinstance(exc, kite.NetworkException) and getattr(exc, "code", None) == 429:
        return BrokerThrottled(f"Kite's rate limit answered 429, not executed: {exc}")
    if isinstance(exc, kite.KiteException):
        return BrokerAmbiguous(f"{type(exc).__name__} from Kite: {exc}")
    if _not_sent(exc):
        return BrokerUnavailable(f"could not reach Kite: {type(exc).__name__}")
    if isinstance(exc, requests.exceptions.RequestException):
        return BrokerAmbiguous(f"no answer from Kite after sending: {type(exc).__name__}")
    return BrokerAmbiguous(f"unexpected error calling Kite: {type(exc).__name__}")


def read_error(exc: BaseException) -> BrokerError:
    """The error a failed read maps to: nothing a read does can be ambiguous."""
    if isinstance(exc, kite.TokenException):
        return BrokerAuthError(str(exc))
    if isinstance(exc, kite.PermissionException):
        return BrokerRejected(str(exc))
    if isinstance(exc, kite.InputException | kite.OrderException):
        return OrderNotFound(str(exc))
    if isinstance(exc, kite.NetworkException) and getattr(exc, "code", None) == 429:
        return BrokerThrottled(f"Kite's rate limit answered 429: {exc}")
    return BrokerUnavailable(f"could not read from Kite: {type(exc).__name__}")


def is_network_failure(error: BrokerError) -> bool:
    """Failures that count toward opening the account's circuit breaker (Kite itself unreachable)."""
    return isinstance(error, BrokerAmbiguous) or (
        isinstance(error, BrokerUnavailable) and not isinstance(error, BrokerThrottled)
    )
