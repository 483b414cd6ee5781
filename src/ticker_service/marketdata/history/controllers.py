"""`GET /history`: candles of one instrument, as objects with IST timestamps. Thin: parse, ask the service."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, TypeVar

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ticker_service.marketdata.accounts import market_account
from ticker_service.marketdata.history.service import HistoryQuery
from ticker_service.marketdata.history.timestamps import parse_timestamp
from ticker_service.runtime import Runtime
from ticker_service.system.access import Access
from ticker_service.system.errors import FieldError

T = TypeVar("T")
Timestamp = Annotated[
    str | None, QueryParameter(min_length=1, max_length=64, required=False, description="ISO 8601 or epoch seconds")
]


def _required(field: str, value: T | None) -> T:
    """A missing parameter is a field error like any other (422 naming it), not a malformed request."""
    if value is None:
        raise FieldError(field, "is required")
    return value


class HistoryController(Controller):
    path = "/history"
    tags = ["market data"]

    @get(
        "/",
        summary="Historical candles of an instrument",
        description="Candles labelled from `from_ts` to `to_ts` (both included; a naive ISO time is IST), "
        "for the account's broker: paper candles from the price model, or Kite's, fetched in Kite-sized "
        "windows and kept once closed. Intervals: minute, 3minute, 5minute, 10minute, 15minute, 30minute, "
        "60minute, day.",
        opt=Access.query(),
    )
    async def history(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        instrument_token: Annotated[int | None, QueryParameter(ge=0, le=2**32, required=False)] = None,
        from_ts: Timestamp = None,
        to_ts: Timestamp = None,
        interval: Annotated[str | None, QueryParameter(min_length=1, max_length=20, required=False)] = None,
        continuous: Annotated[bool, QueryParameter(description="Kite's continuous data (futures)")] = False,
        oi: Annotated[bool, QueryParameter(description="add open interest to each candle")] = False,
        account_id: Annotated[str, QueryParameter(min_length=1, max_length=64)] = "primary",
    ) -> dict[str, Any]:
        service = runtime.history
        account = market_account(request, account_id, service.knows(account_id))
        token = _required("instrument_token", instrument_token)
        start = parse_timestamp("from_ts", _required("from_ts", from_ts))
        end = parse_timestamp("to_ts", _required("to_ts", to_ts))
        name = _required("interval", interval)
        if end < start:
            raise FieldError("to_ts", "to_ts is before from_ts")
        query = HistoryQuery(token, name, start, end + timedelta(seconds=1), continuous, oi)
        candles = await service.candles(account, query)
        return {
            "instrument_token": token,
            "interval": name,
            "candles": [c.view(oi) for c in candles],
        }
