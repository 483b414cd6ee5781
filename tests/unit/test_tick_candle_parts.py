"""The pure parts of candles from ticks: the builder's minute bars, the interval grid, aggregation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from tests.kite_frames import full_packet, index_packet, ltp_packet, quote_packet
from ticker_service.marketdata.history.candles import Candle, aggregate
from ticker_service.marketdata.history.intervals import INTERVALS, label_of, period_end
from ticker_service.marketdata.ticks.candles import TickCandleBuilder
from ticker_service.timeutil import IST

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=IST).timestamp()
TOKEN = (1 << 8) | 1  # NSE: prices in paise
NIFTY = 256265  # an index: no volume


def tick(price: float, volume: int = 0, oi: int | None = None) -> bytes:
    paise = round(price * 100)
    if oi is None:
        return quote_packet(TOKEN, last=paise, volume=volume)
    return full_packet(TOKEN, last=paise, volume=volume, oi=oi)


def test_a_minute_bar_takes_every_tick_and_volume_counts_from_the_last_tick_before_it() -> None:
    builder = TickCandleBuilder(cast("Any", None), "a")
    builder.add([tick(10, 100), tick(12, 110)], T0 + 5)
    builder.add([tick(9, 130)], T0 + 30)
    builder.add([tick(11, 150, oi=7)], T0 + 59)
    [bar] = builder.take()
    assert (bar.instrument_token, bar.ts) == (TOKEN, datetime(2026, 11, 23, 10, 0, tzinfo=IST))
    assert (bar.open, bar.high, bar.low, bar.close) == (10, 12, 9, 11)
    assert (bar.volume_from, bar.volume_to, bar.oi) == (100, 150, 7)
    assert builder.take() == []  # nothing changed since
    builder.add([tick(11.5, 170)], T0 + 61)
    [bar] = builder.take()
    assert bar.ts.minute == 1 and (bar.open, bar.volume_from, bar.volume_to, bar.oi) == (11.5, 150, 170, None)


def test_a_bar_closed_before_the_take_is_written_beside_the_new_minute() -> None:
    builder = TickCandleBuilder(cast("Any", None), "a")
    builder.add([tick(10, 100)], T0 + 50)
    builder.add([tick(11, 120)], T0 + 65)
    bars = sorted(builder.take(), key=lambda b: b.minute)
    assert [(b.ts.minute, b.close, b.volume_from, b.volume_to) for b in bars] == [(0, 10, 100, 100), (1, 11, 100, 120)]


def test_ltp_and_index_ticks_carry_prices_and_no_volume_and_a_new_day_starts_volume_afresh() -> None:
    builder = TickCandleBuilder(cast("Any", None), "a")
    builder.add([ltp_packet(TOKEN, 1000), index_packet(NIFTY, last=2_450_000, high=0, low=0, open_=0, close=0)], T0)
    by_token = {b.instrument_token: b for b in builder.take()}
    assert (by_token[TOKEN].close, by_token[TOKEN].volume_from, by_token[TOKEN].volume_to) == (10.0, None, None)
    assert (by_token[NIFTY].close, by_token[NIFTY].volume_to, by_token[NIFTY].oi) == (24500.0, None, None)
    builder.add([tick(10, 5_000)], T0 + 120)
    builder.add([tick(10, 40)], T0 + 86_400)  # the next day: its first tick starts the count
    bar = max(builder.take(), key=lambda b: b.minute)
    assert (bar.volume_from, bar.volume_to) == (40, 40)


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
