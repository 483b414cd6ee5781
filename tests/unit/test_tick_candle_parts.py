"""The pure parts of candles from ticks: the builder's minute bars, the interval grid, aggregation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from ticker_service.marketdata.history.candles import Candle, aggregate
from ticker_service.marketdata.history.intervals import INTERVALS, label_of, period_end
from ticker_service.marketdata.packets import Tick
from ticker_service.marketdata.ticks.candles import TickCandleBuilder
from ticker_service.timeutil import IST

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=IST).timestamp()


def tick(price: float, volume: int | None = None, oi: int | None = None) -> Tick:
    return Tick(mode="quote", tradable=True, instrument_token=1, last_price=price, volume=volume, oi=oi)


def test_a_minute_bar_takes_every_tick_and_volume_counts_from_the_last_tick_before_it() -> None:
    builder = TickCandleBuilder(cast("Any", None), "a")
    builder.add([tick(10, 100), tick(12, 110)], T0 + 5)
    builder.add([tick(9, 130)], T0 + 30)
    builder.add([tick(11, 150, oi=7)], T0 + 59)
    first = builder.take()
    [(key, bar)] = first.items()
    assert key == (1, datetime(2026, 11, 23, 10, 0, tzinfo=IST))
    assert (bar.open, bar.high, bar.low, bar.close) == (10, 12, 9, 11)
    assert (bar.volume_from, bar.volume_to, bar.oi) == (100, 150, 7)
    assert builder.take() == {}  # nothing changed since
    builder.add([tick(11.5, 170)], T0 + 61)
    [(key, bar)] = builder.take().items()
    assert key[1].minute == 1 and (bar.open, bar.volume_from, bar.volume_to) == (11.5, 150, 170)


def test_the_grid_follows_the_session_and_goes_on_past_the_close() -> None:
    five, hour, day = INTERVALS["5minute"], INTERVALS["60minute"], INTERVALS["day"]
    at = datetime(2026, 11, 23, 15, 17, 30, tzinfo=IST)
    assert label_of(five, at) == datetime(2026, 11, 23, 15, 15, tzinfo=IST)
    assert label_of(hour, at) == datetime(2026, 11, 23, 15, 15, tzinfo=IST)
    assert period_end(hour, label_of(hour, at)) == datetime(2026, 11, 23, 15, 30, tzinfo=IST)
    late = datetime(2026, 11, 23, 16, 40, tzinfo=IST)
    assert label_of(hour, late) == datetime(2026, 11, 23, 16, 30, tzinfo=IST)  # not folded into 15:15
    assert label_of(day, late) == datetime(2026, 11, 23, tzinfo=IST)


def test_aggregation_is_first_open_extremes_last_close_summed_volume() -> None:
    minutes = [
        Candle(datetime(2026, 11, 23, 9, m, tzinfo=IST), 10 + m, 20 + m, 5 + m, 11 + m, 100, None if m else 3)
        for m in range(15, 22)
    ]
    five = INTERVALS["5minute"]
    out = aggregate(minutes, lambda d: label_of(five, d))
    assert [c.date.minute for c in out] == [15, 20]
    assert out[0] == Candle(minutes[0].date, 25, 39, 20, 30, 500, None)
    assert (out[1].open, out[1].close, out[1].volume) == (30, 32, 200)
