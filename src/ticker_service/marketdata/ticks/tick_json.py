"""A Kite packet straight to its JSON tick (`Tick.to_dict()`'s shape), without building a `Tick`.

Every tick a `/ws/ticks` client receives is rendered here, once per mode it is asked in. Going
through `parse_packet(...).to_dict()` and a dict encode cost about 4 us a tick (a 500-instrument
step: 2 ms of the fan-out's time, in front of every socket); unpacking the fields into a msgspec
struct of the right layout and encoding that costs about a quarter of it. `tests/unit/
test_tick_json.py` holds it to `to_dict()` for every packet layout, Kite's samples included, so
there is still one definition of the shape: `packets.Tick.to_dict`.

Besides Kite's documented `timestamp`, a packet that carries one also gets it as
`exchange_timestamp`, pykiteconnect's name, so clients written against either find it.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import msgspec

from ticker_service.marketdata.packets import (
    FULL_SIZE,
    INDEX_FULL_SIZE,
    INDEX_QUOTE_SIZE,
    INDICES,
    LTP_SIZE,
    QUOTE_SIZE,
    MalformedFrameError,
    price_divisor,
)

# Asia/Kolkata has kept +05:30 since 1945; a fixed offset converts epochs faster than the zone database
_IST: Final = timezone(timedelta(hours=5, minutes=30))
_LTP = struct.Struct(">Ii")
_INDEX_QUOTE = struct.Struct(">Iiiiiii")
_INDEX_TIMESTAMP = struct.Struct(">I")
_QUOTE = struct.Struct(">IiIiIIIiiii")
_FULL_EXTRA = struct.Struct(">IIIII")
_DEPTH = struct.Struct(">" + "IiH2x" * 10)  # five buy levels, then five sell levels

_encoder = msgspec.json.Encoder()


class _Ohlc(msgspec.Struct):
    open: float
    high: float
    low: float
    close: float


class _Level(msgspec.Struct):
    price: float
    quantity: int
    orders: int


class _Depth(msgspec.Struct):
    buy: list[_Level]
    sell: list[_Level]


class _Ltp(msgspec.Struct):
    mode: str
    tradable: bool
    instrument_token: int
    last_price: float


class _IndexQuote(_Ltp):
    ohlc: _Ohlc
    change: float


class _IndexFull(_IndexQuote):
    timestamp: datetime | None
    exchange_timestamp: datetime | None


class _Quote(_Ltp):
    last_quantity: int
    average_price: float
    volume: int
    buy_quantity: int
    sell_quantity: int
    ohlc: _Ohlc
    change: float


class _Full(_Quote):
    last_trade_time: datetime | None
    oi: int
    oi_day_high: int
    oi_day_low: int
    timestamp: datetime | None
    depth: _Depth
    exchange_timestamp: datetime | None


def _when(epoch: int) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC).astimezone(_IST) if epoch else None


def _prices(token: int, last: int, open_: int, high: int, low: int, close: int) -> tuple[float, float, _Ohlc, float]:
    """(divisor, last price, OHLC, change): the fields every quote-size layout shares, as `Tick` has them."""
    divisor = price_divisor(token)
    last_price, close_price = last / divisor, close / divisor
    ohlc = _Ohlc(open_ / divisor, high / divisor, low / divisor, close_price)
    return divisor, last_price, ohlc, last_price - close_price if close_price != 0 else 0.0


def encode_packet(packet: bytes) -> bytes:
    """The packet's tick as JSON bytes; `MalformedFrameError` for a size that is no Kite layout."""
    size = len(packet)
    if size in (QUOTE_SIZE, FULL_SIZE):
        token, last, last_qty, average, volume, buy_qty, sell_qty, open_, high, low, close = _QUOTE.unpack_from(packet)
        divisor, last_price, ohlc, change = _prices(token, last, open_, high, low, close)
        quote = (
            token & 0xFF != INDICES,
            token,
            last_price,
            last_qty,
            average / divisor,
            volume,
            buy_qty,
            sell_qty,
            ohlc,
            change,
        )
        if size == QUOTE_SIZE:
            return _encoder.encode(_Quote("quote", *quote))
        trade_time, oi, oi_high, oi_low, stamp = _FULL_EXTRA.unpack_from(packet, QUOTE_SIZE)
        levels = _DEPTH.unpack_from(packet, 64)
        book = [_Level(levels[i + 1] / divisor, levels[i], levels[i + 2]) for i in range(0, 30, 3)]
        timestamp = _when(stamp)
        depth = _Depth(book[:5], book[5:])
        return _encoder.encode(
            _Full("full", *quote, _when(trade_time), oi, oi_high, oi_low, timestamp, depth, timestamp)
        )
    if size == LTP_SIZE:
        token, last = _LTP.unpack_from(packet)
        return _encoder.encode(_Ltp("ltp", token & 0xFF != INDICES, token, last / price_divisor(token)))
    if size in (INDEX_QUOTE_SIZE, INDEX_FULL_SIZE):
        token, last, high, low, open_, close, _kite_change = _INDEX_QUOTE.unpack_from(packet)
        _divisor, last_price, ohlc, change = _prices(token, last, open_, high, low, close)
        index = (token & 0xFF != INDICES, token, last_price, ohlc, change)
        if size == INDEX_QUOTE_SIZE:
            return _encoder.encode(_IndexQuote("quote", *index))
        timestamp = _when(_INDEX_TIMESTAMP.unpack_from(packet, INDEX_QUOTE_SIZE)[0])
        return _encoder.encode(_IndexFull("full", *index, timestamp, timestamp))
    raise MalformedFrameError(f"unknown packet size {size}")
