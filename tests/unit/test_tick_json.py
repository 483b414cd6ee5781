"""`tick_json.encode_packet` renders exactly `parse_packet(p).to_dict()` (plus `exchange_timestamp`), for
every layout: Kite's official samples, hand-built packets of every size and segment, random fields."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.kite_frames import full_packet, index_packet, ltp_packet, quote_packet, sample_json, sample_packet
from ticker_service.marketdata.packets import MalformedFrameError, parse_packet
from ticker_service.marketdata.ticks.entry import TickEntry
from ticker_service.marketdata.ticks.tick_json import encode_packet
from ticker_service.marketdata.ticks.wire import at_mode

NIFTY = 256265  # an index: segment 9
INFY = 408065  # NSE
USDINR_CDS = 412675  # CDS: prices in 1e-7 units
BCD_TOKEN = (4321 << 8) | 6
MCX_TOKEN = (98765 << 8) | 7


def expected(packet: bytes) -> dict[str, Any]:
    out = parse_packet(packet).to_dict()
    if "timestamp" in out:
        out["exchange_timestamp"] = out["timestamp"]
    return out


def rendered(packet: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(encode_packet(packet))
    return value


@pytest.mark.parametrize("name", ["full", "quote"])
def test_the_official_samples_render_as_their_json(name: str) -> None:
    packet = sample_packet(name)
    want = sample_json(name)
    if "timestamp" in want:
        want = {**want, "exchange_timestamp": want["timestamp"]}
    if name == "quote":  # the official quote sample carries the full sample's change (see test_kite_packets)
        want = {**want, "change": want["last_price"] - want["ohlc"]["close"]}

    assert rendered(packet) == want
    assert rendered(packet) == expected(packet)


def test_the_full_sample_cut_to_each_mode_matches_parsing_it() -> None:
    packet = sample_packet("full")
    for mode in ("ltp", "quote", "full"):
        cut = at_mode(packet, mode)
        assert rendered(cut) == expected(cut)
        assert rendered(cut)["mode"] == mode


def _random_packets(rng: random.Random) -> list[bytes]:
    def price() -> int:
        return rng.randint(-(2**31), 2**31 - 1)

    def count() -> int:
        return rng.randint(0, 2**32 - 1)

    out: list[bytes] = []
    for token in (NIFTY, INFY, USDINR_CDS, BCD_TOKEN, MCX_TOKEN):
        out.append(ltp_packet(token, price()))
        out.append(
            index_packet(token, last=price(), high=price(), low=price(), open_=price(), close=rng.choice([0, price()]))
        )
        out.append(
            index_packet(
                token,
                last=price(),
                high=price(),
                low=price(),
                open_=price(),
                close=price(),
                timestamp=rng.choice([0, count()]),
            )
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
            "close": rng.choice([0, price()]),
        }
        out.append(quote_packet(token, **quote))
        out.append(
            full_packet(
                token,
                last_trade_time=rng.choice([0, rng.randint(1, 2**31)]),
                oi=count(),
                oi_day_high=count(),
                oi_day_low=count(),
                timestamp=rng.choice([0, rng.randint(1, 2**31)]),
                depth=[(count(), price(), rng.randint(0, 65535)) for _ in range(10)],
                **quote,
            )
        )
    return out


def test_random_packets_of_every_layout_and_segment_match_parsing_them() -> None:
    rng = random.Random(20261207)
    for _ in range(200):
        for packet in _random_packets(rng):
            assert rendered(packet) == expected(packet), packet.hex()


def test_an_entry_renders_each_mode_once_and_cut_down() -> None:
    entry = TickEntry(sample_packet("full"))

    quote = entry.encoded_for("quote")

    assert entry.encoded_for("quote") is quote  # cached: one encoding for every socket
    assert json.loads(quote) == expected(sample_packet("full")[:44])
    assert json.loads(entry.encoded_for("ltp")) == {
        "mode": "ltp",
        "tradable": True,
        "instrument_token": sample_json("full")["instrument_token"],
        "last_price": sample_json("full")["last_price"],
    }


def test_a_packet_of_no_kite_size_is_refused() -> None:
    with pytest.raises(MalformedFrameError):
        encode_packet(b"\x00" * 45)
