"""Kite's error answers: `{"status": "error", "message", "error_type"}` with the HTTP status kiteconnect expects.

Messages quoted from Kite where KITE.md has them; the others are worded as Kite words its own, and are
marked "fake's wording" so nobody mistakes them for Kite's exact text.
"""

from __future__ import annotations

from typing import Any

# The HTTP status Kite pairs with each error type (kiteconnect/exceptions.py defaults)
DEFAULT_STATUS: dict[str, int] = {
    "TokenException": 403,
    "PermissionException": 403,
    "UserException": 403,
    "InputException": 400,
    "OrderException": 500,
    "NetworkException": 503,
    "DataException": 502,
    "GeneralException": 500,
}

INVALID_SESSION = "Incorrect `api_key` or `access_token`."
INVALID_REQUEST_TOKEN = "Token is invalid or has expired."  # noqa: S105 (a message, not a secret)
INVALID_CHECKSUM = "Invalid `checksum`."
INVALID_API_KEY = "Invalid `api_key`."
TOO_MANY_REQUESTS = "Too many requests"
MARKET_PROTECTION_REQUIRED = "Market orders without market protection are not allowed via API"
UNKNOWN_INSTRUMENT = "The instrument you are placing an order for has either expired or does not exist."
# fake's wording for the situations below
MISSING_VERSION = "Missing or invalid `X-Kite-Version` header: only version 3 is supported."
MAX_MODIFICATIONS = "Maximum allowed order modifications exceeded. Cancel the order and place a new one."
IP_NOT_REGISTERED = (
    "Order requests are accepted only from the static IP registered for this app. "
    "Register the IP under 'IP Whitelist' in the Kite Connect developer console."
)
INVALID_TAG = "Invalid `tag`: at most 20 alphanumeric characters."
ROUTE_NOT_FOUND = "Route not found"
ORDER_NOT_FOUND = "Couldn't find that `order_id`."
TOO_MANY_TICKER_CONNECTIONS = "Maximum WebSocket connections (3) per API key exceeded."


class KiteError(Exception):
    """An error answer the fake gives exactly as Kite would shape it."""

    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status if status is not None else DEFAULT_STATUS.get(error_type, 500)

    def body(self) -> dict[str, Any]:
        return {"status": "error", "message": self.message, "data": None, "error_type": self.error_type}


def input_error(message: str) -> KiteError:
    return KiteError("InputException", message)


def token_error(message: str = INVALID_SESSION) -> KiteError:
    return KiteError("TokenException", message)


def invalid_field(name: str) -> KiteError:
    return input_error(f"Invalid `{name}`.")
