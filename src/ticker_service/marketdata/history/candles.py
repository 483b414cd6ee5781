"""A candle, and how `/history` shows it (Kite's fields as an object, the date with its IST offset;
the still-forming candle adds `"forming": true`, closed ones carry no such field)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ticker_service.timeutil import IST


@dataclass(frozen=True, slots=True)
class Candle:
    date: datetime  # the label: the candle's start (a day candle: midnight IST), timezone-aware
    open: float
    high: float
    low: float
    close: float
    volume: int
    oi: int | None = None
    forming: bool = False  # the period holding now: its values still change (closed candles: no field)

    def view(self, with_oi: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "date": self.date.astimezone(IST).isoformat(),
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
        }
        if with_oi:
            out["oi"] = self.oi or 0
        if self.forming:
            out["forming"] = True
        return out


def from_kite(record: dict[str, Any]) -> Candle:
    """One candle of kiteconnect's `historical_data()` (its date parsed, with Kite's +05:30)."""
    moment = record["date"]
    if not isinstance(moment, datetime):
        moment = datetime.fromisoformat(str(moment))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=IST)
    oi = record.get("oi")
    return Candle(
        date=moment,
        open=float(record["open"]),
        high=float(record["high"]),
        low=float(record["low"]),
        close=float(record["close"]),
        volume=int(record["volume"]),
        oi=None if oi is None else int(oi),
    )


def aggregate(candles: Iterable[Candle], label: Callable[[datetime], datetime]) -> list[Candle]:
    """Candles in time order merged by `label` (a period's label for a candle's date): first open, last
    close, extremes, summed volume, the last open interest known."""
    out: list[Candle] = []
    group: list[Candle] = []
    current: datetime | None = None

    def close_group() -> None:
        if group and current is not None:
            ois = [c.oi for c in group if c.oi is not None]
            out.append(
                Candle(
                    current,
                    group[0].open,
                    max(c.high for c in group),
                    min(c.low for c in group),
                    group[-1].close,
                    sum(c.volume for c in group),
                    ois[-1] if ois else None,
                )
            )

    for candle in candles:
        key = label(candle.date)
        if key != current:
            close_group()
            group, current = [], key
        group.append(candle)
    close_group()
    return out
