"""What `GET /instruments` and `InstrumentCatalogue.search` filter on, for a list in memory (paper)
and for the stored dump (SQL); both apply the same rules, so an account answers alike whichever."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ticker_service.instruments import Instrument

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class InstrumentFilter:
    """Exact matches (exchange, segment, instrument_type and tradingsymbol ignore case; so does name),
    and `q`: a case-insensitive part of the tradingsymbol or the name. Unset fields match anything."""

    exchange: str | None = None
    tradingsymbol: str | None = None
    instrument_token: int | None = None
    segment: str | None = None
    instrument_type: str | None = None
    expiry: date | None = None
    name: str | None = None
    q: str | None = None

    def _exact(self) -> list[tuple[str, object]]:
        """(column, wanted value) of the exact filters, text upper-cased as Kite spells them."""
        pairs: list[tuple[str, object | None]] = [
            ("exchange", self.exchange and self.exchange.upper()),
            ("tradingsymbol", self.tradingsymbol and self.tradingsymbol.upper()),
            ("instrument_token", self.instrument_token),
            ("segment", self.segment and self.segment.upper()),
            ("instrument_type", self.instrument_type and self.instrument_type.upper()),
            ("expiry", self.expiry),
        ]
        return [(column, value) for column, value in pairs if value is not None]

    def matches(self, instrument: Instrument) -> bool:
        for column, value in self._exact():
            if getattr(instrument, column) != value:
                return False
        if self.name is not None and instrument.name.upper() != self.name.upper():
            return False
        if self.q:
            needle = self.q.upper()
            return needle in instrument.tradingsymbol.upper() or needle in instrument.name.upper()
        return True

    def where(self, first: int) -> tuple[str, list[object]]:
        """An SQL condition on the `instruments` table with `$first, $first+1, ...` parameters."""
        clauses: list[str] = []
        args: list[object] = []
        for column, value in self._exact():
            args.append(value)
            clauses.append(f"{column} = ${first + len(args) - 1}")
        if self.name is not None:
            args.append(self.name.upper())
            clauses.append(f"upper(name) = ${first + len(args) - 1}")
        if self.q:
            escaped = self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
            n = first + len(args) - 1
            clauses.append(f"(tradingsymbol ILIKE ${n} OR name ILIKE ${n})")
        return (" AND ".join(clauses) or "TRUE"), args


def sort_key(instrument: Instrument) -> tuple[str, str, int]:
    """The order of every listing: exchange, symbol, token (the SQL orders the same way)."""
    return (instrument.exchange, instrument.tradingsymbol, instrument.instrument_token)


ORDER_BY = 'exchange COLLATE "C", tradingsymbol COLLATE "C", instrument_token'
