"""A Kite Connect account's settings (an entry of `TICKER_ACCOUNTS` with `"broker": "kite"`)."""

from __future__ import annotations

import msgspec

KITE_ROOT = "https://api.kite.trade"
KITE_TICKER_ROOT = "wss://ws.kite.trade"
KITE_LOGIN_URL = "https://kite.zerodha.com/connect/login"


class KiteAccount(msgspec.Struct, tag="kite", tag_field="broker", forbid_unknown_fields=True):
    """The app's credentials; the day's access token may also come later, through the API or the login."""

    api_key: str
    api_secret: str | None = None
    access_token: str | None = None
    user_id: str | None = None  # when set, a session of any other Kite user is refused
    root: str = KITE_ROOT  # tests point the real kiteconnect client at a local fake
    ticker_root: str = KITE_TICKER_ROOT
    login_url: str = KITE_LOGIN_URL
    threads: int = 8  # calls in flight at once for this account (a thread pool, and as many connections)

    @property
    def broker(self) -> str:
        return "kite"

    def __post_init__(self) -> None:
        if not self.api_key:
            raise msgspec.ValidationError("api_key must not be empty")
        if not 1 <= self.threads <= 64:
            raise msgspec.ValidationError("threads must be between 1 and 64")
