"""Kite's binary ticker frames: the official samples, hand-built packets, and pykiteconnect as a second opinion."""

from __future__ import annotations

import json
import random
import struct
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from kiteconnect import KiteTicker

from tests.kite_frames import (
    HEARTBEAT,
    frame,
    full_packet,
    index_packet,
    ltp_packet,
    quote_packet,
    sample_json,
    sample_packet,
)
from ticker_service.marketdata.packets import MalformedFrameError, Tick, parse_frame, parse_packet
from ticker_service.timeutil import IST

NIFTY = 256265  # an index: segment 9
INFY = 408065  # NSE: segment 1
USDINR_CDS = 412675  # CDS: segment 3
BCD_TOKEN = (4321 << 8) | 6
MCX_TOKEN = (98765 << 8) | 7
EPOCH = 1625461887  # 2021-07-05 10:41:27 IST, the samples' time


@pytest.fixture
def new_york_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's local zone far from India, so host-local rendering would show."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def only(frame_bytes: bytes) -> Tick:
    ticks = parse_frame(frame_bytes)
    assert len(ticks) == 1
    return ticks[0]


def test_full_sample_equals_its_json() -> None:
    tick = only(frame(sample_packet("full")))

    assert tick.to_dict() == sample_json("full")
    assert json.loads(json.dumps(tick.to_dict())) == sample_json("full")  # and it is plain JSON


def test_full_sample_timestamps_are_ist_whatever_the_host_zone(new_york_host: None) -> None:
    tick = parse_packet(sample_packet("full"))

    assert tick.exchange_timestamp == datetime(2021, 7, 5, 10, 41, 27, tzinfo=IST)
    assert tick.last_trade_time == datetime(2021, 7, 5, 10, 41, 27, tzinfo=IST)
    assert tick.to_dict()["timestamp"] == "2021-07-05T10:41:27+05:30"


def test_quote_sample_equals_its_json_but_for_the_samples_own_change() -> None:
    sample = sample_json("quote")
    tick = only(frame(sample_packet("quote")))

    # The official quote sample carries the full sample's change (5.900000000000091 = 1573.7 - 1567.8);
    # its own packet's last price 1573.15 and close 1567.8 cannot give it under either official
    # client's formula (gokiteconnect: 5.35; pykiteconnect: 0.34 %). Every other field must match.
    assert sample["change"] == sample_json("full")["change"]
    expected = {**sample, "change": 1573.15 - 1567.8}
    assert tick.to_dict() == expected
    assert tick.change_percent == pytest.approx(0.3412424, rel=1e-6)


def test_ltp_packet_equals_the_ltp_sample() -> None:
    tick = only(frame(ltp_packet(INFY, 157315)))

    assert tick.to_dict() == sample_json("ltp")


def test_index_quote_is_not_tradable_and_reads_high_low_open_close_in_that_order() -> None:
    packet = index_packet(NIFTY, last=2450060, high=2460000, low=2440000, open_=2445000, close=2430000, kite_change=99)
    tick = only(frame(packet))

    assert tick.to_dict() == {
        "mode": "quote",
        "tradable": False,
        "instrument_token": NIFTY,
        "last_price": 24500.6,
        "ohlc": {"open": 24450.0, "high": 24600.0, "low": 24400.0, "close": 24300.0},
        "change": 24500.6 - 24300.0,
    }
    assert tick.is_index


def test_index_full_carries_an_ist_timestamp(new_york_host: None) -> None:
    packet = index_packet(NIFTY, last=2450060, high=1, low=1, open_=1, close=2430000, timestamp=EPOCH)
    tick = only(frame(packet))

    assert tick.mode == "full"
    assert tick.to_dict()["timestamp"] == "2021-07-05T10:41:27+05:30"
    assert "depth" not in tick.to_dict()
    assert "volume" not in tick.to_dict()


def test_cds_prices_are_in_ten_millionths_of_a_rupee() -> None:
    packet = full_packet(
        USDINR_CDS,
        last=725_012_500,
        average=725_000_000,
        open_=724_000_000,
        high=726_000_000,
        low=723_000_000,
        close=724_500_000,
        depth=[(10, 725_000_000, 2)] * 5 + [(20, 725_025_000, 3)] * 5,
    )
    tick = only(frame(packet))

    assert tick.last_price == 72.50125
    assert tick.average_price == 72.5
    assert tick.ohlc is not None and tick.ohlc.close == 72.45
    assert tick.depth is not None
    assert [e.price for e in tick.depth.buy] == [72.5] * 5
    assert [e.price for e in tick.depth.sell] == [72.5025] * 5


def test_bcd_prices_are_in_ten_thousandths_of_a_rupee() -> None:
    tick = only(frame(quote_packet(BCD_TOKEN, last=725_025, close=724_500)))

    assert tick.last_price == 72.5025
    assert tick.ohlc is not None and tick.ohlc.close == 72.45
    assert tick.change == 72.5025 - 72.45


def test_other_segments_are_in_paise() -> None:
    assert only(frame(ltp_packet(MCX_TOKEN, 725_025))).last_price == 7250.25


