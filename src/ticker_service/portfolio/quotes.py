"""`GET /quote` and `GET /quote/ltp`: the account's latest ticks where its feed has a fresh one, the
broker for the rest.

The tick cache (`market_ticks`, written by the account's feed holder) answers instruments the feed
carries without a call upstream: a full tick for a quote, any tick for a last price, no older than
`TICKER_QUOTE_TICK_MAX_AGE` seconds (Kite ticks only on change, so a quiet instrument falls back to a
call rather than answer with a stale price). What is left goes to the broker in one call; for Kite
that call takes its turn under Kite's 1-a-second quote limit, kept in PostgreSQL for every instance
together. Unknown instruments are left out of the answer, as Kite leaves them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import asyncpg

from ticker_service.brokers.base import Broker, BrokerError, QuoteSource
from ticker_service.instruments import Instrument
from ticker_service.market_rules import circuit_limits
from ticker_service.marketdata.instruments.catalogue import InstrumentCatalogue
from ticker_service.marketdata.packets import parse_packet
from ticker_service.marketdata.quotes import ltp_from_tick, quote_from_tick
from ticker_service.marketdata.ticks.wire import packet_mode
from ticker_service.system.errors import ApiError, FieldError

MAX_QUOTES = 500  # Kite's most instruments per quote request
MAX_LTPS = 1000  # ... per ltp request

_FRESH_TICKS = """
SELECT instrument_token, packet FROM market_ticks
WHERE account_id = $1 AND instrument_token = ANY($2::bigint[]) AND updated_at > now() - make_interval(secs => $3)
"""


def check_keys(keys: list[str], most: int) -> list[str]:
    if not keys:
        raise FieldError("i", "give at least one instrument as i=EXCHANGE:TRADINGSYMBOL")
    if len(keys) > most:
        raise FieldError("i", f"at most {most} instruments per request (Kite's limit), got {len(keys)}")
    for key in keys:
        exchange, sep, symbol = key.partition(":")
        if not sep or not exchange or not symbol:
            raise FieldError("i", f"{key[:60]!r} is not EXCHANGE:TRADINGSYMBOL (e.g. NSE:INFY)")
    return list(dict.fromkeys(keys))


class QuoteService:
    def __init__(self, pool: asyncpg.Pool, catalogue: InstrumentCatalogue, max_age: float) -> None:
        self.pool = pool
        self.catalogue = catalogue
        self.max_age = max_age

    async def _fresh(self, account_id: str, instruments: Mapping[str, Instrument]) -> dict[int, bytes]:
        tokens = list({i.instrument_token for i in instruments.values()})
        rows = await self.pool.fetch(_FRESH_TICKS, account_id, tokens, float(self.max_age))
        return {int(r["instrument_token"]): bytes(r["packet"]) for r in rows}

    async def answer(self, account_id: str, broker: Broker, keys: list[str], *, ltp: bool) -> dict[str, Any]:
        keys = check_keys(keys, MAX_LTPS if ltp else MAX_QUOTES)
        instruments = await self.catalogue.by_symbols(account_id, keys)
        cached = await self._fresh(account_id, instruments)
        out: dict[str, Any] = {}
        missing = []
        for key in keys:
            instrument = instruments.get(key)
            if instrument is None:
                continue
            packet = cached.get(instrument.instrument_token)
            if packet is not None and (ltp or packet_mode(packet) == "full"):
                tick = parse_packet(packet)
                if ltp:
                    out[key] = ltp_from_tick(tick)
                else:
                    out[key] = quote_from_tick(tick, self._circuit(account_id, instrument, tick.last_price))
            else:
                missing.append(key)
        if missing:
            if not isinstance(broker, QuoteSource):
                raise ApiError(501, "this account's broker gives no quotes")
            try:
                fetched = await (broker.last_prices(missing) if ltp else broker.quotes(missing))
            except BrokerError as exc:
                raise ApiError(503, f"the broker's quotes are unavailable: {exc}") from None
            out.update(fetched)
        return {key: out[key] for key in keys if key in out}

    def _circuit(self, account_id: str, instrument: Instrument, last: float) -> tuple[float, float] | None:
        """The paper exchange's band; a live broker's limits are not in its ticks (0 in the answer)."""
        if not self.catalogue.is_paper(account_id):
            return None
        return circuit_limits(instrument, Decimal(repr(last)))
