"""The exchange's and the broker's order rules, with the message Kite gives for each refusal.

The paper exchange refuses with these checks what Kite's RMS and NSE would refuse, so that code
written against a paper account handles live refusals too; the service's autoslice reads the freeze
quantities from here. Each rule is a pure function returning Kite's message, or None when the order
passes. Sources (read December 2026):

- products by segment: Kite's order documentation (kite.trade/docs/kite/orders: CNC for delivery
  equity, MIS intraday equity and F&O, NRML for F&O, MTF margin trading in equity); the message is
  the one Kite gave for CNC on NFO (zerodha/gokiteconnect issue 103);
- CNC sell: "RMS:Rule: Check holdings" (Zerodha's answer on tradingqna.com, "My order is rejected &
  i'm getting the error RMS:Rule: Check holdings"); T1 shares count (BTST);
- stop-loss: Zerodha's pre-trade validation ("Trigger price: validates orders with trigger price lower
  than LTP for buy orders and higher than LTP for sell orders", support.zerodha.com, Kite order
  rejections) with Kite's messages "Trigger price for stoploss buy orders should be higher than the
  last traded price." (and sell: lower), "Trigger price can't be higher than price" (SL buy) and
  "Trigger price can't be lesser than price" (SL sell);
- freeze quantities per index underlying: NSE's limits as of June 2025 (NIFTY 1800, BANKNIFTY 900,
  FINNIFTY 1800, MIDCPNIFTY 5500; BSE's SENSEX 500, BANKEX 600); Kite's message quoted on
  tradingqna.com ("The order quantity 6300 (21 lots) is higher than the maximum quantity of 6000 (20
  lots) allowed by the exchanges. ..."); autoslice is capped at 10 slices (KITE.md, forum 15912);
- price bands: equities in a 20 % band around the previous close, futures in NSE's 10 % operating
  range (support.zerodha.com: "a dynamic price band of 10%"); options in the exchange's limit price
  protection range around the last price: premium above 50, within 40 %; at most 50, within 20
  rupees; Kite answers both with "Price exceeds circuit limits for the instrument. Place an order
  within the daily range." (reported for an LPP breach on tradingqna.com, 2026).
"""

from __future__ import annotations

import math
from decimal import Decimal

from ticker_service.instruments import Instrument

DERIVATIVE_EXCHANGES = frozenset({"NFO", "BFO", "CDS", "BCD", "MCX"})
EQUITY_PRODUCTS = ("CNC", "MIS", "MTF")
DERIVATIVE_PRODUCTS = ("NRML", "MIS")
MAX_AUTOSLICES = 10

# The most one order may carry, per derivative underlying (units, not lots)
FREEZE_QUANTITY: dict[str, int] = {
    "NIFTY": 1800,
    "BANKNIFTY": 900,
    "FINNIFTY": 1800,
    "MIDCPNIFTY": 5500,
    "SENSEX": 500,
    "BANKEX": 600,
}

EQUITY_BAND = Decimal("0.20")
FUTURES_BAND = Decimal("0.10")
OPTION_LPP_SHARE = Decimal("0.40")
OPTION_LPP_ABSOLUTE = Decimal(20)
OPTION_LPP_THRESHOLD = Decimal(50)

CIRCUIT = "Price exceeds circuit limits for the instrument. Place an order within the daily range."
HOLDINGS = "RMS:Rule: Check holdings"
MARKET_CLOSED = "Markets are closed right now. Place an AMO order or try during market hours."
AMO_IN_SESSION = "AMO orders are not allowed during market hours. Place a regular order."


def is_derivative(instrument: Instrument) -> bool:
    return instrument.exchange in DERIVATIVE_EXCHANGES


def is_option(instrument: Instrument) -> bool:
    return instrument.instrument_type in ("CE", "PE")


def products_for(instrument: Instrument) -> tuple[str, ...]:
    return DERIVATIVE_PRODUCTS if is_derivative(instrument) else EQUITY_PRODUCTS


