"""Kite's binary tick packets, packed from a parsed `Tick`, and cut down to a lower mode.

`marketdata.packets` only reads packets; this is its inverse, so that ticks from any feed (Kite's,
which arrive parsed, and the paper model's) travel and reach `/ws/kite` in exactly Kite's layout.
Kite's layout puts the fields of each mode in front of the next mode's, so a quote packet is the
first 44 bytes of a full one and an LTP packet the first 8 of any: downgrading is a slice.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Final

from ticker_service.marketdata.packets import (
    DEPTH_LEVELS,
    FULL_SIZE,
    INDEX_FULL_SIZE,
    INDEX_QUOTE_SIZE,
    LTP_SIZE,
    QUOTE_SIZE,
    DepthEntry,
    Mode,
    Tick,
    price_divisor,
)

HEARTBEAT: Final = b"\x00"  # Kite's 1-byte keep-alive frame
MODE_RANK: Final[dict[str, int]] = {"ltp": 0, "quote": 1, "full": 2}

_U16 = struct.Struct(">H")
_LTP = struct.Struct(">Ii")
_INDEX_QUOTE = struct.Struct(">Iiiiiii")
_INDEX_TIMESTAMP = struct.Struct(">I")
_QUOTE = struct.Struct(">IiIiIIIiiii")
_FULL_EXTRA = struct.Struct(">IIIII")
_DEPTH_ENTRY = struct.Struct(">IiH2x")
_EMPTY_DEPTH = DepthEntry(price=0.0, quantity=0, orders=0)


def _units(price: float, divisor: float) -> int:
    return round(price * divisor)


def _epoch(value: datetime | None) -> int:
    return int(value.timestamp()) if value is not None else 0


def pack_tick(tick: Tick) -> bytes:
    """The packet Kite would send for this tick in its mode (an index's layout when it has no volume)."""
    token = tick.instrument_token
    divisor = price_divisor(token)
    last = _units(tick.last_price, divisor)
    if tick.mode == "ltp" or tick.ohlc is None:
        return _LTP.pack(token, last)
    ohlc = tick.ohlc
    open_, high, low, close = (_units(p, divisor) for p in (ohlc.open, ohlc.high, ohlc.low, ohlc.close))
    if tick.volume is None:  # an index: no quantities, Kite's own change field, a timestamp in full
        packet = _INDEX_QUOTE.pack(token, last, high, low, open_, close, last - close if close else 0)
        if tick.mode == "full":
            packet += _INDEX_TIMESTAMP.pack(_epoch(tick.exchange_timestamp))
        return packet
    packet = _QUOTE.pack(
        token,
        last,
        tick.last_quantity or 0,
        _units(tick.average_price or 0.0, divisor),
        tick.volume,
        tick.buy_quantity or 0,
        tick.sell_quantity or 0,
        open_,
        high,
        low,
        close,
    )
    if tick.mode != "full":
        return packet
    parts = [
        packet,
        _FULL_EXTRA.pack(
            _epoch(tick.last_trade_time),
            tick.oi or 0,
            tick.oi_day_high or 0,
            tick.oi_day_low or 0,
            _epoch(tick.exchange_timestamp),
        ),
    ]
    depth = tick.depth
    for side in (depth.buy if depth else (), depth.sell if depth else ()):
        levels = list(side[:DEPTH_LEVELS]) + [_EMPTY_DEPTH] * (DEPTH_LEVELS - len(side[:DEPTH_LEVELS]))
        parts.extend(_DEPTH_ENTRY.pack(e.quantity, _units(e.price, divisor), e.orders) for e in levels)
    return b"".join(parts)


def packet_mode(packet: bytes) -> Mode:
    size = len(packet)
    if size in (FULL_SIZE, INDEX_FULL_SIZE):
        return "full"
    if size in (QUOTE_SIZE, INDEX_QUOTE_SIZE):
        return "quote"
    return "ltp"


def at_mode(packet: bytes, mode: Mode) -> bytes:
    """The packet as a subscriber in `mode` gets it: cut down when it carries more, as is otherwise."""
    size = len(packet)
    if mode == "ltp":
        return packet[:LTP_SIZE] if size > LTP_SIZE else packet
    if mode == "quote":
        if size == FULL_SIZE:
            return packet[:QUOTE_SIZE]
        if size == INDEX_FULL_SIZE:
            return packet[:INDEX_QUOTE_SIZE]
    return packet


def pack_frame(packets: Sequence[bytes]) -> bytes:
    """One binary message: the packet count, then each packet behind its length (at most 65,535)."""
    parts = [_U16.pack(len(packets))]
    for packet in packets:
        parts.append(_U16.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)


def frames(packets: Iterable[bytes], max_bytes: int) -> list[bytes]:
    """The packets packed into as few frames as keep each under `max_bytes` (one packet always fits)."""
    out: list[bytes] = []
    batch: list[bytes] = []
    size = _U16.size
    for packet in packets:
        cost = _U16.size + len(packet)
        if batch and (size + cost > max_bytes or len(batch) == 65_535):
            out.append(pack_frame(batch))
            batch, size = [], _U16.size
        batch.append(packet)
        size += cost
    if batch:
        out.append(pack_frame(batch))
    return out


def highest(a: Mode, b: Mode) -> Mode:
    return a if MODE_RANK[a] >= MODE_RANK[b] else b
