"""Paper candles: the paper broker's price model (its `prices` module) read candle by candle.

The model is a pure function of (seed, instrument, time), so a candle is too: every instance and
every request gives the same candle, and nothing needs storing. Open and close are the model's
prices at the candle's first and last quarter-second; high and low the extremes of the model sampled
at evenly spaced moments in between (the model changes every quarter second: reading every one of
them for a year of minute candles would take minutes). A candle still forming is read up to now,
and no candle starts in the future.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from ticker_service.brokers.base import PriceModel
from ticker_service.instruments import Instrument
from ticker_service.marketdata.history.candles import Candle
from ticker_service.marketdata.history.intervals import Interval, periods

INNER_SAMPLES = 6
RESOLUTION = 0.25  # seconds: the model's price is constant within a quarter second (prices.RESOLUTION)


DERIVATIVES = frozenset({"FUT", "CE", "PE"})


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _sample_times(opens: float, closes: float) -> list[float]:
    last = max(opens, closes - RESOLUTION)
    step = (last - opens) / (INNER_SAMPLES + 1)
    return [opens + k * step for k in range(INNER_SAMPLES + 2)]


def paper_candle(
    instrument: Instrument, label: datetime, opens: datetime, closes: datetime, model: PriceModel
) -> Candle:
    times = _sample_times(opens.timestamp(), closes.timestamp())
    prices = [float(model.model_price(instrument, t)) for t in times]
    minutes = max(1.0, (closes - opens).total_seconds() / 60)
    token = instrument.instrument_token
    start = int(opens.timestamp())
    volume = int(minutes * (100 + 900 * _unit("volume", token, start)))
    oi = int(100_000 + 50_000 * _unit("oi", token, start)) if instrument.instrument_type in DERIVATIVES else 0
    return Candle(label, prices[0], max(prices), min(prices), prices[-1], volume, oi)


def paper_candles(
    instrument: Instrument, interval: Interval, start: datetime, end: datetime, model: PriceModel, now: datetime
) -> list[Candle]:
    """The candles labelled in [start, end) that have begun by `now`."""
    out: list[Candle] = []
    for period in periods(interval, start, min(end, now)):
        if period.opens > now:
            break
        out.append(paper_candle(instrument, period.label, period.opens, min(period.closes, now), model))
    return out
