"""The paper list rolls with the calendar: NSE's monthly expiries, Kite's symbols, stable tokens."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ticker_service.instruments import check_order, load_instruments
from ticker_service.marketdata.instruments.expiry import Holidays, monthly_expiries, monthly_expiry
from ticker_service.marketdata.instruments.filters import InstrumentFilter
from ticker_service.marketdata.instruments.paper_list import RollingInstrumentBook, paper_instruments

NO_EXTRA = Holidays()


def book(on: date, holidays: Holidays = NO_EXTRA) -> RollingInstrumentBook:
    return RollingInstrumentBook(load_instruments(), on, holidays)


def futures(on: date, name: str = "NIFTY") -> list[tuple[str, date]]:
    """The generated futures of `name` on `on` (listed ones have expiries in 2025)."""
    return sorted(
        ((i.tradingsymbol, i.expiry) for i in book(on) if i.name == name and i.instrument_type == "FUT" and i.expiry),
        key=lambda pair: pair[1],
    )[-3:]


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2025, 11, date(2025, 11, 25)),  # the listed NIFTY25NOVFUT's own expiry
        (2025, 12, date(2025, 12, 30)),
        (2025, 10, date(2025, 10, 28)),
        (2025, 8, date(2025, 8, 28)),  # before September 2025: the last Thursday
        (2026, 3, date(2026, 3, 31)),
        (2027, 1, date(2027, 1, 25)),  # last Tuesday is 26 January, Republic Day: the Monday before
    ],
)
def test_monthly_expiry_is_the_last_tuesday_moved_before_a_holiday(year: int, month: int, expected: date) -> None:
    assert monthly_expiry(year, month, NO_EXTRA) == expected


def test_a_configured_holiday_moves_the_expiry_back_past_a_weekend() -> None:
    # 30 Mar 2027 is the last Tuesday; say it and the Monday before are holidays: Friday 26 March
    holidays = Holidays([date(2027, 3, 30), date(2027, 3, 29)])
    assert monthly_expiry(2027, 3, holidays) == date(2027, 3, 26)


def test_futures_on_2026_11_29_are_december_january_february() -> None:
    assert futures(date(2026, 11, 29)) == [
        ("NIFTY26DECFUT", date(2026, 12, 29)),
        ("NIFTY27JANFUT", date(2027, 1, 25)),
        ("NIFTY27FEBFUT", date(2027, 2, 23)),
    ]
    assert [s for s, _ in futures(date(2026, 11, 29), "BANKNIFTY")] == [
        "BANKNIFTY26DECFUT",
        "BANKNIFTY27JANFUT",
        "BANKNIFTY27FEBFUT",
    ]


def test_the_contract_trades_on_its_expiry_day_and_rolls_off_the_day_after() -> None:
    assert [s for s, _ in futures(date(2026, 12, 29))] == ["NIFTY26DECFUT", "NIFTY27JANFUT", "NIFTY27FEBFUT"]
    assert [s for s, _ in futures(date(2026, 12, 30))] == ["NIFTY27JANFUT", "NIFTY27FEBFUT", "NIFTY27MARFUT"]
    assert [s for s, _ in futures(date(2026, 12, 31))] == ["NIFTY27JANFUT", "NIFTY27FEBFUT", "NIFTY27MARFUT"]
    assert monthly_expiries(date(2026, 11, 24), 1, NO_EXTRA) == [date(2026, 11, 24)]


def test_option_chains_have_ce_and_pe_around_the_reference_for_each_expiry() -> None:
    b = book(date(2026, 11, 29))
    chain = [i for i in b if i.name == "NIFTY" and i.expiry == date(2026, 12, 29) and i.instrument_type != "FUT"]
    strikes = sorted({int(i.strike) for i in chain})
    assert strikes[0] < 19550 < strikes[-1] and 19550 in strikes
    assert {i.instrument_type for i in chain} == {"CE", "PE"} and len(chain) == 2 * len(strikes)
    atm_call = b.get("NFO", "NIFTY26DEC19550CE")
    assert atm_call is not None and atm_call.segment == "NFO-OPT" and atm_call.last_price > 0
    assert atm_call.lot_size == 50 and atm_call.tick_size == Decimal("0.05")
    banknifty = {i.expiry for i in b if i.name == "BANKNIFTY" and i.instrument_type == "PE"}
    assert banknifty == {date(2026, 12, 29), date(2027, 1, 25), date(2027, 2, 23)}


def test_the_spec_contracts_stay_with_their_own_tokens() -> None:
    for on in (date(2025, 11, 3), date(2026, 11, 29), date(2027, 6, 1)):
        b = book(on)
        nifty = b.get("NFO", "NIFTY25NOVFUT")
        assert nifty is not None and nifty.instrument_token == 12602626
        bank = b.get("NFO", "BANKNIFTY25NOVFUT")
        assert bank is not None and bank.instrument_token == 12601346
        assert b.get("NSE", "INFY") is not None


def test_tokens_are_the_same_for_a_contract_on_every_day_and_unique() -> None:
    early, late = book(date(2026, 11, 29)), book(date(2026, 12, 30))
    shared = {i.key for i in early} & {i.key for i in late}
    assert any(k[1] == "NIFTY27JAN19550CE" for k in shared)
    for key in shared:
        a, b = early.get(*key), late.get(*key)
        assert a == b  # every field, the token included
    for b in (early, late):
        tokens = [i.instrument_token for i in b]
        assert len(tokens) == len(set(tokens)) and all(0 < t < 2**31 for t in tokens)
        assert all(
            i.instrument_token & 0xFF == 2 for i in b if i.exchange == "NFO" and i.expiry and i.expiry.year > 2025
        )
    again = paper_instruments(load_instruments(), date(2026, 11, 29), NO_EXTRA)
    assert again == list(early)


def test_rolling_swaps_the_list_and_keeps_the_order_checks_working() -> None:
    b = book(date(2026, 11, 29))
    assert b.get("NFO", "NIFTY26DECFUT") is not None and b.get("NFO", "NIFTY27MARFUT") is None
    assert b.roll(date(2026, 11, 29)) is False
    assert b.roll(date(2026, 12, 30)) is True
    assert b.get("NFO", "NIFTY26DECFUT") is None
    march = b.get("NFO", "NIFTY27MARFUT")
    assert march is not None and b.by_token(march.instrument_token) == march
    assert check_order(march, quantity=50, order_type="LIMIT", price=Decimal("19500.05"), trigger_price=None) == []
    problems = check_order(march, quantity=30, order_type="LIMIT", price=Decimal("19500.03"), trigger_price=None)
    assert [field for field, _ in problems] == ["quantity", "price"]


def test_filters_match_fields_and_search_text() -> None:
    b = book(date(2026, 11, 29))
    calls = [i for i in b if InstrumentFilter(name="nifty", instrument_type="ce", expiry=date(2026, 12, 29)).matches(i)]
    assert len(calls) == 21 and all(i.tradingsymbol.startswith("NIFTY26DEC") for i in calls)
    assert [i.tradingsymbol for i in b if InstrumentFilter(q="infos").matches(i)] == ["INFY"]
    assert [i.exchange for i in b if InstrumentFilter(tradingsymbol="reliance").matches(i)] == ["NSE", "BSE"]
