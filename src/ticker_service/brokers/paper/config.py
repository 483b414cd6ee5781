"""A paper account's settings (an entry of `TICKER_ACCOUNTS` with `"broker": "paper"`, the default)."""

from __future__ import annotations

import msgspec


class MarginRates(msgspec.Struct, forbid_unknown_fields=True):
    """Share of an order's value blocked as margin, by product."""

    CNC: float = 1.0
    MIS: float = 0.2
    NRML: float = 0.15
    MTF: float = 0.25  # margin trading in equity: the client's share of the value


class PaperAccount(msgspec.Struct, tag="paper", tag_field="broker", forbid_unknown_fields=True):
    """The simulated exchange's account: funds, margins, sessions, and fault injection for tests."""

    funds: float = 1_000_000.0
    margin: MarginRates = msgspec.field(default_factory=MarginRates)
    seed: int = 0  # the price model's seed: every process computes the same prices
    fail_rate: float = 0.0  # share of mutating calls that fail before reaching the book (safe to retry)
    latency_ms: int = 0
    lose_response_rate: float = 0.0  # share of calls that take effect but whose answer is lost
    enforce_market_hours: bool = False
    enforce_expiry: bool = False

    @property
    def broker(self) -> str:
        return "paper"

    def __post_init__(self) -> None:
        for name in ("fail_rate", "lose_response_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise msgspec.ValidationError(f"{name} must be between 0 and 1")
        if self.latency_ms < 0:
            raise msgspec.ValidationError("latency_ms must not be negative")
        if self.funds < 0:
            raise msgspec.ValidationError("funds must not be negative")
