"""The pieces `/history` is built from: ranges and windows, timestamps, sessions and settling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ticker_service.marketdata.history.intervals import INTERVALS, estimated_candles, periods, settled_before
from ticker_service.marketdata.history.timestamps import parse_timestamp
from ticker_service.marketdata.history.windows import split, subtract
from ticker_service.system.errors import FieldError
from ticker_service.timeutil import IST

T0 = datetime(2026, 1, 1, tzinfo=IST)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def test_subtract_leaves_the_gaps_in_order() -> None:
    assert subtract((at(0), at(10)), []) == [(at(0), at(10))]
    assert subtract((at(0), at(10)), [(at(-5), at(20))]) == []
    assert subtract((at(0), at(10)), [(at(2), at(3)), (at(5), at(7)), (at(6), at(8))]) == [
        (at(0), at(2)),
        (at(3), at(5)),
        (at(8), at(10)),
    ]
    assert subtract((at(0), at(10)), [(at(-1), at(0)), (at(10), at(11))]) == [(at(0), at(10))]


def test_split_cuts_back_to_back_windows_of_at_most_the_limit() -> None:
    windows = split((at(0), at(200)), 60)
    assert windows == [(at(0), at(60)), (at(60), at(120)), (at(120), at(180)), (at(180), at(200))]
    assert split((at(0), at(60)), 60) == [(at(0), at(60))]
    assert len(split((at(0), at(2001)), INTERVALS["day"].max_days)) == 2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-23", datetime(2026, 11, 23, tzinfo=IST)),
        ("2026-11-23 09:15:00", datetime(2026, 11, 23, 9, 15, tzinfo=IST)),
        ("2026-11-23T03:45:00Z", datetime(2026, 11, 23, 9, 15, tzinfo=IST)),
        ("2026-11-23T09:15:00+05:30", datetime(2026, 11, 23, 9, 15, tzinfo=IST)),
        ("1795405500", datetime(2026, 11, 23, 3, 45, tzinfo=UTC)),
        ("1795405500.5", datetime(2026, 11, 23, 3, 45, 0, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_are_iso_or_epoch_and_naive_ones_are_ist(raw: str, expected: datetime) -> None:
    assert parse_timestamp("from_ts", raw) == expected


@pytest.mark.parametrize("raw", ["", "today", "23/11/2026", "2026-02-30", "1e9", "99999999999999", "0001-01-01"])
def test_a_malformed_timestamp_names_its_field(raw: str) -> None:
    with pytest.raises(FieldError) as caught:
        parse_timestamp("to_ts", raw)
    assert caught.value.field == "to_ts"


def test_sessions_hold_kites_grid() -> None:
    monday = datetime(2026, 11, 23, tzinfo=IST)
    week = monday + timedelta(days=7)
    assert len(list(periods(INTERVALS["minute"], monday, monday + timedelta(days=1)))) == 375
    assert len(list(periods(INTERVALS["day"], monday, week))) == 5
    thirty = list(periods(INTERVALS["30minute"], monday, monday + timedelta(days=1)))
    assert len(thirty) == 13 and thirty[-1].closes - thirty[-1].opens == timedelta(minutes=15)
    for interval in INTERVALS.values():
        assert estimated_candles(interval, monday, week) >= len(list(periods(interval, monday, week)))


def test_only_closed_candles_are_settled() -> None:
    now = datetime(2026, 11, 23, 10, 0, 30, tzinfo=IST)
    minute = settled_before(INTERVALS["minute"], now)
    assert datetime(2026, 11, 23, 9, 58, tzinfo=IST) < minute < datetime(2026, 11, 23, 9, 59, tzinfo=IST)
    assert settled_before(INTERVALS["day"], now) == datetime(2026, 11, 23, tzinfo=IST)
