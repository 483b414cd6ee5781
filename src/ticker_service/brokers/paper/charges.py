"""What a paper fill costs: brokerage, STT, exchange transaction charges, SEBI fees, stamp duty, GST.

One table, `RATES`, per kind of trade, from Zerodha's published charges (zerodha.com/charges, as in
force from 1 April 2026: the STT on futures and options raised by the Union Budget 2026; read
December 2026):

| | equity delivery | equity intraday | futures | options |
|---|---|---|---|---|
| brokerage | 0 | 0.03 % or 20 per executed order, the lower | 0.03 % or 20, the lower | 20 per executed order |
| STT | 0.1 % on buy and sell | 0.025 % on sell | 0.05 % on sell | 0.15 % of the premium on sell |
| transaction, NSE / BSE | 0.00307 / 0.00375 % | 0.00307 / 0.00375 % | 0.00183 % / 0 | 0.03553 / 0.0325 % (premium) |
| SEBI | 10 per crore | 10 per crore | 10 per crore | 10 per crore |
| stamp duty (buy side) | 0.015 % | 0.003 % | 0.002 % | 0.003 % |
| GST | 18 % of brokerage + SEBI + transaction charges, in every kind |

Brokerage is per executed order: an order filled in parts pays it once, spread over its fills in
proportion to their value. Every amount is rounded to the paisa (contract notes round STT to the
rupee; the paper exchange keeps paise so small trades do not round to nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ticker_service.instruments import Instrument

PAISA = Decimal("0.01")
PERCENT = Decimal("0.01")
CRORE = Decimal(10_000_000)
GST = Decimal(18) * PERCENT
SEBI_PER_CRORE = Decimal(10)


@dataclass(frozen=True, slots=True)
class Rates:
    brokerage_share: Decimal  # of the order's value ...
    brokerage_cap: Decimal | None  # ... at most this per executed order (None: no cap)
    brokerage_flat: Decimal  # or a flat amount per executed order
    stt_buy: Decimal
    stt_sell: Decimal
    transaction: Mapping[str, Decimal]  # by exchange
    stamp_buy: Decimal


def _pct(text: str) -> Decimal:
    return Decimal(text) * PERCENT


RATES: dict[str, Rates] = {
    "delivery": Rates(
        brokerage_share=Decimal(0),
        brokerage_cap=None,
        brokerage_flat=Decimal(0),
        stt_buy=_pct("0.1"),
        stt_sell=_pct("0.1"),
        transaction={"NSE": _pct("0.00307"), "BSE": _pct("0.00375")},
        stamp_buy=_pct("0.015"),
    ),
    "intraday": Rates(
        brokerage_share=_pct("0.03"),
        brokerage_cap=Decimal(20),
        brokerage_flat=Decimal(0),
        stt_buy=Decimal(0),
        stt_sell=_pct("0.025"),
        transaction={"NSE": _pct("0.00307"), "BSE": _pct("0.00375")},
        stamp_buy=_pct("0.003"),
    ),
    "futures": Rates(
        brokerage_share=_pct("0.03"),
        brokerage_cap=Decimal(20),
        brokerage_flat=Decimal(0),
        stt_buy=Decimal(0),
        stt_sell=_pct("0.05"),
        transaction={"NFO": _pct("0.00183"), "BFO": Decimal(0)},
        stamp_buy=_pct("0.002"),
    ),
    "options": Rates(
        brokerage_share=Decimal(0),
        brokerage_cap=None,
        brokerage_flat=Decimal(20),
        stt_buy=Decimal(0),
        stt_sell=_pct("0.15"),
        transaction={"NFO": _pct("0.03553"), "BFO": _pct("0.0325")},
        stamp_buy=_pct("0.003"),
    ),
}


def kind_of(instrument: Instrument | None, exchange: str, product: str) -> str:
    if instrument is not None and instrument.instrument_type in ("CE", "PE"):
        return "options"
    if exchange in ("NFO", "BFO", "CDS", "BCD", "MCX"):
        return "futures"
    return "delivery" if product in ("CNC", "MTF") else "intraday"


def _money(value: Decimal) -> Decimal:
    return value.quantize(PAISA, rounding=ROUND_HALF_UP)


def brokerage(rates: Rates, order_value: Decimal) -> Decimal:
    """Brokerage of one executed order of this value."""
    if rates.brokerage_flat:
        return rates.brokerage_flat
    fee = order_value * rates.brokerage_share
    return min(fee, rates.brokerage_cap) if rates.brokerage_cap is not None else fee


def fill_charges(
    rates: Rates, exchange: str, side: str, value: Decimal, brokerage_share: Decimal
) -> dict[str, Decimal]:
    """The charges of one fill of `value`, with its share of its order's brokerage."""
    buy = side == "BUY"
    transaction = _money(value * rates.transaction.get(exchange, Decimal(0)))
    sebi = _money(value * SEBI_PER_CRORE / CRORE)
    fee = _money(brokerage_share)
    parts = {
        "brokerage": fee,
        "stt": _money(value * (rates.stt_buy if buy else rates.stt_sell)),
        "exchange_turnover_charge": transaction,
        "sebi_turnover_charge": sebi,
        "stamp_duty": _money(value * rates.stamp_buy) if buy else Decimal(0),
        "gst": _money((fee + sebi + transaction) * GST),
    }
    parts["total"] = sum(parts.values(), Decimal(0))
    return parts


def trade_charges(trades: Iterable[Mapping[str, Any]], instrument: Instrument | None) -> list[dict[str, Decimal]]:
    """The charges of each trade (rows of `paper_trades`, in order), brokerage once per order."""
    rows = list(trades)
    order_value: dict[str, Decimal] = {}
    for row in rows:
        order_value[row["order_id"]] = order_value.get(row["order_id"], Decimal(0)) + _value(row)
    out = []
    for row in rows:
        rates = RATES[kind_of(instrument, row["exchange"], row["product"])]
        whole = order_value[row["order_id"]]
        share = brokerage(rates, whole) * _value(row) / whole if whole else Decimal(0)
        out.append(fill_charges(rates, row["exchange"], row["transaction_type"], _value(row), share))
    return out


def total(trades: Iterable[Mapping[str, Any]], instrument: Instrument | None) -> Decimal:
    return sum((c["total"] for c in trade_charges(trades, instrument)), Decimal(0))


def as_json(parts: Mapping[str, Decimal]) -> dict[str, float]:
    return {name: float(value) for name, value in parts.items()}


def _value(row: Mapping[str, Any]) -> Decimal:
    return Decimal(row["quantity"]) * Decimal(row["price"])
