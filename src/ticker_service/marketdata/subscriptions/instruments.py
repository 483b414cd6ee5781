"""Which instruments an account may subscribe: the seam to the instrument catalogue.

Subscriptions only need two lookups (by token, by `EXCHANGE:SYMBOL`), which
`marketdata.instruments.catalogue.InstrumentCatalogue` answers per account; everything else about
instruments belongs to the catalogue.
"""

from __future__ import annotations

from typing import Protocol

from ticker_service.instruments import Instrument


class Lookup(Protocol):
    async def by_tokens(self, account_id: str, tokens: list[int]) -> dict[int, Instrument]: ...

    async def by_symbols(self, account_id: str, symbols: list[str]) -> dict[str, Instrument]: ...
