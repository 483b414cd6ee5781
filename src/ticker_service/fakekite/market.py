"""The fake's market: one price per instrument, moving deterministically, and everything derived from it.

Prices start at each instrument's previous close and take one step per `advance()`: a move of a few
ticks drawn from a generator seeded by (token, step), so two runs see the same path. A price a test
sets is held (no automatic moves) until released, so an order test is never raced by the model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ticker_service.fakekite.instruments import FakeInstrument, InstrumentTable
from ticker_service.fakekite.packets import DEPTH_LEVELS, DepthLevel, Tick
from ticker_service.fakekite.timefmt import kite_timestamp, now_ist

CIRCUIT = Decimal("0.10")  # the fake's circuit band around the previous close
_MOVES = (-2, -1, -1, 0, 1, 1, 2)


def round_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return ((price / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP) * tick).normalize()


@dataclass
class InstrumentState:
    instrument: FakeInstrument
    last_price: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    last_trade_time: datetime
    timestamp: datetime
    volume: int = 0
    turnover: Decimal = Decimal(0)
    last_quantity: int = 0
    buy_quantity: int = 0
    sell_quantity: int = 0
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    step: int = 0
    held: bool = False
    buy_depth: tuple[DepthLevel, ...] = field(default_factory=tuple)
    sell_depth: tuple[DepthLevel, ...] = field(default_factory=tuple)

    @property
    def average_price(self) -> Decimal:
        if not self.volume:
            return self.last_price
        return (self.turnover / self.volume).quantize(Decimal("0.01"))

    @property
    def lower_circuit(self) -> Decimal:
        return round_to_tick(self.close * (1 - CIRCUIT), self.instrument.price_step)

    @property
    def upper_circuit(self) -> Decimal:
        return round_to_tick(self.close * (1 + CIRCUIT), self.instrument.price_step)


class Market:
    """Prices and the quote fields around them, for REST quotes, ticks and order matching."""

    def __init__(self, instruments: InstrumentTable) -> None:
        self.instruments = instruments
        self._states: dict[int, InstrumentState] = {}
        for instrument in instruments:
            self.add(instrument)

    def add(self, instrument: FakeInstrument) -> None:
        now = now_ist()
        price = instrument.price
        state = InstrumentState(
            instrument=instrument,
            last_price=price,
            open=price,
            high=price,
            low=price,
            close=price,
            last_trade_time=now,
            timestamp=now,
            oi=1_000_000 if instrument.is_derivative else 0,
        )
        state.oi_day_high = state.oi_day_low = state.oi
        self._refresh_book(state)
        self._states[instrument.instrument_token] = state

    def state(self, token: int) -> InstrumentState:
        return self._states[token]

    def price(self, token: int) -> Decimal:
        return self._states[token].last_price

    def set_price(self, token: int, price: Decimal, *, hold: bool = True) -> bool:
        """Move an instrument to `price` (a trade there); True when the price changed."""
        state = self._states[token]
        state.held = hold
        changed = price != state.last_price
        self._trade(state, price, state.last_quantity or max(1, state.instrument.lot_size))
        return changed

    def release(self, token: int) -> None:
        self._states[token].held = False

    def advance(self) -> list[int]:
        """One step of every instrument not held by a test; the tokens whose price changed."""
        changed: list[int] = []
        for token, state in self._states.items():
            if state.held:
                continue
            state.step += 1
            rng = random.Random(f"{token}:{state.step}")
            step = state.instrument.price_step
            target = state.last_price + step * rng.choice(_MOVES)
            target = min(max(target, state.lower_circuit), state.upper_circuit)
            lot = max(1, state.instrument.lot_size)
            quantity = lot * rng.randint(1, 20)
            if target != state.last_price:
                self._trade(state, target, quantity)
                if state.instrument.is_derivative:
                    state.oi += rng.randint(-5, 5) * lot
                    state.oi_day_high = max(state.oi_day_high, state.oi)
                    state.oi_day_low = min(state.oi_day_low, state.oi)
                changed.append(token)
        return changed

    def record_fill(self, token: int, price: Decimal, quantity: int) -> None:
        """An order of the fake filled: the exchange's volume counts it (the price is left as is)."""
        state = self._states[token]
        state.volume += quantity
        state.turnover += price * quantity
        state.last_quantity = quantity

    def _trade(self, state: InstrumentState, price: Decimal, quantity: int) -> None:
        now = now_ist()
        state.last_price = price
        state.high = max(state.high, price)
        state.low = min(state.low, price)
        state.volume += quantity
        state.turnover += price * quantity
        state.last_quantity = quantity
        state.last_trade_time = now
        state.timestamp = now
        self._refresh_book(state)

    def _refresh_book(self, state: InstrumentState) -> None:
        if state.instrument.is_index:
            return
        rng = random.Random(f"depth:{state.instrument.instrument_token}:{state.step}")
        step = state.instrument.price_step
        lot = max(1, state.instrument.lot_size)
        bids = tuple(
            DepthLevel(state.last_price - step * (i + 1), lot * rng.randint(1, 200), rng.randint(1, 9))
            for i in range(DEPTH_LEVELS)
        )
        asks = tuple(
            DepthLevel(state.last_price + step * i, lot * rng.randint(1, 200), rng.randint(1, 9))
            for i in range(DEPTH_LEVELS)
        )
        state.buy_depth, state.sell_depth = bids, asks
        state.buy_quantity = sum(level.quantity for level in bids) * 10
        state.sell_quantity = sum(level.quantity for level in asks) * 10

    # views

    def tick(self, token: int, mode: str) -> Tick:
        s = self._states[token]
        return Tick(
            instrument_token=token,
            mode=mode,
            last_price=s.last_price,
            last_quantity=s.last_quantity,
            average_price=s.average_price,
            volume=s.volume,
            buy_quantity=s.buy_quantity,
            sell_quantity=s.sell_quantity,
            open=s.open,
            high=s.high,
            low=s.low,
            close=s.close,
            last_trade_time=int(s.last_trade_time.timestamp()),
            oi=s.oi,
            oi_day_high=s.oi_day_high,
            oi_day_low=s.oi_day_low,
            timestamp=int(s.timestamp.timestamp()),
            buy_depth=s.buy_depth,
            sell_depth=s.sell_depth,
        )

    def ohlc(self, token: int) -> dict[str, float]:
        s = self._states[token]
        return {"open": float(s.open), "high": float(s.high), "low": float(s.low), "close": float(s.close)}

    def quote_json(self, token: int) -> dict[str, Any]:
        """One instrument as `GET /quote` shows it (`quote.json`)."""
        s = self._states[token]
        return {
            "instrument_token": token,
            "timestamp": kite_timestamp(s.timestamp),
            "last_trade_time": kite_timestamp(s.last_trade_time),
            "last_price": float(s.last_price),
            "last_quantity": s.last_quantity,
            "buy_quantity": s.buy_quantity,
            "sell_quantity": s.sell_quantity,
            "volume": s.volume,
            "average_price": float(s.average_price),
            "oi": s.oi,
            "oi_day_high": s.oi_day_high,
            "oi_day_low": s.oi_day_low,
            "net_change": 0,
            "lower_circuit_limit": float(s.lower_circuit),
            "upper_circuit_limit": float(s.upper_circuit),
            "ohlc": self.ohlc(token),
            "depth": {
                "buy": [_level_json(level) for level in _padded(s.buy_depth)],
                "sell": [_level_json(level) for level in _padded(s.sell_depth)],
            },
        }

    def ltp_json(self, token: int) -> dict[str, Any]:
        return {"instrument_token": token, "last_price": float(self.price(token))}

    def ohlc_json(self, token: int) -> dict[str, Any]:
        return {"instrument_token": token, "last_price": float(self.price(token)), "ohlc": self.ohlc(token)}


def _padded(levels: tuple[DepthLevel, ...]) -> list[DepthLevel]:
    return list(levels) + [DepthLevel(Decimal(0), 0, 0)] * (DEPTH_LEVELS - len(levels))


def _level_json(level: DepthLevel) -> dict[str, Any]:
    return {"price": float(level.price), "quantity": level.quantity, "orders": level.orders}
