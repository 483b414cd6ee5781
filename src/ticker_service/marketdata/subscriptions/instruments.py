"""Which instruments an account may subscribe: the seam to the instrument catalogue.

Subscriptions only need two lookups (by token, by `EXCHANGE:SYMBOL`); everything else about
instruments belongs to the catalogue.
"""

from __future__ import annotations

from typing import Protocol

from ticker_service.instruments import Instrument, InstrumentBook


class Lookup(Protocol):
    async def by_tokens(self, account_id: str, tokens: list[int]) -> dict[int, Instrument]: ...

    async def by_symbols(self, account_id: str, symbols: list[str]) -> dict[str, Instrument]: ...


class BookLookup:
    """The instrument book every account trades from (`TICKER_INSTRUMENTS_FILE`)."""

    def __init__(self, book: InstrumentBook) -> None:
        self.book = book

    async def by_tokens(self, account_id: str, tokens: list[int]) -> dict[int, Instrument]:
        return {t: found for t in tokens if (found := self.book.by_token(t)) is not None}

    async def by_symbols(self, account_id: str, symbols: list[str]) -> dict[str, Instrument]:
        out: dict[str, Instrument] = {}
        for symbol in symbols:
            exchange, _, name = symbol.partition(":")
            found = self.book.get(exchange, name) if name else None
            if found is not None:
                out[symbol] = found
        return out
