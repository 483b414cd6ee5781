"""Kite's binary ticker frames, parsed into typed ticks (KITE.md, "Ticker WebSocket").

A frame is a big-endian uint16 packet count, then per packet a uint16 length and the packet; a
1-byte frame is a heartbeat. The packet's size says its mode: 8 LTP, 28 index quote, 32 index full,
44 quote, 184 full. Anything else is refused with `MalformedFrameError` rather than guessed at: a
misread price is worse than a skipped frame, and the next tick of that instrument repairs it.

Field names and `to_dict()` follow Kite's documented tick shape (the official samples in
`kite-mocks/ticker_*.json`, which gokiteconnect's tests decode), not pykiteconnect's longer names
(`last_traded_quantity`, `volume_traded`, ...).

Two choices where Kite's clients disagree or say nothing:
- `change` is the net change `last_price - close`, as gokiteconnect computes it and as the official
  full-mode sample shows (5.900000000000091 = 1573.7 - 1567.8); pykiteconnect computes a percentage
  from the same two numbers, available here as `change_percent`. Both are 0 when close is 0.
- Prices are read as signed int32 (Kite's packet documentation says int32, and MCX crude traded
  below zero in April 2020); counts (quantities, volume, open interest) and timestamps as unsigned,
  as both official clients read them, since a heavily traded share's day volume can pass 2**31.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Any, Final, Literal

import msgspec

from ticker_service.timeutil import IST

Mode = Literal["ltp", "quote", "full"]
MODES: Final[frozenset[str]] = frozenset({"ltp", "quote", "full"})

# Segments, from the low byte of the instrument token
NSE, NFO, CDS, BSE, BFO, BCD, MCX, MCXSX, INDICES, NCO = 1, 2, 3, 4, 5, 6, 7, 8, 9, 12
# Prices are integers in these units; 100 (paise) for every other segment. NCO's divisor is
# pykiteconnect's (gokiteconnect predates the segment).
_DIVISORS: Final[dict[int, float]] = {CDS: 10_000_000.0, BCD: 10_000.0, NCO: 10_000.0}
_DEFAULT_DIVISOR: Final = 100.0

HEARTBEAT_SIZE: Final = 1
LTP_SIZE: Final = 8
INDEX_QUOTE_SIZE: Final = 28
INDEX_FULL_SIZE: Final = 32
QUOTE_SIZE: Final = 44
FULL_SIZE: Final = 184
DEPTH_LEVELS: Final = 5
PACKET_SIZES: Final[frozenset[int]] = frozenset({LTP_SIZE, INDEX_QUOTE_SIZE, INDEX_FULL_SIZE, QUOTE_SIZE, FULL_SIZE})

_U16 = struct.Struct(">H")
_LTP = struct.Struct(">Ii")  # token, last price
# token, last price, high, low, open, close, Kite's own price change (unused: computed from close)
_INDEX_QUOTE = struct.Struct(">Iiiiiii")
_INDEX_TIMESTAMP = struct.Struct(">I")  # at offset 28 of an index full packet
# token, last price, last quantity, average price, volume, buy quantity, sell quantity, open, high, low, close
_QUOTE = struct.Struct(">IiIiIIIiiii")
# at offset 44 of a full packet: last trade time, oi, oi day high, oi day low, exchange timestamp
_FULL_EXTRA = struct.Struct(">IIIII")
_DEPTH_ENTRY = struct.Struct(">IiH2x")  # quantity, price, orders, padding
_DEPTH_OFFSET: Final = 64


class MalformedFrameError(ValueError):
    """A frame that does not follow Kite's layout: truncated, inconsistent lengths, unknown packet size."""


class Ohlc(msgspec.Struct, frozen=True):
    open: float
    high: float
    low: float
    close: float


class DepthEntry(msgspec.Struct, frozen=True):
    price: float
    quantity: int
    orders: int


class Depth(msgspec.Struct, frozen=True):
    buy: tuple[DepthEntry, ...]
    sell: tuple[DepthEntry, ...]


