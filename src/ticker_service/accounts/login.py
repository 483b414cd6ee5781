"""One-time nonces for the broker login: `GET /accounts/{id}/login` makes one and sends the browser to
the broker with it; the callback accepts a session only with a nonce it has not seen used.

The nonce travels in Kite's `redirect_params`, which Kite appends to the app's redirect URL, so a
callback that was not started here (or is replayed) has no usable nonce and is refused: nobody can
push a session of their choosing into an account through the callback.
"""

from __future__ import annotations

import secrets

import asyncpg

NONCE_TTL_SECONDS = 600.0  # a login takes minutes at most; Kite's request token lives about as long

_NEW = "INSERT INTO login_nonces (nonce, account_id) VALUES ($1, $2)"
_USE = """
UPDATE login_nonces SET used_at = now()
WHERE nonce = $1 AND account_id = $2 AND used_at IS NULL AND created_at > now() - make_interval(secs => $3)
RETURNING nonce
"""
_FORGET = "DELETE FROM login_nonces WHERE created_at < now() - make_interval(secs => $1)"


async def new_nonce(pool: asyncpg.Pool, account_id: str) -> str:
    nonce = secrets.token_urlsafe(24)
    await pool.execute(_NEW, nonce, account_id)
    return nonce


async def use_nonce(pool: asyncpg.Pool, account_id: str, nonce: str) -> bool:
    """Spend the nonce: True once, for the account it was made for, while it is fresh."""
    return await pool.fetchval(_USE, nonce, account_id, NONCE_TTL_SECONDS) is not None


async def forget_old_nonces(pool: asyncpg.Pool) -> None:
    await pool.execute(_FORGET, NONCE_TTL_SECONDS * 2)
