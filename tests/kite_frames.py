"""Kite ticker packets and frames built by hand, and the official samples, for the ticker tests.

Prices are given in wire units (paise for most segments), so each test states its divisor.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# copies of the official samples in the shared `kite-mocks/`, byte for byte, so CI has them
MOCKS = Path(__file__).resolve().parent / "kite_mocks"

HEARTBEAT = b"\x00"


def sample_packet(name: str) -> bytes:
    return base64.b64decode((MOCKS / f"ticker_{name}.packet").read_text())


def sample_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MOCKS / f"ticker_{name}.json").read_text())
    return data


def postback() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MOCKS / "postback.json").read_text())
    return data


def frame(*packets: bytes) -> bytes:
    out = bytearray(struct.pack(">H", len(packets)))
    for packet in packets:
        out += struct.pack(">H", len(packet)) + packet
    return bytes(out)


def ltp_packet(token: int, last: int) -> bytes:
    return struct.pack(">Ii", token, last)


def index_packet(
    token: int,
    *,
    last: int,
    high: int,
    low: int,
    open_: int,
    close: int,
    kite_change: int = 0,
    timestamp: int | None = None,
) -> bytes:
    packet = struct.pack(">Iiiiiii", token, last, high, low, open_, close, kite_change)
    return packet if timestamp is None else packet + struct.pack(">I", timestamp)


def quote_packet(
    token: int,
    *,
    last: int,
    last_quantity: int = 0,
    average: int = 0,
    volume: int = 0,
    buy_quantity: int = 0,
    sell_quantity: int = 0,
    open_: int = 0,
    high: int = 0,
    low: int = 0,
    close: int = 0,
) -> bytes:
    return struct.pack(
        ">IiIiIIIiiii",
        token,
        last,
        last_quantity,
        average,
        volume,
        buy_quantity,
        sell_quantity,
        open_,
        high,
        low,
        close,
    )


def full_packet(
    token: int,
    *,
    last_trade_time: int = 0,
    oi: int = 0,
    oi_day_high: int = 0,
    oi_day_low: int = 0,
    timestamp: int = 0,
    depth: Sequence[tuple[int, int, int]] = (),  # (quantity, price, orders): 5 bids, then 5 asks
    **quote: int,
) -> bytes:
    entries = list(depth) + [(0, 0, 0)] * (10 - len(depth))
    return (
        quote_packet(token, **quote)
        + struct.pack(">IIIII", last_trade_time, oi, oi_day_high, oi_day_low, timestamp)
        + b"".join(struct.pack(">IiH2x", q, p, o) for q, p, o in entries)
    )
