"""One answer to "which instrument is this?" for every account, whatever its broker.

Paper accounts read the rolled paper list in memory (`paper_list`); accounts whose broker lists its
instruments (Kite) read that broker's dump from PostgreSQL (`store`), fetched once a day for every
instance (`refresh`). Subscriptions, ticks, `/instruments`, `/history` and the order intake's
checks all ask here, so a token and a symbol mean the same contract everywhere in the service.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import asyncpg
import structlog

from ticker_service.instruments import Instrument, InstrumentBook, ListingUnavailable
from ticker_service.marketdata.instruments import store
from ticker_service.marketdata.instruments.filters import InstrumentFilter, sort_key
from ticker_service.marketdata.instruments.refresh import DumpSource, refresh_dump

__all__ = [
    "Instrument",
    "InstrumentCatalogue",
    "InstrumentFilter",
    "ListingUnavailable",
    "UnknownAccount",
    "split_symbol",
]

log = structlog.get_logger("ticker.marketdata")

LOOKUP_TTL = 600.0  # seconds an order intake's answer is kept (the dump changes once a day)
MISS_TTL = 60.0  # ... and an instrument's absence (a contract listed by today's refresh shows soon)


class UnknownAccount(LookupError):
    """No such account, or its broker lists no instruments."""


def split_symbol(key: str) -> tuple[str, str] | None:
    """`"NSE:INFY"` -> `("NSE", "INFY")`; None when it is not of that shape."""
    exchange, sep, tradingsymbol = key.partition(":")
    return (exchange, tradingsymbol) if sep and exchange and tradingsymbol else None


class InstrumentCatalogue:
    """Built once per runtime (`runtime.catalogue`)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        paper: InstrumentBook,
        paper_accounts: Sequence[str],
        dump_sources: Mapping[str, DumpSource],
    ) -> None:
        self.pool = pool
        self.paper = paper
        self.paper_accounts = frozenset(paper_accounts)
        self.dump_sources = dict(dump_sources)
        self._stored: set[str] = set()  # accounts whose dump this process has seen stored
        self._looked_up: dict[tuple[str, str, str], tuple[float, Instrument | None]] = {}

    def is_paper(self, account_id: str) -> bool:
        return account_id in self.paper_accounts

    def knows(self, account_id: str) -> bool:
        return account_id in self.paper_accounts or account_id in self.dump_sources

    async def _dumped(self, account_id: str) -> str:
        """The account of a stored dump, fetched first if no instance ever stored one."""
        source = self.dump_sources.get(account_id)
        if source is None:
            raise UnknownAccount(account_id)
        if account_id not in self._stored:
            if await store.fetched_at(self.pool, account_id) is None:
                await refresh_dump(self.pool, account_id, source, only_if_missing=True)
            self._stored.add(account_id)
        return account_id

    async def by_tokens(self, account_id: str, tokens: Sequence[int]) -> dict[int, Instrument]:
        """The instruments of these tokens that the account's broker lists; unknown tokens are absent."""
        if self.is_paper(account_id):
            found = (self.paper.by_token(t) for t in tokens)
            return {i.instrument_token: i for i in found if i is not None}
        return await store.by_tokens(self.pool, await self._dumped(account_id), tokens)

    async def by_symbols(self, account_id: str, symbols: Sequence[str]) -> dict[str, Instrument]:
        """The instruments of these `"EXCHANGE:TRADINGSYMBOL"` keys, by key; unknown keys are absent."""
        keys = {s: k for s in symbols if (k := split_symbol(s)) is not None}
        if self.is_paper(account_id):
            found = {s: self.paper.get(*k) for s, k in keys.items()}
            return {s: i for s, i in found.items() if i is not None}
        stored = await store.by_keys(self.pool, await self._dumped(account_id), list(set(keys.values())))
        return {s: stored[k] for s, k in keys.items() if k in stored}

    async def lookup(self, account_id: str, exchange: str, tradingsymbol: str) -> Instrument | None:
        """The instrument an order names, or None when the account's broker does not list it; for
        the order intake, so answers are kept a while in this process (orders repeat symbols).
        `ListingUnavailable` when a broker's list was never stored and cannot be fetched now."""
        if self.is_paper(account_id):
            return self.paper.get(exchange, tradingsymbol)
        key = (account_id, exchange, tradingsymbol)
        now = time.monotonic()
        kept = self._looked_up.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        try:
            dumped = await self._dumped(account_id)
        except UnknownAccount:
            raise
        except Exception as exc:  # Kite down or the session dead, before any instance stored a list
            log.warning("no instrument list to check an order against", account_id=account_id, error=repr(exc))
            raise ListingUnavailable(account_id) from exc
        found = (await store.by_keys(self.pool, dumped, [(exchange, tradingsymbol)])).get((exchange, tradingsymbol))
        if len(self._looked_up) > 10_000:
            self._looked_up.clear()
        self._looked_up[key] = (now + (LOOKUP_TTL if found is not None else MISS_TTL), found)
        return found

    async def search(self, account_id: str, filters: InstrumentFilter, limit: int, offset: int) -> list[Instrument]:
        """The instruments matching `filters`, ordered by exchange, symbol and token, one page."""
        if self.is_paper(account_id):
            matching = sorted((i for i in self.paper if filters.matches(i)), key=sort_key)
            return matching[offset : offset + limit]
        return await store.search(self.pool, await self._dumped(account_id), filters, limit, offset)
