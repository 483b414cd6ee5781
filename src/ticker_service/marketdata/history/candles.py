"""A candle, and how `/history` shows it (Kite's fields as an object, the date with its IST offset)."""

from __future__ import annotations

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
