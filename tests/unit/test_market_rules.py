"""The exchange's and Kite's rules as pure functions: their boundaries, as Kite draws them."""

from __future__ import annotations

from decimal import Decimal

from ticker_service.instruments import Instrument, load_instruments
from ticker_service.market_rules import (
    CIRCUIT,
    check_freeze,
    check_price_band,
    check_product,
    check_stop_loss,
    freeze_limit,
    slices,
)

BOOK = load_instruments()
NIFTY = BOOK.get("NFO", "NIFTY25NOVFUT")
INFY = BOOK.get("NSE", "INFY")


def option(price: str) -> Instrument:
    assert NIFTY is not None
    return Instrument(
        instrument_token=1,
        exchange_token=1,
        tradingsymbol="NIFTY25NOV19500CE",
        name="NIFTY",
        last_price=Decimal(price),
        expiry=NIFTY.expiry,
        strike=Decimal(19500),
        tick_size=Decimal("0.05"),
        lot_size=50,
        instrument_type="CE",
        segment="NFO-OPT",
        exchange="NFO",
    )


def test_products_by_segment() -> None:
    assert NIFTY is not None and INFY is not None
    assert [check_product(NIFTY, p) is None for p in ("NRML", "MIS", "CNC", "MTF")] == [True, True, False, False]
    assert [check_product(INFY, p) is None for p in ("CNC", "MIS", "MTF", "NRML")] == [True, True, True, False]


def test_stop_loss_boundaries() -> None:
    ltp = Decimal(100)
    # an SL buy: trigger at or below its price and above the last price
    assert check_stop_loss("BUY", "SL", Decimal("101"), Decimal("101"), ltp) is None
    assert check_stop_loss("BUY", "SL", Decimal("101"), Decimal("101.05"), ltp) is not None
    assert check_stop_loss("BUY", "SL", Decimal("102"), Decimal("100"), ltp) is not None  # at the last price
    assert check_stop_loss("SELL", "SL", Decimal("99"), Decimal("99"), ltp) is None
    assert check_stop_loss("SELL", "SL", Decimal("99"), Decimal("98.95"), ltp) is not None
    assert check_stop_loss("SELL", "SL-M", None, Decimal("100"), ltp) is not None
    assert check_stop_loss("BUY", "SL-M", None, Decimal("100.05"), ltp) is None
    assert check_stop_loss("BUY", "LIMIT", Decimal(1), None, ltp) is None


def test_freeze_quantity_and_slices() -> None:
    assert NIFTY is not None and INFY is not None
    assert freeze_limit(NIFTY) == 1800 and freeze_limit(INFY) is None
    assert check_freeze(NIFTY, 1800) is None and check_freeze(NIFTY, 1850) is not None
    assert slices(NIFTY, 1800) is None
    assert slices(NIFTY, 3650) == [1800, 1800, 50]
    assert len(slices(NIFTY, 18000) or []) == 10 and len(slices(NIFTY, 18050) or []) == 11


def test_bands_and_option_protection() -> None:
    assert INFY is not None and NIFTY is not None
    ltp = Decimal("1500")
    assert check_price_band(INFY, "LIMIT", Decimal("1800.30"), ltp) is None  # 20 % above 1500.25
    assert check_price_band(INFY, "LIMIT", Decimal("1800.35"), ltp) == CIRCUIT
    assert check_price_band(INFY, "MARKET", None, ltp) is None
    assert check_price_band(NIFTY, "LIMIT", Decimal("21505"), ltp) is None  # 10 % above 19550
    assert check_price_band(NIFTY, "LIMIT", Decimal("21505.05"), ltp) == CIRCUIT
    rich, cheap = option("100"), option("30")
    assert check_price_band(rich, "LIMIT", Decimal("140"), Decimal(100)) is None  # within 40 %
    assert check_price_band(rich, "LIMIT", Decimal("140.05"), Decimal(100)) == CIRCUIT
    assert check_price_band(cheap, "LIMIT", Decimal("50"), Decimal(30)) is None  # within 20 rupees
    assert check_price_band(cheap, "SL", Decimal("50.05"), Decimal(30)) == CIRCUIT
