"""The paper market's visible book: five levels a side around the model price, refreshed every second.

The best bid is a tick below the model's price and the best offer a tick above; each further level is
a tick further out. The size of each level is a deterministic function of (seed, instrument, second,
side, level), like the price itself, so every process (the matcher, the quote, the paper tick feed)
sees the same book at the same instant. Sizes are in lots for derivatives (10 to 49 lots a level) and
in shares for equities (100 to 499 a level).

A MARKET order walks this book: it takes the best level first, then the next, so the price it pays
grows with its quantity against the depth (the touch plus a spread). What the visible book cannot
fill waits for the next second's book, and fills in parts over the next ticks. Each order sees the
whole visible book (the paper exchange does not remember what other orders took from it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from ticker_service.brokers.paper.prices import _unit, price_at
from ticker_service.instruments import Instrument

LEVELS = 5
BOOK_SECONDS = 1.0  # the book is constant within a second: one "tick" of the depth


@dataclass(frozen=True, slots=True)
class Level:
    price: Decimal
    quantity: int
    orders: int


def book_bucket(t: float) -> int:
    return math.floor(t / BOOK_SECONDS)


def _size(instrument: Instrument, seed: int, bucket: int, side: str, level: int) -> tuple[int, int]:
    u = _unit("depth", seed, instrument.instrument_token, bucket, side, level)
    if instrument.exchange in ("NFO", "BFO", "CDS", "BCD", "MCX"):
        quantity = (10 + int(u * 40)) * max(instrument.lot_size, 1)
    else:
        quantity = 100 + int(u * 400)
    return quantity, 1 + int(u * 25)


def book(instrument: Instrument, seed: int, t: float) -> tuple[list[Level], list[Level]]:
    """(bids, offers) at `t`, best first."""
    price = price_at(instrument, t, seed)
    bucket = book_bucket(t)
    tick = instrument.tick_size
    bids, offers = [], []
    for i in range(LEVELS):
        quantity, orders = _size(instrument, seed, bucket, "buy", i)
        bids.append(Level(max(price - tick * (i + 1), tick), quantity, orders))
        quantity, orders = _size(instrument, seed, bucket, "sell", i)
        offers.append(Level(price + tick * (i + 1), quantity, orders))
    return bids, offers


def walk(levels: list[Level], quantity: int, lot: int = 1) -> list[tuple[Decimal, int]]:
    """The fills (price, quantity) of `quantity` taking these levels in turn, best first; whole lots."""
    fills = []
    left = quantity
    for level in levels:
        if left <= 0:
            break
        take = min(left, level.quantity - level.quantity % max(lot, 1))
        if take > 0:
            fills.append((level.price, take))
            left -= take
    return fills
