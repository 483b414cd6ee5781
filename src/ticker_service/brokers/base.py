"""The broker protocol, shaped after Kite Connect.

The exceptions are the important part: the relay decides between retrying, dead-lettering and
reconciling purely from which of them a call raised, so every broker must map its own errors onto
exactly these classes. Anything else a broker raises is treated as ambiguous (`BrokerAmbiguous`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from ticker_service.instruments import Instrument

OrderStatus = str  # Kite's words: OPEN, COMPLETE, CANCELLED, REJECTED, TRIGGER PENDING, ...
TERMINAL_ORDER_STATUSES = frozenset({"COMPLETE", "CANCELLED", "REJECTED"})
# Kite's states of an order that is still working at the exchange (it can be modified or cancelled)
OPEN_ORDER_STATUSES = frozenset(
    {
        "OPEN",
        "TRIGGER PENDING",
        "AMO REQ RECEIVED",
        "PUT ORDER REQ RECEIVED",
        "VALIDATION PENDING",
        "OPEN PENDING",
        "MODIFY PENDING",
        "MODIFY VALIDATION PENDING",
    }
)


class BrokerError(Exception):
    """Base class of every error a broker maps its failures to."""


class BrokerUnavailable(BrokerError):
    """The request certainly did not reach the broker (connection refused, 5xx before acceptance).

    Safe to retry with the same tag.
    """


class BrokerRejected(BrokerError):
    """The broker refused the request outright (bad input, order state, RMS); no order was created."""


class BrokerAuthError(BrokerError):
    """The session token was refused: stop and alert an operator, never retry on our own."""


class BrokerAmbiguous(BrokerError):
    """The outcome is unknown (timeout, lost answer): the request may or may not have taken effect."""


class OrderNotFound(BrokerError):
    """The broker does not know that order id."""


class PlaceOrderParams(msgspec.Struct, frozen=True, kw_only=True):
    """What a broker needs to place an order; already validated against the instrument."""

    exchange: str
    tradingsymbol: str
    transaction_type: Literal["BUY", "SELL"]
    quantity: int
    product: str
    order_type: str
    variety: str = "regular"
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    validity: str = "DAY"
    disclosed_quantity: int | None = None
    market_protection: Decimal | None = None
    validity_ttl: int | None = None  # minutes, with validity TTL
    iceberg_legs: int | None = None
    iceberg_quantity: int | None = None
    auction_number: str | None = None
    tag: str  # the service's broker tag, never the client's


class ModifyOrderParams(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    variety: str = "regular"
    quantity: int | None = None
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    order_type: str | None = None
    validity: str | None = None


class BrokerOrder(msgspec.Struct, kw_only=True):
    """One order as the broker's order book shows it (Kite's field names)."""

    order_id: str
    status: OrderStatus
    exchange: str
    tradingsymbol: str
    transaction_type: str
    product: str
    order_type: str
    variety: str = "regular"
    validity: str = "DAY"
    quantity: int
    price: float = 0.0
    trigger_price: float = 0.0
    disclosed_quantity: int = 0
    filled_quantity: int = 0
    pending_quantity: int = 0
    cancelled_quantity: int = 0
    average_price: float = 0.0
    tag: str | None = None
    status_message: str | None = None
    instrument_token: int | None = None
    order_timestamp: datetime | None = None
    exchange_timestamp: datetime | None = None
    exchange_order_id: str | None = None
    modified: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class PlaceResult(msgspec.Struct, kw_only=True):
    order_id: str
    order: BrokerOrder | None = None  # a snapshot when the broker has one at hand (paper does)


class ChangeAck(msgspec.Struct, kw_only=True):
    """A modification or cancellation the broker accepted without showing the order (Kite answers
    with the id only); the executor reads the order back."""

    order_id: str


class BrokerDeadline(BrokerError):
    """Not sent: the request could not have its turn (rate limits) before the task's deadline."""


class BrokerSession(msgspec.Struct, kw_only=True):
    """A broker login: the access token (never logged, never answered) and whose it is."""

    access_token: str
    user_id: str | None = None


