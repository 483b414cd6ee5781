"""Account requests and answers (msgspec). No answer ever carries a token, a secret or an API key."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

Token = Annotated[str, Meta(min_length=8, max_length=512)]


class SessionRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The day's session: an access token, or a request token the service exchanges (needs api_secret)."""

    access_token: Token | None = None
    request_token: Token | None = None


class FeedView(msgspec.Struct, kw_only=True):
    state: str  # connecting | connected | silent | token_expired | rate_limited | disconnected
    detail: str | None
    instance_id: str | None
    reconnects: int
    last_frame_at: str | None
    updated_at: str | None


class AccountView(msgspec.Struct, kw_only=True):
    account_id: str
    broker: str
    state: str  # active | not_logged_in | token_expired | breaker_open
    reason: str | None
    user_id: str | None = None
    orders_today: int | None = None  # sent to the broker today, against its daily limit
    orders_daily_limit: int | None = None
    feed: FeedView | None = None
