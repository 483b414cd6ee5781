"""The fake's ticker packer against Kite's own frames: packing the decoded samples must give exactly
the sample packets' bytes, and what the fake packs must decode, through kiteconnect's own parser, to
the values it packed, in every mode, for every kind of segment (paise, CDS, BCD, indices)."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kiteconnect import KiteTicker

from ticker_service.fakekite import Tick, pack_frame, pack_packet
from ticker_service.fakekite.instruments import BUILTIN_INSTRUMENTS, InstrumentTable
from ticker_service.fakekite.market import Market
from ticker_service.fakekite.packets import HEARTBEAT

MOCKS = Path(__file__).resolve().parents[3] / "shared" / "kite-mocks"
if not MOCKS.is_dir():
    MOCKS = Path("/work/shared/kite-mocks")


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MOCKS / name).read_text())
    return data


def sample_packet(name: str) -> bytes:
    return base64.b64decode((MOCKS / name).read_text())


def parse(frame: bytes) -> list[dict[str, Any]]:
    """kiteconnect's own decoder (KiteTicker._parse_binary), so the fake is judged by the real client."""
    ticks: list[dict[str, Any]] = KiteTicker("key", "token")._parse_binary(frame)
    return ticks


@pytest.mark.parametrize("mode", ["quote", "full"])
def test_packing_the_sample_json_gives_the_sample_packet(mode: str) -> None:
    packet = pack_packet(Tick.from_json(sample(f"ticker_{mode}.json")))
    assert packet == sample_packet(f"ticker_{mode}.packet")


def test_the_ltp_sample_packs_to_eight_bytes_that_kiteconnect_reads_back() -> None:
    data = sample("ticker_ltp.json")
    packet = pack_packet(Tick.from_json(data))
    assert packet == struct.pack(">II", 408065, 157315)
    assert parse(pack_frame([packet])) == [data]


def test_a_frame_of_the_sample_packets_decodes_to_the_sample_values() -> None:
    quote, full = sample("ticker_quote.json"), sample("ticker_full.json")
    frame = pack_frame([pack_packet(Tick.from_json(quote)), pack_packet(Tick.from_json(full))])
    assert struct.unpack(">H", frame[:2]) == (2,)
    got_quote, got_full = parse(frame)
    for got, want in ((got_quote, quote), (got_full, full)):
        assert got["mode"] == want["mode"]
        assert got["instrument_token"] == want["instrument_token"]
        assert got["last_price"] == want["last_price"]
        assert got["last_traded_quantity"] == want["last_quantity"]
        assert got["average_traded_price"] == want["average_price"]
        assert got["volume_traded"] == want["volume"]
        assert got["total_buy_quantity"] == want["buy_quantity"]
        assert got["total_sell_quantity"] == want["sell_quantity"]
        assert got["ohlc"] == want["ohlc"]
    assert got_full["depth"] == full["depth"]
    assert got_full["oi"] == full["oi"]
    assert int(got_full["last_trade_time"].timestamp()) == 1625461887  # 2021-07-05T10:41:27+05:30


def test_the_heartbeat_is_one_byte_and_carries_no_tick() -> None:
    assert len(HEARTBEAT) == 1
    assert parse(HEARTBEAT) == []


@pytest.mark.parametrize(
    ("symbol", "divisor"),
    [
        ("NSE:INFY", 100),
        ("CDS:USDINR25NOVFUT", 10_000_000),
        ("BCD:USDINR25NOVFUT", 10_000),
        ("MCX:GOLDPETAL25NOVFUT", 100),
    ],
)
@pytest.mark.parametrize("mode", ["ltp", "quote", "full"])
def test_every_segment_decodes_to_the_price_the_market_holds(symbol: str, divisor: int, mode: str) -> None:
    table = InstrumentTable(BUILTIN_INSTRUMENTS)
    instrument = table.lookup(symbol)
    assert instrument is not None
    market = Market(table)
    token = instrument.instrument_token
    market.set_price(token, instrument.price + instrument.price_step * 3)
    tick = market.tick(token, mode)
    packet = pack_packet(tick)
    assert len(packet) == {"ltp": 8, "quote": 44, "full": 184}[mode]
    (got,) = parse(pack_frame([packet]))
    assert got["mode"] == mode
    assert Decimal(str(got["last_price"])) == tick.last_price
    assert struct.unpack(">I", packet[4:8])[0] == int(tick.last_price * divisor)
    if mode == "full":
        assert [Decimal(str(level["price"])) for level in got["depth"]["buy"]] == [d.price for d in tick.buy_depth]
        assert [level["quantity"] for level in got["depth"]["sell"]] == [d.quantity for d in tick.sell_depth]


@pytest.mark.parametrize(("mode", "size"), [("ltp", 8), ("quote", 28), ("full", 32)])
def test_index_packets_are_kites_short_ones(mode: str, size: int) -> None:
    table = InstrumentTable(BUILTIN_INSTRUMENTS)
    nifty = table.lookup("NSE:NIFTY 50")
    assert nifty is not None and nifty.is_index
    market = Market(table)
    market.set_price(nifty.instrument_token, Decimal("19612.35"))
    tick = market.tick(nifty.instrument_token, mode)
    packet = pack_packet(tick)
    assert len(packet) == size
    (got,) = parse(pack_frame([packet]))
    assert got["tradable"] is False
    assert got["mode"] == mode
    assert got["last_price"] == 19612.35
    if mode != "ltp":
        assert got["ohlc"] == {"open": 19500.0, "high": 19612.35, "low": 19500.0, "close": 19500.0}
        change = struct.unpack(">i", packet[24:28])[0]
        assert change == 11235  # (19612.35 - 19500) in paise, as Kite sends an index's net change