class Tick(msgspec.Struct, frozen=True, kw_only=True):
    """One instrument's state as one packet carried it; fields a mode does not carry are None.

    Timestamps are aware datetimes in Asia/Kolkata; an epoch of 0 (Kite's "none") becomes None.
    """

    mode: Mode
    tradable: bool
    instrument_token: int
    last_price: float
    last_quantity: int | None = None
    average_price: float | None = None
    volume: int | None = None
    buy_quantity: int | None = None
    sell_quantity: int | None = None
    ohlc: Ohlc | None = None
    change: float | None = None
    last_trade_time: datetime | None = None
    oi: int | None = None
    oi_day_high: int | None = None
    oi_day_low: int | None = None
    exchange_timestamp: datetime | None = msgspec.field(default=None, name="timestamp")
    depth: Depth | None = None

    @property
    def segment(self) -> int:
        return self.instrument_token & 0xFF

    @property
    def is_index(self) -> bool:
        return self.segment == INDICES

    @property
    def change_percent(self) -> float | None:
        """pykiteconnect's `change`: the move from the previous close in per cent."""
        if self.ohlc is None:
            return None
        close = self.ohlc.close
        return (self.last_price - close) * 100 / close if close != 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Kite's documented tick shape: the keys a packet of this size carries, timestamps in ISO 8601."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "tradable": self.tradable,
            "instrument_token": self.instrument_token,
            "last_price": self.last_price,
        }
        if self.ohlc is None:  # LTP
            return out
        has_quantities = self.volume is not None  # a stock packet, not an index one
        if has_quantities:
            out["last_quantity"] = self.last_quantity
            out["average_price"] = self.average_price
            out["volume"] = self.volume
            out["buy_quantity"] = self.buy_quantity
            out["sell_quantity"] = self.sell_quantity
        out["ohlc"] = {
            "open": self.ohlc.open,
            "high": self.ohlc.high,
            "low": self.ohlc.low,
            "close": self.ohlc.close,
        }
        out["change"] = self.change
        if self.mode != "full":
            return out
        if has_quantities:
            out["last_trade_time"] = _iso(self.last_trade_time)
            out["oi"] = self.oi
            out["oi_day_high"] = self.oi_day_high
            out["oi_day_low"] = self.oi_day_low
        out["timestamp"] = _iso(self.exchange_timestamp)
        if self.depth is not None:
            out["depth"] = {
                side: [{"price": e.price, "quantity": e.quantity, "orders": e.orders} for e in entries]
                for side, entries in (("buy", self.depth.buy), ("sell", self.depth.sell))
            }
        return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _timestamp(epoch: int) -> datetime | None:
    return datetime.fromtimestamp(epoch, IST) if epoch else None


def price_divisor(instrument_token: int) -> float:
    return _DIVISORS.get(instrument_token & 0xFF, _DEFAULT_DIVISOR)


def is_heartbeat(frame: bytes | memoryview) -> bool:
    return len(frame) == HEARTBEAT_SIZE


def split_frame(frame: bytes | memoryview) -> list[memoryview]:
    """The packets of a frame, as views into it (no copies); a heartbeat has none."""
    view = memoryview(frame)
    size = len(view)
    if size == HEARTBEAT_SIZE:
        return []
    if size < _U16.size:
        raise MalformedFrameError("empty frame")
    (count,) = _U16.unpack_from(view, 0)
    packets: list[memoryview] = []
    offset = _U16.size
    for index in range(count):
        if offset + _U16.size > size:
            raise MalformedFrameError(f"frame of {size} bytes ends before packet {index + 1} of {count}")
        (length,) = _U16.unpack_from(view, offset)
        offset += _U16.size
        if offset + length > size:
            raise MalformedFrameError(
                f"packet {index + 1} of {count} declares {length} bytes but {size - offset} remain"
            )
        packets.append(view[offset : offset + length])
        offset += length
    if offset != size:
        raise MalformedFrameError(f"{size - offset} bytes after the last of {count} packets")
    return packets


def split_packets(frame: bytes | memoryview) -> list[bytes]:
    """The packets of a frame as they are, each of a Kite layout's size, or `MalformedFrameError` for the
    whole frame. What the service passes on: a packet is parsed only where a value is needed."""
    packets = [bytes(view) for view in split_frame(frame)]
    for packet in packets:
        if len(packet) not in PACKET_SIZES:
            raise MalformedFrameError(f"unknown packet size {len(packet)}")
    return packets


