"""Ticks of a paper account: the paper broker's own price model, sampled at a configurable rate.

The last price is the paper broker's `model_price` (`PriceModel`), the price it fills at in the same
instant, so a strategy sees the prices it trades at. The rest of a tick is made up but consistent:
close is the instrument's reference price (the model moves around it), open is the model's price at
the start of the day in Asia/Kolkata, high and low follow what this feed has sent, volume grows with
time, and the depth is the broker's visible book when it has one (`DepthModel`: the book the paper
exchange's MARKET orders fill against), else levels a tick apart on either side. An index carries
Kite's index packet (no quantities, no depth). Newly wanted instruments get a tick at once (the subscriber's snapshot).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal

from ticker_service.brokers.base import DepthModel, PriceModel
from ticker_service.instruments import Instrument, InstrumentBook
from ticker_service.marketdata.packets import INDICES, Depth, DepthEntry, Mode, Ohlc, Tick
from ticker_service.marketdata.ticks.wire import pack_tick
from ticker_service.timeutil import IST

_LEVELS = 5


class PaperTickFeed:
    def __init__(
        self,
        instruments: InstrumentBook,
        *,
        model: PriceModel,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.instruments = instruments
        self.model = model
        self.interval = interval
        self.clock = clock
        self._desired: dict[int, Mode] = {}
        self._fresh: set[int] = set()
        self._wake = asyncio.Event()
        self._range: dict[int, tuple[float, float]] = {}  # token -> (high, low) sent so far
        self._closed = False

    @property
    def subscriptions(self) -> dict[int, Mode]:
        return dict(self._desired)

    async def apply(self, desired: dict[int, Mode]) -> None:
        known = {t: m for t, m in desired.items() if self.instruments.by_token(t) is not None}
        self._fresh |= {t for t, m in known.items() if self._desired.get(t) != m}
        self._desired = known
        if self._fresh:
            self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def ticks(self) -> AsyncIterator[list[bytes]]:
        """Every wanted instrument each `interval`, on the interval's grid; new ones at once."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._closed:
            now = loop.time()
            if now >= next_at:
                tokens = list(self._desired)
                next_at = now + self.interval - (now - next_at) % self.interval
            else:
                tokens = [t for t in self._fresh if t in self._desired]
            self._fresh.clear()
            batch = [pack_tick(self.tick(t, self._desired[t])) for t in tokens]
            if batch:
                yield batch
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.0, next_at - loop.time())):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def tick(self, token: int, mode: Mode) -> Tick:
        instrument = self.instruments.by_token(token)
        assert instrument is not None
        t = self.clock()
        price = float(self.model.model_price(instrument, t))
        stamp = datetime.fromtimestamp(int(t), IST)
        day_start = stamp.replace(hour=9, minute=15, second=0)
        if day_start > stamp:
            day_start = day_start.replace(hour=0, minute=0)
        open_ = float(self.model.model_price(instrument, day_start.timestamp()))
        high, low = self._range.get(token, (max(open_, price), min(open_, price)))
        high, low = max(high, price), min(low, price)
        self._range[token] = (high, low)
        close = float(instrument.last_price)
        ohlc = Ohlc(open=open_, high=high, low=low, close=close)
        change = price - close if close else 0.0
        if mode == "ltp":
            return Tick(mode="ltp", tradable=token & 0xFF != INDICES, instrument_token=token, last_price=price)
        if token & 0xFF == INDICES:
            return Tick(
                mode=mode,
                tradable=False,
                instrument_token=token,
                last_price=price,
                ohlc=ohlc,
                change=change,
                exchange_timestamp=stamp if mode == "full" else None,
            )
        elapsed = max(0, int(t - day_start.timestamp()))
        size = 1 + token % 97
        quote = {
            "tradable": True,
            "instrument_token": token,
            "last_price": price,
            "last_quantity": size,
            "average_price": round((open_ + price) / 2, 2),
            "volume": elapsed * size,
            "buy_quantity": 1000 * size + elapsed % 1000,
            "sell_quantity": 1000 * size + (elapsed * 7) % 1000,
            "ohlc": ohlc,
            "change": change,
        }
        if mode == "quote":
            return Tick(mode="quote", **quote)  # type: ignore[arg-type]
        return Tick(
            mode="full",
            last_trade_time=stamp,
            oi=0,
            oi_day_high=0,
            oi_day_low=0,
            exchange_timestamp=stamp,
            depth=self.model.model_depth(instrument, t)
            if isinstance(self.model, DepthModel)
            else _depth(instrument, Decimal(repr(price)), size),
            **quote,  # type: ignore[arg-type]
        )


def _depth(instrument: Instrument, price: Decimal, size: int) -> Depth:
    step = instrument.tick_size
    buy = tuple(
        DepthEntry(price=float(price - step * (i + 1)), quantity=size * (i + 1), orders=i + 1) for i in range(_LEVELS)
    )
    sell = tuple(
        DepthEntry(price=float(price + step * (i + 1)), quantity=size * (i + 1), orders=i + 1) for i in range(_LEVELS)
    )
    return Depth(buy=buy, sell=sell)
