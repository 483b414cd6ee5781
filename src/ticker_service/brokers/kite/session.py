"""Which access token a Kite account uses now, and what happens when Kite refuses it.

The stored session (set through the API or the login, shared by every instance) wins over the
token in `TICKER_ACCOUNTS`; a token Kite refused is not used again. When Kite refuses the token in
use, the account is paused (`token_expired`) for every instance, with that token's digest; a token
with another digest, from any source, lifts the pause. An account with no token at all is paused
as `not_logged_in`. Instances re-read the store on a NOTIFY and every few seconds.
"""

from __future__ import annotations

import time

import asyncpg
import structlog

from ticker_service.accounts import pauses
from ticker_service.accounts.sessions import SessionStore, digest
from ticker_service.accounts.states import PauseReason

log = structlog.get_logger("ticker.kite")


class AccountSession:
    def __init__(
        self,
        account_id: str,
        configured_token: str | None,
        store: SessionStore,
        pool: asyncpg.Pool,
        *,
        refresh_every: float = 5.0,
    ) -> None:
        self.account_id = account_id
        self.configured_token = configured_token
        self.store = store
        self.pool = pool
        self.refresh_every = refresh_every
        self.user_id: str | None = None
        self._token: str | None = None
        self._read_at = float("-inf")

    def nudge(self) -> None:
        """The stored session changed (a NOTIFY): read it again before the next call."""
        self._read_at = float("-inf")

    async def token(self) -> str | None:
        if time.monotonic() - self._read_at >= self.refresh_every:
            await self.refresh()
        return self._token

    async def refresh(self) -> None:
        stored = await self.store.load(self.account_id)
        held = {p.reason: p for p in await pauses.of_account(self.pool, self.account_id)}
        refused = held.get(PauseReason.TOKEN_EXPIRED)
        candidates = [(stored.access_token, stored.user_id) if stored else None, (self.configured_token, None)]
        usable = [
            (token, user)
            for token, user in (c for c in candidates if c is not None)
            if token and (refused is None or digest(token) != refused.token_digest)
        ]
        self._read_at = time.monotonic()
        if usable:
            self._token, self.user_id = usable[0]
            if refused is not None:  # a different token than the one Kite refused: try it
                await pauses.resume(self.pool, self.account_id, PauseReason.TOKEN_EXPIRED)
            if PauseReason.NOT_LOGGED_IN in held:
                await pauses.resume(self.pool, self.account_id, PauseReason.NOT_LOGGED_IN)
            return
        self._token = None
        if refused is None and PauseReason.NOT_LOGGED_IN not in held:
            await pauses.pause(
                self.pool,
                self.account_id,
                PauseReason.NOT_LOGGED_IN,
                f"no access token: log in at /accounts/{self.account_id}/login "
                f"or PUT /accounts/{self.account_id}/session",
            )

    async def refused(self, token: str, message: str) -> None:
        """Kite refused `token` (TokenException, or a 403 on the ticker's handshake)."""
        if token != self._token:
            return  # an older token: the current one may be fine
        created = await pauses.pause(
            self.pool,
            self.account_id,
            PauseReason.TOKEN_EXPIRED,
            f"Kite refused the access token ({message}); it expires daily, about 6 AM IST: "
            f"log in again at /accounts/{self.account_id}/login or PUT /accounts/{self.account_id}/session",
            token_digest=digest(token),
        )
        self._token = None
        if created:
            log.error("kite session expired; the account is paused until a new token", account_id=self.account_id)