def packet_token(packet: bytes | memoryview) -> int:
    token: int = _LTP.unpack_from(packet, 0)[0]
    return token


def parse_frame(frame: bytes | memoryview) -> list[Tick]:
    """Every tick of a frame, or `MalformedFrameError` for the whole frame (nothing half-read)."""
    return [parse_packet(packet) for packet in split_frame(frame)]


def parse_packet(packet: bytes | memoryview) -> Tick:
    size = len(packet)
    if size == LTP_SIZE:
        return _parse_ltp(packet)
    if size in (INDEX_QUOTE_SIZE, INDEX_FULL_SIZE):
        return _parse_index(packet, size)
    if size in (QUOTE_SIZE, FULL_SIZE):
        return _parse_quote(packet, size)
    raise MalformedFrameError(f"unknown packet size {size}")


def _parse_ltp(packet: bytes | memoryview) -> Tick:
    token, last = _LTP.unpack_from(packet, 0)
    return Tick(
        mode="ltp",
        tradable=token & 0xFF != INDICES,
        instrument_token=token,
        last_price=last / price_divisor(token),
    )


def _parse_index(packet: bytes | memoryview, size: int) -> Tick:
    token, last, high, low, open_, close, _kite_change = _INDEX_QUOTE.unpack_from(packet, 0)
    divisor = price_divisor(token)
    last_price = last / divisor
    ohlc = Ohlc(open=open_ / divisor, high=high / divisor, low=low / divisor, close=close / divisor)
    full = size == INDEX_FULL_SIZE
    return Tick(
        mode="full" if full else "quote",
        tradable=token & 0xFF != INDICES,
        instrument_token=token,
        last_price=last_price,
        ohlc=ohlc,
        change=_change(last_price, ohlc.close),
        exchange_timestamp=_timestamp(_INDEX_TIMESTAMP.unpack_from(packet, INDEX_QUOTE_SIZE)[0]) if full else None,
    )


def _parse_quote(packet: bytes | memoryview, size: int) -> Tick:
    token, last, last_qty, average, volume, buy_qty, sell_qty, open_, high, low, close = _QUOTE.unpack_from(packet, 0)
    divisor = price_divisor(token)
    last_price = last / divisor
    ohlc = Ohlc(open=open_ / divisor, high=high / divisor, low=low / divisor, close=close / divisor)
    common: dict[str, Any] = {
        "tradable": token & 0xFF != INDICES,
        "instrument_token": token,
        "last_price": last_price,
        "last_quantity": last_qty,
        "average_price": average / divisor,
        "volume": volume,
        "buy_quantity": buy_qty,
        "sell_quantity": sell_qty,
        "ohlc": ohlc,
        "change": _change(last_price, ohlc.close),
    }
    if size == QUOTE_SIZE:
        return Tick(mode="quote", **common)
    last_trade, oi, oi_high, oi_low, stamp = _FULL_EXTRA.unpack_from(packet, QUOTE_SIZE)
    return Tick(
        mode="full",
        last_trade_time=_timestamp(last_trade),
        oi=oi,
        oi_day_high=oi_high,
        oi_day_low=oi_low,
        exchange_timestamp=_timestamp(stamp),
        depth=_parse_depth(packet, divisor),
        **common,
    )


def _parse_depth(packet: bytes | memoryview, divisor: float) -> Depth:
    entries = [
        DepthEntry(price=price / divisor, quantity=quantity, orders=orders)
        for quantity, price, orders in (
            _DEPTH_ENTRY.unpack_from(packet, _DEPTH_OFFSET + i * _DEPTH_ENTRY.size) for i in range(2 * DEPTH_LEVELS)
        )
    ]
    return Depth(buy=tuple(entries[:DEPTH_LEVELS]), sell=tuple(entries[DEPTH_LEVELS:]))


def _change(last_price: float, close: float) -> float:
    return last_price - close if close != 0 else 0.0
