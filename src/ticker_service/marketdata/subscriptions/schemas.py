"""Bodies and answers of `/subscriptions`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Mode = Literal["ltp", "quote", "full"]
AccountId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Token = Annotated[int, msgspec.Meta(gt=0, lt=2**32)]  # Kite's tokens are unsigned 32-bit on the wire


class SubscribeRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Instruments by token (one or a list), by `EXCHANGE:SYMBOL`, or both; `mode` for all of them."""

    instrument_token: Token | list[Token] | None = None
    instruments: list[Annotated[str, msgspec.Meta(min_length=3, max_length=64)]] | None = None
    mode: Mode = "quote"
    account_id: AccountId = "primary"

    @property
    def tokens(self) -> list[int]:
        if self.instrument_token is None:
            return []
        return [self.instrument_token] if isinstance(self.instrument_token, int) else list(self.instrument_token)


class SubscriptionView(msgspec.Struct):
    instrument_token: int
    mode: Mode
    exchange: str | None = None
    tradingsymbol: str | None = None


class SubscriptionsView(msgspec.Struct):
    account_id: str
    subscriptions: list[SubscriptionView]
    # what the account's upstream feed carries: the stored list and connected clients' wants, at the highest mode
    upstream: int
    limit: int
    created_at: datetime | None = None
