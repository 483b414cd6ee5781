"""Kite's REST quote shapes (`GET /quote`, `GET /quote/ltp`) from a tick.

A full tick carries everything Kite's quote answers but the circuit limits, which the caller gives
when it knows them (the paper exchange's bands) and which are 0 otherwise. Timestamps are IST
without a zone, as Kite writes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ticker_service.marketdata.packets import DepthEntry, Tick
from ticker_service.timeutil import IST

KITE_TIME = "%Y-%m-%d %H:%M:%S"
_EMPTY_LEVEL = {"price": 0, "quantity": 0, "orders": 0}


def _kite_time(value: datetime | None) -> str | None:
    return value.astimezone(IST).strftime(KITE_TIME) if value is not None else None


def _levels(entries: tuple[DepthEntry, ...] | None) -> list[dict[str, Any]]:
    levels = [{"price": e.price, "quantity": e.quantity, "orders": e.orders} for e in entries or ()]
    return (levels + [dict(_EMPTY_LEVEL) for _ in range(5)])[:5]


def quote_from_tick(tick: Tick, circuit: tuple[float, float] | None = None) -> dict[str, Any]:
    """One instrument of Kite's `GET /quote` answer."""
    ohlc = tick.ohlc
    close = ohlc.close if ohlc else 0.0
    lower, upper = circuit or (0.0, 0.0)
    return {
        "instrument_token": tick.instrument_token,
        "timestamp": _kite_time(tick.exchange_timestamp),
        "last_trade_time": _kite_time(tick.last_trade_time),
        "last_price": tick.last_price,
        "last_quantity": tick.last_quantity or 0,
        "buy_quantity": tick.buy_quantity or 0,
        "sell_quantity": tick.sell_quantity or 0,
        "volume": tick.volume or 0,
        "average_price": tick.average_price or 0.0,
        "oi": tick.oi or 0,
        "oi_day_high": tick.oi_day_high or 0,
        "oi_day_low": tick.oi_day_low or 0,
        "net_change": round(tick.last_price - close, 4) if close else 0,
        "lower_circuit_limit": lower,
        "upper_circuit_limit": upper,
        "ohlc": {
            "open": ohlc.open if ohlc else 0.0,
            "high": ohlc.high if ohlc else 0.0,
            "low": ohlc.low if ohlc else 0.0,
            "close": close,
        },
        "depth": {
            "buy": _levels(tick.depth.buy if tick.depth else None),
            "sell": _levels(tick.depth.sell if tick.depth else None),
        },
    }


def ltp_from_tick(tick: Tick) -> dict[str, Any]:
    """One instrument of Kite's `GET /quote/ltp` answer."""
    return {"instrument_token": tick.instrument_token, "last_price": tick.last_price}
