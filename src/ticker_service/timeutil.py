"""Time helpers: the service's timestamps are RFC 3339 UTC; Kite's naive ones are Asia/Kolkata."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime | None) -> str | None:
    """`2025-10-31T09:15:30.123Z`: UTC with milliseconds, as the spec's examples show."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=IST)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def today_ist() -> date:
    """Today in Asia/Kolkata: the exchange's day (contracts roll, sessions open by it)."""
    return datetime.now(IST).date()
