"""An instrument as `GET /instruments` answers it: Kite's instrument fields, as kiteconnect's
`instruments()` gives them (exchange_token a string, prices numbers), the expiry as yyyy-mm-dd."""

from __future__ import annotations

import msgspec

from ticker_service.instruments import Instrument


class InstrumentView(msgspec.Struct, frozen=True):
    instrument_token: int
    exchange_token: str
    tradingsymbol: str
    name: str
    last_price: float
    expiry: str | None
    strike: float
    tick_size: float
    lot_size: int
    instrument_type: str
    segment: str
    exchange: str

    @classmethod
    def of(cls, i: Instrument) -> InstrumentView:
        return cls(
            instrument_token=i.instrument_token,
            exchange_token=str(i.exchange_token),
            tradingsymbol=i.tradingsymbol,
            name=i.name,
            last_price=float(i.last_price),
            expiry=i.expiry.isoformat() if i.expiry else None,
            strike=float(i.strike),
            tick_size=float(i.tick_size),
            lot_size=i.lot_size,
            instrument_type=i.instrument_type,
            segment=i.segment,
            exchange=i.exchange,
        )