class Broker(Protocol):
    """What the service needs of a broker. One instance per account."""

    account_id: str

    async def place_order(self, params: PlaceOrderParams) -> PlaceResult: ...

    async def wait_for_turn(self, operation: str, deadline_at: datetime) -> None:
        """Return when a change (place, modify, cancel) may be sent without breaking the broker's rate
        limits (across every instance); raise `BrokerDeadline` when that would be after `deadline_at`.
        Called right before the change, outside its timeout."""
        ...

    async def modify_order(self, params: ModifyOrderParams) -> BrokerOrder | ChangeAck: ...

    async def cancel_order(self, order_id: str, variety: str = "regular") -> BrokerOrder | ChangeAck: ...

    async def get_order(self, order_id: str) -> BrokerOrder: ...

    async def orders(self, skip: Collection[str] = frozenset()) -> list[BrokerOrder]:
        """The day's order book (Kite's GET /orders): today's orders and any still open, but those
        named in `skip` (the caller knows them final: they cannot change, and a day's book of
        thousands of orders need not be mapped again at every reconciliation)."""
        ...

    async def orders_by_tag(self, tag: str) -> list[BrokerOrder]: ...

    async def positions(self) -> Mapping[str, list[dict[str, Any]]]: ...

    def order_updates(self) -> AsyncIterator[list[BrokerOrder]]:
        """Changes the broker makes on its own, as they happen: fills, cancellations by the exchange,
        orders placed elsewhere (the paper matcher; Kite's ticker and postbacks).

        One process per account consumes it (an advisory lock), recording each change in the order
        mirror, which turns it into events exactly once. It runs until cancelled; if it raises, it
        is started again after a pause, and reconciliation repairs whatever it missed meanwhile.
        """
        ...

    async def close(self) -> None: ...


@runtime_checkable
class SessionBroker(Protocol):
    """A broker whose accounts log in (Kite): a daily access token, from a login or given directly."""

    account_id: str
    configured_user_id: str | None

    @property
    def user_id(self) -> str | None:
        """The broker user the account's session belongs to (the configured one before any login)."""
        ...

    def login_url(self, redirect_params: str) -> str:
        """The broker's login page for this account; `redirect_params` come back to the callback."""
        ...

    async def exchange_request_token(self, request_token: str) -> BrokerSession: ...

    async def verify_access_token(self, access_token: str) -> BrokerSession: ...

    def session_changed(self) -> None:
        """Another instance (or this one) stored a new session for the account."""
        ...

    async def refresh_session(self) -> None:
        """Read the account's session now (at start-up, and before its state is shown)."""
        ...


@runtime_checkable
class PriceModel(Protocol):
    """A broker whose prices are a function of time (the paper broker): paper candles and paper
    ticks are read from it, so they agree with its fills."""

    def model_price(self, instrument: Instrument, t: float) -> Decimal: ...


@runtime_checkable
class DepthModel(Protocol):
    """A broker whose visible book is a function of time (the paper broker): the paper tick feed and
    quotes show the depth its MARKET orders fill against."""

    def model_depth(self, instrument: Instrument, t: float) -> Any: ...


@runtime_checkable
class TickCarrier(Protocol):
    """A broker whose own upstream connection also carries ticks (Kite's ticker, which the account's
    order-update stream holds): market data hands it the holder to run on that connection."""

    def carry_ticks(self, holder: Callable[[Any], Coroutine[Any, Any, None]]) -> None: ...

    async def owns_ticker_credentials(self, api_key: str, access_token: str) -> bool:
        """Whether these are the account's own ticker credentials (its api_key and current token),
        which a Kite-compatible client may present."""
        ...


@runtime_checkable
class LimitedBroker(Protocol):
    """A broker with a daily order limit (Kite's 5,000 per API key), for `GET /accounts`."""

    async def orders_today(self) -> tuple[int, int]:
        """(orders sent today, the daily limit), across every instance."""
        ...


@runtime_checkable
class AccountViews(Protocol):
    """The daily views of an account in Kite's shapes (both brokers): holdings, margins, an order's trades."""

    async def holdings(self) -> list[dict[str, Any]]: ...

    async def margins(self) -> dict[str, Any]:
        """Kite's `GET /user/margins`: `{"equity": {...}, "commodity": {...}}`."""
        ...

    async def order_trades(self, order_id: str) -> list[dict[str, Any]]:
        """The fills of one order; `OrderNotFound` when the account has no such order."""
        ...


@runtime_checkable
class Resettable(Protocol):
    """A simulated account that can start over (the paper broker)."""

    async def reset(self) -> None:
        """Back to the starting funds with no orders, positions or holdings."""
        ...


@runtime_checkable
class QuoteSource(Protocol):
    """Kite's quote endpoints for `EXCHANGE:SYMBOL` keys; instruments it does not know are left out."""

    async def quotes(self, keys: list[str]) -> dict[str, dict[str, Any]]: ...

    async def last_prices(self, keys: list[str]) -> dict[str, dict[str, Any]]: ...
