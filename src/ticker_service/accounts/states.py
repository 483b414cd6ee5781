"""Why an account may not trade right now, and what `GET /accounts` says of it."""

from __future__ import annotations

from enum import StrEnum


class PauseReason(StrEnum):
    """While an account has a pause, the executor claims none of its tasks (they wait, no attempt is
    spent); a task that reaches its deadline meanwhile fails, never sent."""

    NOT_LOGGED_IN = "not_logged_in"  # a Kite account without any access token yet
    TOKEN_EXPIRED = "token_expired"  # noqa: S105  # Kite refused the token (it expires daily, about 6 AM IST)
    BREAKER_OPEN = "breaker_open"  # repeated network failures: probed with a cheap read until it answers


class AccountState(StrEnum):
    ACTIVE = "active"
    NOT_LOGGED_IN = "not_logged_in"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    BREAKER_OPEN = "breaker_open"


# When several pauses hold at once, the one an operator must act on first is shown
SHOWN_FIRST = (PauseReason.NOT_LOGGED_IN, PauseReason.TOKEN_EXPIRED, PauseReason.BREAKER_OPEN)
