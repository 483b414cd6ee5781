"""Broker sessions: each account's current access token, encrypted at rest, shared by every instance.

Kite's access token changes every day. It arrives through `PUT /accounts/{id}/session` or the login
callback on any instance, is stored here encrypted with `TICKER_SECRET_KEY` (Fernet, from the
`cryptography` package) and announced on a NOTIFY channel, so every instance uses it within
seconds and it survives restarts. The token is never logged, never in an answer, never in a
metric: only its SHA-256 digest is compared and recorded (which token a pause is about).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import asyncpg
from cryptography.fernet import Fernet, InvalidToken

from ticker_service.accounts import pauses
from ticker_service.accounts.states import PauseReason

SESSIONS_CHANNEL = "ticker_sessions"  # payload: the account id whose session changed

_SAVE = f"""
WITH saved AS (
    INSERT INTO broker_sessions (account_id, access_token, token_digest, user_id, source, created_at)
    VALUES ($1, $2, $3, $4, $5, now())
    ON CONFLICT (account_id) DO UPDATE SET access_token = EXCLUDED.access_token,
        token_digest = EXCLUDED.token_digest, user_id = EXCLUDED.user_id, source = EXCLUDED.source,
        created_at = EXCLUDED.created_at
    RETURNING account_id
)
SELECT pg_notify('{SESSIONS_CHANNEL}', account_id) FROM saved
"""
_LOAD = "SELECT access_token, token_digest, user_id, source, created_at FROM broker_sessions WHERE account_id = $1"


class NoSecretKey(Exception):
    """TICKER_SECRET_KEY is not set: tokens are not stored in clear, so they are not stored at all."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredSession:
    access_token: str
    token_digest: str
    user_id: str | None
    source: str


class SessionStore:
    def __init__(self, pool: asyncpg.Pool, secret_key: str | None) -> None:
        self.pool = pool
        self._fernet = Fernet(secret_key.encode()) if secret_key else None

    @property
    def can_store(self) -> bool:
        return self._fernet is not None

    async def save(self, account_id: str, access_token: str, *, user_id: str | None, source: str) -> None:
        """Store the account's new token and lift its session pauses, in one transaction."""
        if self._fernet is None:
            raise NoSecretKey("TICKER_SECRET_KEY is not set: the service refuses to store access tokens")
        sealed = self._fernet.encrypt(access_token.encode()).decode()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_SAVE, account_id, sealed, digest(access_token), user_id, source)
            await pauses.resume(conn, account_id, PauseReason.TOKEN_EXPIRED, PauseReason.NOT_LOGGED_IN)

    async def load(self, account_id: str) -> StoredSession | None:
        row = await self.pool.fetchrow(_LOAD, account_id)
        if row is None or self._fernet is None:
            return None
        try:
            token = self._fernet.decrypt(row["access_token"].encode()).decode()
        except InvalidToken:  # stored under another key: as good as absent, and said so in the state
            return None
        return StoredSession(token, row["token_digest"], row["user_id"], row["source"])
