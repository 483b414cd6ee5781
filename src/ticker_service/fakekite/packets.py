"""Kite's binary ticker format, packed by hand (no library packs it; the official clients only unpack).

A frame is a big-endian uint16 packet count, then per packet a uint16 length and the packet. Packet
lengths carry the mode: 8 LTP, 44 quote, 184 full (with five bid and five ask depth entries), and for
indices 28 quote and 32 full. Prices are integers: paise, except CDS (1e7) and BCD (1e4), chosen by
`instrument_token & 0xff`. Times are epoch seconds. Tests prove the packer against Kite's own frames.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ticker_service.fakekite.instruments import SEGMENT_BCD, SEGMENT_CDS, SEGMENT_INDICES

HEARTBEAT = b"\x00"  # Kite's 1-byte keep-alive frame
MODES = ("ltp", "quote", "full")
DEPTH_LEVELS = 5


@dataclass(frozen=True, slots=True)
class DepthLevel:
    price: Decimal
    quantity: int
    orders: int


@dataclass(frozen=True, slots=True)
class Tick:
    """One instrument's packet contents, in the units of the decoded JSON (rupees, epoch seconds)."""

    instrument_token: int
    mode: str
    last_price: Decimal
    last_quantity: int = 0
    average_price: Decimal = Decimal(0)
    volume: int = 0
    buy_quantity: int = 0
    sell_quantity: int = 0
    open: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    low: Decimal = Decimal(0)
    close: Decimal = Decimal(0)
    last_trade_time: int = 0
    oi: int = 0
    oi_day_high: int = 0
    oi_day_low: int = 0
    timestamp: int = 0
    buy_depth: tuple[DepthLevel, ...] = field(default_factory=tuple)
    sell_depth: tuple[DepthLevel, ...] = field(default_factory=tuple)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tick:
        """Read a tick in the shape of Kite's decoded samples (`ticker_*.json`)."""
        ohlc = data.get("ohlc") or {}
        depth = data.get("depth") or {}
        return cls(
            instrument_token=int(data["instrument_token"]),
            mode=str(data["mode"]),
            last_price=_dec(data["last_price"]),
            last_quantity=int(data.get("last_quantity", 0)),
            average_price=_dec(data.get("average_price", 0)),
            volume=int(data.get("volume", 0)),
            buy_quantity=int(data.get("buy_quantity", 0)),
            sell_quantity=int(data.get("sell_quantity", 0)),
            open=_dec(ohlc.get("open", 0)),
            high=_dec(ohlc.get("high", 0)),
            low=_dec(ohlc.get("low", 0)),
            close=_dec(ohlc.get("close", 0)),
            last_trade_time=_epoch(data.get("last_trade_time")),
            oi=int(data.get("oi", 0)),
            oi_day_high=int(data.get("oi_day_high", 0)),
            oi_day_low=int(data.get("oi_day_low", 0)),
            timestamp=_epoch(data.get("timestamp")),
            buy_depth=tuple(_level(d) for d in depth.get("buy", ())),
            sell_depth=tuple(_level(d) for d in depth.get("sell", ())),
        )


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _epoch(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(datetime.fromisoformat(str(value)).timestamp())


def _level(data: Mapping[str, Any]) -> DepthLevel:
    return DepthLevel(_dec(data["price"]), int(data["quantity"]), int(data["orders"]))


def price_divisor(instrument_token: int) -> int:
    segment = instrument_token & 0xFF
    if segment == SEGMENT_CDS:
        return 10_000_000
    if segment == SEGMENT_BCD:
        return 10_000
    return 100


def _units(price: Decimal, divisor: int) -> int:
    return int((price * divisor).to_integral_value())


def pack_packet(tick: Tick) -> bytes:
    """One packet, its length chosen by the mode and by whether the token is an index."""
    if tick.mode not in MODES:
        raise ValueError(f"unknown mode {tick.mode!r}")
    d = price_divisor(tick.instrument_token)
    ltp = _units(tick.last_price, d)
    if tick.mode == "ltp":
        return struct.pack(">II", tick.instrument_token, ltp)
    if tick.instrument_token & 0xFF == SEGMENT_INDICES:
        change = ltp - _units(tick.close, d)
        packet = struct.pack(
            ">IIIIIIi",
            tick.instrument_token,
            ltp,
            _units(tick.high, d),
            _units(tick.low, d),
            _units(tick.open, d),
            _units(tick.close, d),
            change,
        )
        return packet + struct.pack(">I", tick.timestamp) if tick.mode == "full" else packet
    packet = struct.pack(
        ">IIIIIIIIIII",
        tick.instrument_token,
        ltp,
        tick.last_quantity,
        _units(tick.average_price, d),
        tick.volume,
        tick.buy_quantity,
        tick.sell_quantity,
        _units(tick.open, d),
        _units(tick.high, d),
        _units(tick.low, d),
        _units(tick.close, d),
    )
    if tick.mode == "quote":
        return packet
    packet += struct.pack(">IIIII", tick.last_trade_time, tick.oi, tick.oi_day_high, tick.oi_day_low, tick.timestamp)
    for side in (tick.buy_depth, tick.sell_depth):
        levels = list(side[:DEPTH_LEVELS])
        levels += [DepthLevel(Decimal(0), 0, 0)] * (DEPTH_LEVELS - len(levels))
        for level in levels:
            packet += struct.pack(">IIHxx", level.quantity, _units(level.price, d), level.orders)
    return packet


def pack_frame(packets: Sequence[bytes]) -> bytes:
    """A binary message: the packet count, then each packet behind its length."""
    parts = [struct.pack(">H", len(packets))]
    for packet in packets:
        parts.append(struct.pack(">H", len(packet)))
        parts.append(packet)
    return b"".join(parts)