def test_full_packet_depth_and_open_interest() -> None:
    depth = [(100 + i, 10_000 - i, i + 1) for i in range(5)] + [(200 + i, 10_010 + i, 10 + i) for i in range(5)]
    packet = full_packet(
        (12345 << 8) | 2,  # NFO
        last=10_005,
        close=9_900,
        volume=3_000_000_000,  # more than 2**31: counts are unsigned
        oi=4_000_000,
        oi_day_high=4_100_000,
        oi_day_low=3_900_000,
        last_trade_time=EPOCH - 5,
        timestamp=EPOCH,
        depth=depth,
    )
    tick = only(frame(packet))
    out = tick.to_dict()

    assert out["volume"] == 3_000_000_000
    assert (out["oi"], out["oi_day_high"], out["oi_day_low"]) == (4_000_000, 4_100_000, 3_900_000)
    assert out["last_trade_time"] == "2021-07-05T10:41:22+05:30"
    assert out["depth"]["buy"][0] == {"price": 100.0, "quantity": 100, "orders": 1}
    assert out["depth"]["sell"][4] == {"price": 100.14, "quantity": 204, "orders": 14}


def test_negative_prices_read_as_negative() -> None:
    """MCX crude settled below zero in April 2020; Kite documents prices as int32."""
    tick = only(frame(quote_packet(MCX_TOKEN, last=-288_400, close=183_600)))

    assert tick.last_price == -2884.0
    assert tick.change == -2884.0 - 1836.0


def test_zero_close_gives_zero_change_and_zero_epoch_no_time() -> None:
    tick = only(frame(full_packet(INFY, last=100, close=0, timestamp=0, last_trade_time=0)))

    assert tick.change == 0.0
    assert tick.change_percent == 0.0
    assert tick.to_dict()["timestamp"] is None
    assert tick.to_dict()["last_trade_time"] is None


def test_one_frame_many_packets_in_order() -> None:
    ticks = parse_frame(frame(sample_packet("quote"), ltp_packet(NIFTY, 2450000), sample_packet("full")))

    assert [(t.mode, t.instrument_token) for t in ticks] == [("quote", INFY), ("ltp", NIFTY), ("full", INFY)]
    assert ticks[1].tradable is False


def test_heartbeat_and_empty_frames_carry_no_ticks() -> None:
    assert parse_frame(HEARTBEAT) == []
    assert parse_frame(struct.pack(">H", 0)) == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty frame"),
        (struct.pack(">H", 2) + struct.pack(">H", 8) + ltp_packet(INFY, 1), "ends before packet 2"),
        (struct.pack(">HH", 1, 44) + ltp_packet(INFY, 1), "declares 44 bytes but 8 remain"),
        (frame(ltp_packet(INFY, 1)) + b"\x00\x00", "2 bytes after the last"),
        (frame(b"\x00" * 12), "unknown packet size 12"),
        (frame(sample_packet("full")[:183]), "unknown packet size 183"),
        (b"\x00\x01\x00", "ends before packet 1"),
    ],
    ids=["empty", "missing-packet", "short-packet", "trailing-bytes", "unknown-size", "truncated-full", "cut-length"],
)
def test_malformed_frames_raise_a_specific_error(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedFrameError, match=reason):
        parse_frame(data)


# ---- a second opinion: pykiteconnect's own parser on the same bytes -------------------------------

_SEGMENTS = (1, 2, 3, 4, 5, 6, 7, 9)


def _random_packet(rng: random.Random, size: int) -> bytes:
    token = (rng.randrange(1, 1 << 24) << 8) | rng.choice(_SEGMENTS)

    def price() -> int:  # positive: pykiteconnect reads prices unsigned
        return rng.randrange(1, 2**31)

    def count() -> int:
        return rng.randrange(0, 2**32)

    def stamp() -> int:
        return rng.randrange(1_500_000_000, 1_900_000_000)

    if size == 8:
        return ltp_packet(token, price())
    if size in (28, 32):
        return index_packet(
            token,
            last=price(),
            high=price(),
            low=price(),
            open_=price(),
            close=price(),
            timestamp=stamp() if size == 32 else None,
        )
    quote = {
        "last": price(),
        "last_quantity": count(),
        "average": price(),
        "volume": count(),
        "buy_quantity": count(),
        "sell_quantity": count(),
        "open_": price(),
        "high": price(),
        "low": price(),
        "close": price(),
    }
    if size == 44:
        return quote_packet(token, **quote)
    return full_packet(
        token,
        last_trade_time=stamp(),
        oi=count(),
        oi_day_high=count(),
        oi_day_low=count(),
        timestamp=stamp(),
        depth=[(count(), price(), rng.randrange(0, 2**16)) for _ in range(10)],
        **quote,
    )


def _as_pykiteconnect(tick: Tick) -> dict[str, Any]:
    """Our tick in pykiteconnect's names, its percentage change and its naive host-local times."""
    out = tick.to_dict()
    renames = {
        "last_quantity": "last_traded_quantity",
        "average_price": "average_traded_price",
        "volume": "volume_traded",
        "buy_quantity": "total_buy_quantity",
        "sell_quantity": "total_sell_quantity",
        "timestamp": "exchange_timestamp",
    }
    out = {renames.get(k, k): v for k, v in out.items()}
    if "change" in out:
        out["change"] = tick.change_percent
    for key, value in (("last_trade_time", tick.last_trade_time), ("exchange_timestamp", tick.exchange_timestamp)):
        if key in out:
            out[key] = datetime.fromtimestamp(value.timestamp()) if value is not None else None
    return out


def test_every_packet_size_and_segment_agrees_with_pykiteconnect() -> None:
    reference = KiteTicker("api-key", "unused")
    rng = random.Random(20210705)
    for _ in range(200):
        packets = [_random_packet(rng, rng.choice((8, 28, 32, 44, 184))) for _ in range(rng.randrange(1, 6))]
        data = frame(*packets)

        ours = [_as_pykiteconnect(t) for t in parse_frame(data)]

        assert ours == reference._parse_binary(data)