def check_product(instrument: Instrument, product: str) -> str | None:
    allowed = products_for(instrument)
    if product in allowed:
        return None
    return (
        f"Trading in {instrument.exchange} is not allowed using {product} product type. "
        f"Try placing an order in {'/'.join(allowed)}."
    )


def check_stop_loss(
    transaction_type: str, order_type: str, price: Decimal | None, trigger: Decimal | None, ltp: Decimal
) -> str | None:
    """An SL buy's trigger at or below its price and above the last price; an SL sell the mirror;
    SL-M against the last price only."""
    if order_type not in ("SL", "SL-M") or trigger is None:
        return None
    buy = transaction_type == "BUY"
    if order_type == "SL" and price is not None:
        if buy and trigger > price:
            return "Trigger price can't be higher than price"
        if not buy and trigger < price:
            return "Trigger price can't be lesser than price"
    if buy and trigger <= ltp:
        return "Trigger price for stoploss buy orders should be higher than the last traded price."
    if not buy and trigger >= ltp:
        return "Trigger price for stoploss sell orders should be lower than the last traded price."
    return None


def freeze_limit(instrument: Instrument) -> int | None:
    """The most units one order may carry (a whole number of lots), or None when there is no limit."""
    if not is_derivative(instrument):
        return None
    freeze = FREEZE_QUANTITY.get(instrument.name)
    if freeze is None:
        return None
    lot = max(instrument.lot_size, 1)
    return (freeze // lot) * lot


def check_freeze(instrument: Instrument, quantity: int) -> str | None:
    limit = freeze_limit(instrument)
    if limit is None or quantity <= limit:
        return None
    lot = max(instrument.lot_size, 1)
    return (
        f"The order quantity {quantity} ({quantity // lot} lots) is higher than the maximum quantity of {limit} "
        f"({limit // lot} lots) allowed by the exchanges. Please reduce the order quantity or use iceberg orders."
    )


def slices(instrument: Instrument, quantity: int) -> list[int] | None:
    """Kite's autoslice: the quantities of the slices (each at most the freeze limit), or None when the
    order needs no slicing."""
    limit = freeze_limit(instrument)
    if limit is None or quantity <= limit or limit <= 0:
        return None
    count = math.ceil(quantity / limit)
    return [limit] * (count - 1) + [quantity - limit * (count - 1)]


def price_band(instrument: Instrument, ltp: Decimal) -> tuple[Decimal, Decimal]:
    """(lowest, highest) price a LIMIT order may carry today."""
    if is_option(instrument):
        if ltp > OPTION_LPP_THRESHOLD:
            return ltp * (1 - OPTION_LPP_SHARE), ltp * (1 + OPTION_LPP_SHARE)
        return max(ltp - OPTION_LPP_ABSOLUTE, instrument.tick_size), ltp + OPTION_LPP_ABSOLUTE
    reference = instrument.last_price  # the previous close of the instrument list
    share = FUTURES_BAND if is_derivative(instrument) else EQUITY_BAND
    return reference * (1 - share), reference * (1 + share)


def circuit_limits(instrument: Instrument, ltp: Decimal) -> tuple[float, float]:
    """The band as a quote shows it (`lower_circuit_limit`, `upper_circuit_limit`), to the paisa."""
    low, high = price_band(instrument, ltp)
    return float(round(low, 2)), float(round(high, 2))


def check_price_band(instrument: Instrument, order_type: str, price: Decimal | None, ltp: Decimal) -> str | None:
    if order_type not in ("LIMIT", "SL") or price is None:
        return None
    low, high = price_band(instrument, ltp)
    return CIRCUIT if not low <= price <= high else None


def holdings_message(exchange: str, tradingsymbol: str, available: int, quantity: int) -> str:
    return (
        f"{HOLDINGS}: {exchange}:{tradingsymbol} has {max(available, 0)} available to sell in CNC "
        f"(holdings including T1, less open sell orders), {quantity} asked. Short selling is not allowed in CNC."
    )
