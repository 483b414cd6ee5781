"""Application close codes of the order stream (4000-4999: ours; 1001 and 1011 are the protocol's).

A client reads `code` and `reason` from the close frame; every reason says what to do next.
"""

from __future__ import annotations

GOING_AWAY = 1001  # the server is shutting down: reconnect (to another instance) with since=<last seq>
INTERNAL_ERROR = 1011  # the database could not be read: reconnect with since=<last seq>
BAD_REQUEST = 4400  # `since` is not a whole number >= 0, or is beyond the account's last seq
UNAUTHORIZED = 4401  # TICKER_API_KEYS is set and no (or an unknown) key was presented
FORBIDDEN = 4403  # the key may not use this account
UNKNOWN_ACCOUNT = 4404  # no such account_id
BACKLOG_EXCEEDED = 4008  # the reader fell TICKER_WS_BACKLOG messages behind: reconnect with since=<last seq>
EVENTS_GONE = 4410  # `since` is older than the events still kept (clean-up deleted them)

MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes of UTF-8


def reason(text: str) -> str:
    """`text` cut to what a close frame can carry."""
    raw = text.encode()
    if len(raw) <= MAX_REASON_BYTES:
        return text
    return raw[: MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."
