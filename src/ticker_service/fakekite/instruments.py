"""The fake's instruments: a small built-in list in Kite's instrument-CSV shape, one per segment kind.

Kept apart from the service's own instrument data so that the fake (shipped for users' strategy tests)
does not change when the service's list does. Every segment the ticker prices differently (paise,
CDS's 1e7, BCD's 1e4, indices' short packets) has an instrument, so each packing path is reachable.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

CSV_HEADER = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)

# `instrument_token & 0xff` (KITE.md)
SEGMENT_CDS = 3
SEGMENT_BCD = 6
SEGMENT_INDICES = 9


@dataclass(frozen=True, slots=True)
class FakeInstrument:
    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    price: Decimal  # the previous close, where the day's prices start
    expiry: date | None
    strike: Decimal
    tick_size: Decimal
    lot_size: int
    instrument_type: str
    segment: str
    exchange: str
    isin: str = ""

    @property
    def key(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"

    @property
    def segment_code(self) -> int:
        return self.instrument_token & 0xFF

    @property
    def is_index(self) -> bool:
        return self.segment_code == SEGMENT_INDICES

    @property
    def price_step(self) -> Decimal:
        """The tick the price model moves by (indices list a tick size of 0)."""
        return self.tick_size if self.tick_size > 0 else Decimal("0.05")

    @property
    def is_derivative(self) -> bool:
        return self.instrument_type in ("FUT", "CE", "PE")


def _eq(
    token: int, exch_token: int, symbol: str, name: str, price: str, isin: str, exchange: str = "NSE"
) -> FakeInstrument:
    return FakeInstrument(
        token,
        exch_token,
        symbol,
        name,
        Decimal(price),
        None,
        Decimal(0),
        Decimal("0.05"),
        1,
        "EQ",
        exchange,
        exchange,
        isin,
    )


def _fut(
    token: int, exch_token: int, symbol: str, name: str, price: str, expiry: str, lot: int, exchange: str, tick: str
) -> FakeInstrument:
    return FakeInstrument(
        token,
        exch_token,
        symbol,
        name,
        Decimal(price),
        date.fromisoformat(expiry),
        Decimal(0),
        Decimal(tick),
        lot,
        "FUT",
        f"{exchange}-FUT",
        exchange,
    )


def _index(token: int, exch_token: int, symbol: str, price: str) -> FakeInstrument:
    return FakeInstrument(
        token, exch_token, symbol, symbol, Decimal(price), None, Decimal(0), Decimal(0), 0, "EQ", "INDICES", "NSE"
    )


BUILTIN_INSTRUMENTS: tuple[FakeInstrument, ...] = (
    _eq(408065, 1594, "INFY", "INFOSYS", "1500.25", "INE009A01021"),
    _eq(779521, 3045, "SBIN", "STATE BANK OF INDIA", "962.15", "INE062A01020"),
    _eq(738561, 2885, "RELIANCE", "RELIANCE INDUSTRIES", "1520.40", "INE002A01018"),
    _eq(2953217, 11536, "TCS", "TATA CONSULTANCY SERV LT", "3150.60", "INE467B01029"),
    _eq(128028676, 500112, "SBIN", "STATE BANK OF INDIA", "962.20", "INE062A01020", exchange="BSE"),
    _fut(12602626, 49229, "NIFTY25NOVFUT", "NIFTY", "19550", "2025-11-25", 50, "NFO", "0.05"),
    _fut(12601346, 49224, "BANKNIFTY25NOVFUT", "BANKNIFTY", "45500", "2025-11-25", 25, "NFO", "0.05"),
    _fut(412675, 1612, "USDINR25NOVFUT", "USDINR", "83.2525", "2025-11-26", 1, "CDS", "0.0025"),
    _fut(1002246, 3915, "USDINR25NOVFUT", "USDINR", "83.2600", "2025-11-26", 1, "BCD", "0.0025"),
    _fut(58424839, 228222, "GOLDPETAL25NOVFUT", "GOLDPETAL", "7250", "2025-11-28", 1, "MCX", "1"),
    _index(256265, 1001, "NIFTY 50", "19500"),
    _index(260105, 1016, "NIFTY BANK", "45400"),
)


def bench_equities(count: int) -> tuple[FakeInstrument, ...]:
    """`count` made-up NSE equities (`NSE:BENCH0001`, ...), for benchmarks that need many instruments.

    Exchange tokens start at 900001, above every built-in one, so their instrument tokens never clash.
    """
    return tuple(
        _eq((900_000 + i) << 8 | 1, 900_000 + i, f"BENCH{i:04d}", f"BENCH EQUITY {i}", f"{100 + i}.05", "")
        for i in range(1, count + 1)
    )


class InstrumentTable:
    """Instruments by `EXCHANGE:SYMBOL` and by token; the order book and the market read both."""

    def __init__(self, instruments: Iterable[FakeInstrument]) -> None:
        self._by_key: dict[str, FakeInstrument] = {}
        self._by_token: dict[int, FakeInstrument] = {}
        for instrument in instruments:
            self.add(instrument)

    def add(self, instrument: FakeInstrument) -> None:
        self._by_key[instrument.key] = instrument
        self._by_token[instrument.instrument_token] = instrument

    def get(self, exchange: str, tradingsymbol: str) -> FakeInstrument | None:
        return self._by_key.get(f"{exchange}:{tradingsymbol}")

    def by_token(self, token: int) -> FakeInstrument | None:
        return self._by_token.get(token)

    def lookup(self, name: str) -> FakeInstrument | None:
        """`NSE:INFY` or a bare instrument token, the two forms the quote APIs accept in `i`."""
        if name.isdigit():
            return self._by_token.get(int(name))
        return self._by_key.get(name)

    def __iter__(self) -> Iterator[FakeInstrument]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)


def render_csv(instruments: Iterable[FakeInstrument]) -> str:
    """The instrument dump as `GET /instruments` serves it (header as Kite's)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for i in instruments:
        writer.writerow(
            (
                i.instrument_token,
                i.exchange_token,
                i.tradingsymbol,
                i.name,
                str(i.price),
                i.expiry.isoformat() if i.expiry else "",
                f"{i.strike:.1f}",
                str(i.tick_size.normalize()) if i.tick_size else "0.0",
                i.lot_size,
                i.instrument_type,
                i.segment,
                i.exchange,
            )
        )
    return out.getvalue()
