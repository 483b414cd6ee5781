"""Deterministic paper prices: a pure function of (seed, instrument, time).

Every process computes the same price for the same instant without talking to the others, which is
what lets several instances and the matcher agree on fills. The price stays within 0.2 % of the
instrument's reference price, so the spec's examples (a LIMIT buy at 19500 and a sell at 19600
around a NIFTY of 19550) rest OPEN whatever the hour.
"""

from __future__ import annotations

import hashlib
import math
from decimal import ROUND_HALF_EVEN, Decimal

from ticker_service.instruments import Instrument

RESOLUTION = 0.25  # seconds: the price is constant within a quarter-second bucket
MAX_DEVIATION = 0.002
_SLOW = (0.0011, 53.0)
_FAST = (0.0006, 17.0)
_NOISE = 0.0002


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def deviation(seed: int, token: int, t: float) -> float:
    """Relative deviation from the reference price at time `t` (seconds since the epoch)."""
    bucket = math.floor(t / RESOLUTION)
    tb = bucket * RESOLUTION
    phase_slow = 2 * math.pi * _unit("slow", seed, token)
    phase_fast = 2 * math.pi * _unit("fast", seed, token)
    noise = 2 * _unit("noise", seed, token, bucket) - 1
    return (
        _SLOW[0] * math.sin(2 * math.pi * tb / _SLOW[1] + phase_slow)
        + _FAST[0] * math.sin(2 * math.pi * tb / _FAST[1] + phase_fast)
        + _NOISE * noise
    )


def round_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    return (value / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


def price_at(instrument: Instrument, t: float, seed: int = 0) -> Decimal:
    raw = instrument.last_price * Decimal(repr(1.0 + deviation(seed, instrument.instrument_token, t)))
    return round_to_tick(raw, instrument.tick_size)
