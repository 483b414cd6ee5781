"""`from_ts` and `to_ts`: ISO 8601 (a naive one is IST, as Kite's are; a bare date is its midnight IST)
or epoch seconds. A malformed one is the client's error, named by its field."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ticker_service.system.errors import FieldError
from ticker_service.timeutil import IST

_EPOCH = re.compile(r"^-?\d{1,12}(\.\d{1,9})?$")
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def parse_timestamp(field: str, raw: str) -> datetime:
    text = raw.strip()
    try:
        if _EPOCH.match(text):
            moment = datetime.fromtimestamp(float(text), UTC)
        else:
            moment = datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=IST)
    except (ValueError, OverflowError, OSError):
        raise FieldError(field, f"expected an ISO 8601 timestamp or epoch seconds, got {raw[:60]!r}") from None
    if not EARLIEST <= moment <= LATEST:
        raise FieldError(field, f"{raw[:60]!r} is outside {EARLIEST.year} to {LATEST.year}")
    return moment
