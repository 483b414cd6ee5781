"""Kite's checks on an order's form fields, before anything reaches the book.

Everything here answers InputException (HTTP 400), as Kite does for input it refuses at the door;
nothing refused here is in the book afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ticker_service.fakekite.errors import (
    INVALID_TAG,
    MARKET_PROTECTION_REQUIRED,
    UNKNOWN_INSTRUMENT,
    input_error,
    invalid_field,
)
from ticker_service.fakekite.instruments import FakeInstrument, InstrumentTable

VARIETIES = ("regular", "amo", "co", "iceberg", "auction")
PRODUCTS = ("CNC", "NRML", "MIS", "MTF", "CO")
ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
VALIDITIES = ("DAY", "IOC", "TTL")
TRANSACTION_TYPES = ("BUY", "SELL")
PROTECTED_TYPES = ("MARKET", "SL-M")  # need market protection since April 2026 (KITE.md)
PRICED_TYPES = ("LIMIT", "SL")
TRIGGERED_TYPES = ("SL", "SL-M")
MAX_TAG_LENGTH = 20
MAX_ICEBERG_LEGS = 10


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    variety: str
    instrument: FakeInstrument
    transaction_type: str
    quantity: int
    product: str
    order_type: str
    price: Decimal
    trigger_price: Decimal
    validity: str
    validity_ttl: int
    disclosed_quantity: int
    market_protection: Decimal
    tag: str | None
    iceberg_legs: int
    iceberg_quantity: int
    auction_number: str | None


@dataclass(frozen=True, slots=True)
class ModifyRequest:
    quantity: int | None
    price: Decimal | None
    trigger_price: Decimal | None
    order_type: str | None
    validity: str | None
    disclosed_quantity: int | None
    market_protection: Decimal | None


def _int(form: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    raw = form.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise invalid_field(name) from None
    if not value.is_finite() or value != value.to_integral_value():
        raise invalid_field(name)
    return int(value)


def _decimal(form: Mapping[str, str], name: str) -> Decimal | None:
    raw = form.get(name, "").strip()
    if raw == "":
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise invalid_field(name) from None
    if not value.is_finite():
        raise invalid_field(name)
    return value


def _choice(form: Mapping[str, str], name: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = form.get(name, "").strip() or default
    if value not in choices:
        raise invalid_field(name)
    return value


def check_tag(tag: str | None) -> str | None:
    if tag is None or tag == "":
        return None
    if len(tag) > MAX_TAG_LENGTH or not tag.isascii() or not tag.isalnum():
        raise input_error(INVALID_TAG)
    return tag


def check_market_protection(order_type: str, value: Decimal | None) -> Decimal:
    """-1 (automatic) or a percentage in (0, 100]; required for MARKET and SL-M, where 0 is refused."""
    if order_type in PROTECTED_TYPES and (value is None or value == 0):
        raise input_error(MARKET_PROTECTION_REQUIRED)
    if value is None:
        return Decimal(0)
    if value != -1 and not (0 <= value <= 100):
        raise input_error("Invalid `market_protection`: -1 for automatic, or a percentage above 0 and up to 100.")
    return value


def _check_tick(price: Decimal, instrument: FakeInstrument, name: str) -> None:
    if price <= 0:
        raise invalid_field(name)
    tick = instrument.tick_size
    if tick > 0 and price % tick != 0:
        raise input_error(
            f"Tick size for this script is {tick.normalize()}. "
            "Kindly enter price in the multiple of tick size for this script"
        )


def parse_place(variety: str, form: Mapping[str, str], instruments: InstrumentTable) -> PlaceRequest:
    if variety not in VARIETIES:
        raise input_error("Invalid `variety`.")
    exchange = form.get("exchange", "").strip()
    tradingsymbol = form.get("tradingsymbol", "").strip()
    if not exchange:
        raise invalid_field("exchange")
    if not tradingsymbol:
        raise invalid_field("tradingsymbol")
    transaction_type = _choice(form, "transaction_type", TRANSACTION_TYPES)
    order_type = _choice(form, "order_type", ORDER_TYPES)
    product = _choice(form, "product", PRODUCTS)
    validity = _choice(form, "validity", VALIDITIES, "DAY")
    quantity = _int(form, "quantity")
    if quantity is None or quantity <= 0:
        raise invalid_field("quantity")
    tag = check_tag(form.get("tag"))
    instrument = instruments.get(exchange, tradingsymbol)
    if instrument is None or instrument.is_index:
        raise input_error(UNKNOWN_INSTRUMENT)
    if instrument.lot_size > 1 and quantity % instrument.lot_size:
        raise input_error(f"Quantity should be a multiple of the lot size ({instrument.lot_size}).")
    market_protection = check_market_protection(order_type, _decimal(form, "market_protection"))
    price = _decimal(form, "price") or Decimal(0)
    trigger_price = _decimal(form, "trigger_price") or Decimal(0)
    if order_type in PRICED_TYPES:
        _check_tick(price, instrument, "price")
    else:
        price = Decimal(0)
    if order_type in TRIGGERED_TYPES or variety == "co":
        _check_tick(trigger_price, instrument, "trigger_price")
        if order_type == "SL" and transaction_type == "BUY" and trigger_price > price:
            raise input_error("Trigger price for stoploss buy orders should be less than or equal to the price.")
        if order_type == "SL" and transaction_type == "SELL" and trigger_price < price:
            raise input_error("Trigger price for stoploss sell orders should be greater than or equal to the price.")
    else:
        trigger_price = Decimal(0)
    validity_ttl = _int(form, "validity_ttl", 0) or 0
    if validity == "TTL" and validity_ttl <= 0:
        raise invalid_field("validity_ttl")
    disclosed = _int(form, "disclosed_quantity", 0) or 0
    if disclosed < 0 or disclosed > quantity:
        raise invalid_field("disclosed_quantity")
    legs = _int(form, "iceberg_legs", 0) or 0
    leg_quantity = _int(form, "iceberg_quantity", 0) or 0
    if variety == "iceberg":
        if not 2 <= legs <= MAX_ICEBERG_LEGS:
            raise invalid_field("iceberg_legs")
        if leg_quantity <= 0 or leg_quantity * legs < quantity or leg_quantity > quantity:
            raise invalid_field("iceberg_quantity")
    auction_number = form.get("auction_number", "").strip() or None
    if variety == "auction" and auction_number is None:
        raise invalid_field("auction_number")
    if variety == "co" and order_type not in ("MARKET", "LIMIT"):
        raise input_error("Cover orders can only be MARKET or LIMIT orders.")
    return PlaceRequest(
        variety=variety,
        instrument=instrument,
        transaction_type=transaction_type,
        quantity=quantity,
        product=product,
        order_type=order_type,
        price=price,
        trigger_price=trigger_price,
        validity=validity,
        validity_ttl=validity_ttl,
        disclosed_quantity=disclosed,
        market_protection=market_protection,
        tag=tag,
        iceberg_legs=legs,
        iceberg_quantity=leg_quantity,
        auction_number=auction_number,
    )


def parse_modify(form: Mapping[str, str]) -> ModifyRequest:
    order_type = form.get("order_type", "").strip() or None
    if order_type is not None and order_type not in ORDER_TYPES:
        raise invalid_field("order_type")
    validity = form.get("validity", "").strip() or None
    if validity is not None and validity not in VALIDITIES:
        raise invalid_field("validity")
    quantity = _int(form, "quantity")
    if quantity is not None and quantity <= 0:
        raise invalid_field("quantity")
    return ModifyRequest(
        quantity=quantity,
        price=_decimal(form, "price"),
        trigger_price=_decimal(form, "trigger_price"),
        order_type=order_type,
        validity=validity,
        disclosed_quantity=_int(form, "disclosed_quantity"),
        market_protection=_decimal(form, "market_protection"),
    )


def check_modified_prices(order_type: str, price: Decimal, trigger: Decimal, instrument: FakeInstrument) -> None:
    if order_type in PRICED_TYPES:
        _check_tick(price, instrument, "price")
    if order_type in TRIGGERED_TYPES:
        _check_tick(trigger, instrument, "trigger_price")
