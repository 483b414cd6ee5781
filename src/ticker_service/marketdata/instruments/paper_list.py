"""The paper accounts' instrument list, rolled with the calendar.

The shipped list (Kite's CSV format) holds the equities and a few fixed contracts, among them the
spec's `NIFTY25NOVFUT` and `BANKNIFTY25NOVFUT`, which stay tradable so its examples keep working.
On top of it, for each index with a future in that list, the current and the next two monthly
contracts are generated for the day: the future and an option chain (CE and PE) of strikes around
the index's reference price. Contracts roll off after their expiry day.

Every generated field is a function of the contract alone, never of the day it is generated on,
so every instance and every restart gives a contract the same token and the same reference price.
A token packs (index, contract month, kind, strike) into an exchange token above every listed one,
in Kite's layout (`exchange_token << 8 | segment`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

from ticker_service.instruments import Instrument, InstrumentBook
from ticker_service.marketdata.instruments.expiry import Holidays, monthly_expiries

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
CONTRACTS = 3  # the current and the next two monthly expiries
STRIKES_EACH_SIDE = 10
SEGMENT_NFO = 2  # `instrument_token & 0xff` of NFO (KITE.md)
KINDS = ("FUT", "CE", "PE")
# generated exchange tokens start here, above every NFO exchange token listed; tokens stay below 2**31
# (a signed 32-bit integer, whatever a client decodes them as)
_GENERATED = 1 << 22
_FIRST_YEAR = 2020  # months are counted from January 2020 in a token (8 bits: until 2041)


@dataclass(frozen=True, slots=True)
class Index:
    """An index whose monthly contracts are generated; its number (0 or 1) is part of the tokens (keep it)."""

    number: int
    name: str
    strike_step: int


INDICES: tuple[Index, ...] = (Index(0, "NIFTY", 50), Index(1, "BANKNIFTY", 100))


def contract_token(index: Index, expiry: date, kind: str, strike: int = 0) -> tuple[int, int]:
    """(instrument_token, exchange_token) of a generated contract; the same on every instance."""
    months = (expiry.year - _FIRST_YEAR) * 12 + expiry.month - 1
    steps = strike // index.strike_step
    if not (0 <= months < 256 and 0 <= steps < 2048 and 0 <= index.number < 2):
        raise ValueError(f"contract outside the token space: {index.name} {expiry} {kind} {strike}")
    exchange_token = _GENERATED | index.number << 21 | months << 13 | KINDS.index(kind) << 11 | steps
    return exchange_token << 8 | SEGMENT_NFO, exchange_token


def symbol(index: Index, expiry: date, kind: str, strike: int = 0) -> str:
    """Kite's monthly symbols: `NIFTY26DECFUT`, `NIFTY26DEC19550CE`."""
    head = f"{index.name}{expiry.year % 100:02d}{MONTHS[expiry.month - 1]}"
    return f"{head}FUT" if kind == "FUT" else f"{head}{strike}{kind}"


def _tick_round(value: float, tick: Decimal) -> Decimal:
    return (Decimal(repr(value)) / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


def option_price(reference: Decimal, strike: int, kind: str, tick: Decimal) -> Decimal:
    """A plausible premium fixed by the contract: intrinsic value plus a time value that falls off
    away from the money (the price model then moves it within 0.2 %)."""
    ref = float(reference)
    intrinsic = max(0.0, ref - strike) if kind == "CE" else max(0.0, strike - ref)
    time_value = ref * 0.006 * math.exp(-(((strike - ref) / (0.03 * ref)) ** 2)) + 1.0
    return max(tick, _tick_round(intrinsic + time_value, tick))


def _template(base: Iterable[Instrument], index: Index) -> Instrument | None:
    """The listed future an index's generated contracts take their price, lot and tick from: the
    first of its futures in the list (for the shipped list the spec's NIFTY25NOVFUT, 19550)."""
    return next((i for i in base if i.name == index.name and i.instrument_type == "FUT"), None)


def generated_contracts(base: InstrumentBook, on: date, holidays: Holidays) -> list[Instrument]:
    out: list[Instrument] = []
    for index in INDICES:
        template = _template(base, index)
        if template is None:
            continue
        reference = template.last_price
        atm = int((reference / index.strike_step).to_integral_value(rounding=ROUND_HALF_EVEN)) * index.strike_step
        strikes = [atm + k * index.strike_step for k in range(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1)]
        for expiry in monthly_expiries(on, CONTRACTS, holidays):
            legs: list[tuple[str, int, Decimal]] = [("FUT", 0, reference)]
            for strike in strikes:
                legs += [
                    (kind, strike, option_price(reference, strike, kind, template.tick_size)) for kind in ("CE", "PE")
                ]
            for kind, strike, price in legs:
                token, exchange_token = contract_token(index, expiry, kind, strike)
                out.append(
                    Instrument(
                        instrument_token=token,
                        exchange_token=exchange_token,
                        tradingsymbol=symbol(index, expiry, kind, strike),
                        name=index.name,
                        last_price=price,
                        expiry=expiry,
                        strike=Decimal(strike),
                        tick_size=template.tick_size,
                        lot_size=template.lot_size,
                        instrument_type=kind,
                        segment="NFO-FUT" if kind == "FUT" else "NFO-OPT",
                        exchange="NFO",
                    )
                )
    return out


def paper_instruments(base: InstrumentBook, on: date, holidays: Holidays) -> list[Instrument]:
    """The list on day `on`: every listed instrument, then the generated contracts the list lacks
    (a listed contract keeps its own row and token)."""
    listed = list(base)
    keys = {i.key for i in listed}
    return listed + [i for i in generated_contracts(base, on, holidays) if i.key not in keys]


class RollingInstrumentBook(InstrumentBook):
    """The paper list as an `InstrumentBook` (intake checks and the paper broker read it) that rolls
    to a new day's contracts when `roll` is called with a new date (the runtime does, every minute).

    Rolling swaps the book's dictionaries in one step, between two awaits, so a reader never sees a
    half-built list.
    """

    def __init__(self, base: InstrumentBook, on: date, holidays: Holidays) -> None:
        self.base = base
        self.holidays = holidays
        self.day: date | None = None
        super().__init__([])
        self.roll(on)

    def roll(self, on: date) -> bool:
        """Build the list of `on` unless it is already the current one; True when it changed."""
        if on == self.day:
            return False
        InstrumentBook.__init__(self, paper_instruments(self.base, on, self.holidays))
        self.day = on
        return True
