"""Instruments in Kite's instrument-CSV format, and the order checks that depend on them.

The same checks run at intake (so bad input never becomes a task) and inside the paper broker (as
Kite's own RMS would), which is why they live here and not in either caller.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Protocol

PRICED_ORDER_TYPES = frozenset({"LIMIT", "SL"})
TRIGGERED_ORDER_TYPES = frozenset({"SL", "SL-M"})


@dataclass(frozen=True, slots=True)
class Instrument:
    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    last_price: Decimal
    expiry: date | None
    strike: Decimal
    tick_size: Decimal
    lot_size: int
    instrument_type: str
    segment: str
    exchange: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.exchange, self.tradingsymbol)


class InstrumentBook:
    """Instruments by (exchange, tradingsymbol) and by token."""

    def __init__(self, instruments: list[Instrument]) -> None:
        self._by_key = {i.key: i for i in instruments}
        self._by_token = {i.instrument_token: i for i in instruments}

    def get(self, exchange: str, tradingsymbol: str) -> Instrument | None:
        return self._by_key.get((exchange, tradingsymbol))

    def by_token(self, token: int) -> Instrument | None:
        return self._by_token.get(token)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)


class ListingUnavailable(Exception):
    """The account's broker lists instruments, but no list is stored and it cannot be fetched now."""


class InstrumentListing(Protocol):
    """Which instrument an order names, for its account's broker (`marketdata`'s catalogue)."""

    async def lookup(self, account_id: str, exchange: str, tradingsymbol: str) -> Instrument | None:
        """None when the broker does not list it; `ListingUnavailable` when there is no list to ask."""
        ...


def _parse_row(row: dict[str, str]) -> Instrument:
    return Instrument(
        instrument_token=int(row["instrument_token"]),
        exchange_token=int(row["exchange_token"]),
        tradingsymbol=row["tradingsymbol"],
        name=row["name"],
        last_price=Decimal(row["last_price"]),
        expiry=date.fromisoformat(row["expiry"]) if row["expiry"] else None,
        strike=Decimal(row["strike"] or "0"),
        tick_size=Decimal(row["tick_size"]),
        lot_size=int(row["lot_size"]),
        instrument_type=row["instrument_type"],
        segment=row["segment"],
        exchange=row["exchange"],
    )


def parse_instruments_csv(text: str) -> InstrumentBook:
    return InstrumentBook([_parse_row(row) for row in csv.DictReader(text.splitlines())])


@cache
def load_instruments(path: str | None = None) -> InstrumentBook:
    """The instrument list at `path` (`TICKER_INSTRUMENTS_FILE`), else the file shipped with the package."""
    if path:
        return parse_instruments_csv(Path(path).read_text())
    return parse_instruments_csv(resources.files("ticker_service").joinpath("data/instruments.csv").read_text())


def to_decimal(value: float | Decimal | int | str | None) -> Decimal | None:
    """Exact decimal of a JSON number: via its shortest repr, so 19500.05 stays 19500.05."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        return None


def is_tick_multiple(value: Decimal, tick: Decimal) -> bool:
    return tick > 0 and (value % tick) == 0


def check_order(
    instrument: Instrument,
    *,
    quantity: int,
    order_type: str,
    price: Decimal | None,
    trigger_price: Decimal | None,
    disclosed_quantity: int | None = None,
    field_prefix: str = "",
) -> list[tuple[str, str]]:
    """Problems with an order on this instrument, as (field, message) pairs; empty when valid."""
    p = field_prefix
    errors: list[tuple[str, str]] = []
    if quantity <= 0:
        errors.append((f"{p}quantity", "quantity must be positive"))
    elif quantity % instrument.lot_size:
        errors.append(
            (
                f"{p}quantity",
                f"quantity {quantity} is not a multiple of the lot size {instrument.lot_size} "
                f"of {instrument.exchange}:{instrument.tradingsymbol}",
            )
        )
    if order_type in PRICED_ORDER_TYPES:
        if price is None or price <= 0:
            errors.append((f"{p}price", f"price is required and must be positive for {order_type} orders"))
        elif not is_tick_multiple(price, instrument.tick_size):
            errors.append((f"{p}price", f"price {price} is not a multiple of the tick size {instrument.tick_size}"))
    elif price not in (None, Decimal(0)):
        errors.append((f"{p}price", f"price must not be given for {order_type} orders"))
    if order_type in TRIGGERED_ORDER_TYPES:
        if trigger_price is None or trigger_price <= 0:
            errors.append(
                (f"{p}trigger_price", f"trigger_price is required and must be positive for {order_type} orders")
            )
        elif not is_tick_multiple(trigger_price, instrument.tick_size):
            errors.append(
                (
                    f"{p}trigger_price",
                    f"trigger_price {trigger_price} is not a multiple of the tick size {instrument.tick_size}",
                )
            )
    elif trigger_price not in (None, Decimal(0)):
        errors.append((f"{p}trigger_price", f"trigger_price must not be given for {order_type} orders"))
    if disclosed_quantity and not 0 < disclosed_quantity <= quantity:
        errors.append((f"{p}disclosed_quantity", "disclosed_quantity must be between 0 and quantity"))
    return errors
