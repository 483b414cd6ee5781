"""The seam for candles built from live ticks (the current session), owned by the tick stream.

Kite advises building the current session's candles from ticks rather than asking for them (a
minute candle fetched within seconds of its close can still change; KITE.md). The tick stream will
implement `FormingCandles`; `/history` already asks it for the candles it has not settled and lets
them replace what the broker gave for the same minutes. Until then the runtime plugs in
`NoFormingCandles`, so `/history` answers the unsettled part from the broker alone (Kite: fetched
again on every request, never stored; paper: read from the price model up to now).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ticker_service.marketdata.history.candles import Candle


class FormingCandles(Protocol):
    async def forming(
        self, account_id: str, instrument_token: int, interval: str, start: datetime, end: datetime
    ) -> Sequence[Candle]:
        """Candles labelled in [start, end) that this process built from the account's ticks."""
        ...


class NoFormingCandles:
    """No candles from ticks yet: the broker's answer stands (see the module's docstring)."""

    async def forming(
        self, account_id: str, instrument_token: int, interval: str, start: datetime, end: datetime
    ) -> Sequence[Candle]:
        return ()
