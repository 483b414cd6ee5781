"""`GET /instruments`: an account's instruments, filtered and paged. Thin: parse, ask the catalogue."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from ticker_service.marketdata.accounts import market_account
from ticker_service.marketdata.instruments.filters import DEFAULT_LIMIT, MAX_LIMIT, InstrumentFilter
from ticker_service.marketdata.instruments.schemas import InstrumentView
from ticker_service.runtime import Runtime
from ticker_service.system.access import Access
from ticker_service.system.errors import FieldError

Text = Annotated[str | None, QueryParameter(min_length=1, max_length=100, required=False)]


def _expiry(raw: str | None) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise FieldError("expiry", f"expected a date yyyy-mm-dd, got {raw[:40]!r}") from None


class InstrumentsController(Controller):
    path = "/instruments"
    tags = ["market data"]

    @get(
        "/",
        summary="Instruments an account can trade, in Kite's instrument fields",
        description="Paper accounts: the shipped list with the current and next two monthly NIFTY and "
        "BANKNIFTY contracts. Kite accounts: Kite's instrument dump, fetched once a day. Ordered by "
        "exchange, tradingsymbol and token; `q` finds a part of the tradingsymbol or name.",
        opt=Access.query(),
    )
    async def list_instruments(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        account_id: Annotated[str, QueryParameter(min_length=1, max_length=64)] = "primary",
        exchange: Text = None,
        tradingsymbol: Text = None,
        instrument_token: Annotated[int | None, QueryParameter(ge=0, le=2**32, required=False)] = None,
        segment: Text = None,
        instrument_type: Text = None,
        expiry: Annotated[str | None, QueryParameter(max_length=40, required=False)] = None,
        name: Text = None,
        q: Text = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, QueryParameter(ge=0, le=10_000_000)] = 0,
    ) -> list[InstrumentView]:
        catalogue = runtime.catalogue
        account = market_account(request, account_id, catalogue.knows(account_id))
        filters = InstrumentFilter(
            exchange=exchange,
            tradingsymbol=tradingsymbol,
            instrument_token=instrument_token,
            segment=segment,
            instrument_type=instrument_type,
            expiry=_expiry(expiry),
            name=name,
            q=q,
        )
        return [InstrumentView.of(i) for i in await catalogue.search(account, filters, limit, offset)]
