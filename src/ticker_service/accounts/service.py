"""Account use-cases: what each account's state is, and a new day's session for it.

A session comes as an access token (checked against the broker before it is kept) or a request
token (exchanged with the api_secret), through the API or the login callback. Either way it is
refused when it belongs to another broker user than the account's configured `user_id`: nobody
may log an account into someone else's Kite user. It is then stored encrypted and announced, and
every instance uses it within seconds (`accounts.sessions`).
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
import structlog

from ticker_service.accounts import feeds, login, pauses
from ticker_service.accounts.schemas import AccountView, FeedView, SessionRequest
from ticker_service.accounts.sessions import NoSecretKey, SessionStore
from ticker_service.brokers.base import (
    Broker,
    BrokerAuthError,
    BrokerError,
    BrokerRejected,
    BrokerSession,
    LimitedBroker,
    SessionBroker,
)
from ticker_service.settings import Settings
from ticker_service.system.errors import ApiError, FieldError
from ticker_service.timeutil import rfc3339

log = structlog.get_logger("ticker.accounts")


class WrongUser(Exception):
    """The session belongs to another broker user than the account's."""


class AccountsService:
    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, brokers: Mapping[str, Broker], store: SessionStore
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.brokers = brokers
        self.store = store

    # ---- state ----------------------------------------------------------------------------------

    async def views(self, account_ids: list[str]) -> list[AccountView]:
        known = [a for a in account_ids if a in self.brokers]
        for account_id in known:
            broker = self.brokers[account_id]
            if isinstance(broker, SessionBroker):
                await broker.refresh_session()  # its pauses (not logged in, token refused) are current
        followed = await feeds.of_accounts(self.pool, known)
        every = await pauses.every_pause(self.pool)
        views = []
        for account_id in known:
            broker = self.brokers[account_id]
            state, reason = pauses.state_of([p for p in every if p.account_id == account_id])
            used, limit = await broker.orders_today() if isinstance(broker, LimitedBroker) else (None, None)
            feed = followed.get(account_id)
            views.append(
                AccountView(
                    account_id=account_id,
                    broker=self.settings.accounts.brokers[account_id].broker,
                    state=state,
                    reason=reason,
                    user_id=broker.user_id if isinstance(broker, SessionBroker) else None,
                    orders_today=used,
                    orders_daily_limit=limit,
                    feed=None
                    if feed is None
                    else FeedView(
                        state=feed["state"],
                        detail=feed["detail"],
                        instance_id=feed["instance_id"],
                        reconnects=feed["reconnects"],
                        last_frame_at=rfc3339(feed["last_frame_at"]),
                        updated_at=rfc3339(feed["updated_at"]),
                    ),
                )
            )
        return views

    async def view(self, account_id: str) -> AccountView:
        views = await self.views([account_id])
        if not views:
            raise FieldError("account_id", "unknown account")
        return views[0]

    # ---- sessions -------------------------------------------------------------------------------

    def session_broker(self, account_id: str) -> SessionBroker:
        broker = self.brokers.get(account_id)
        if broker is None:
            raise FieldError("account_id", "unknown account")
        if not isinstance(broker, SessionBroker):
            raise ApiError(
                409, f"account_id: the {self.settings.accounts.brokers[account_id].broker} broker has no sessions"
            )
        return broker

    async def set_session(self, account_id: str, req: SessionRequest) -> AccountView:
        broker = self.session_broker(account_id)
        if (req.access_token is None) == (req.request_token is None):
            raise FieldError("access_token", "give exactly one of access_token and request_token")
        if not self.store.can_store:
            raise ApiError(409, "TICKER_SECRET_KEY is not set: the service refuses to store access tokens")
        field = "access_token" if req.access_token is not None else "request_token"
        try:
            if req.access_token is not None:
                session = await broker.verify_access_token(req.access_token)
            else:
                assert req.request_token is not None
                session = await broker.exchange_request_token(req.request_token)
        except (BrokerAuthError, BrokerRejected) as exc:
            raise FieldError(field, f"the broker refused it: {exc}") from None
        except BrokerError as exc:
            raise ApiError(503, f"the broker could not be reached to check the {field}: {exc}") from None
        try:
            await self.keep(account_id, broker, session, source="api")
        except WrongUser as exc:
            raise ApiError(403, f"user_id: {exc}") from None
        return await self.view(account_id)

    async def keep(self, account_id: str, broker: SessionBroker, session: BrokerSession, *, source: str) -> None:
        expected = broker.configured_user_id
        if expected and session.user_id != expected:
            log.warning("session of another broker user refused", account_id=account_id)
            raise WrongUser("the session belongs to another broker user than the account's configured user_id")
        try:
            await self.store.save(account_id, session.access_token, user_id=session.user_id, source=source)
        except NoSecretKey as exc:
            raise ApiError(409, str(exc)) from None
        broker.session_changed()
        log.info("broker session stored", account_id=account_id, source=source, user_id=session.user_id)

    # ---- the login flow -------------------------------------------------------------------------

    async def login_url(self, account_id: str) -> str:
        broker = self.session_broker(account_id)
        if not self.store.can_store:
            raise ApiError(409, "TICKER_SECRET_KEY is not set: the service refuses to store access tokens")
        nonce = await login.new_nonce(self.pool, account_id)
        return broker.login_url(f"nonce={nonce}")

    async def callback(self, account_id: str, request_token: str | None, status: str | None, nonce: str | None) -> str:
        """Finish a login; returns what to tell the user. Raises ApiError to refuse."""
        if not nonce or not await login.use_nonce(self.pool, account_id, nonce):
            raise ApiError(401, "nonce: missing, unknown, expired or already used; start again from the login link")
        broker = self.session_broker(account_id)
        if status != "success" or not request_token:
            raise ApiError(400, f"status: the broker's login did not succeed ({status or 'no status'})")
        try:
            session = await broker.exchange_request_token(request_token)
        except BrokerError as exc:
            raise ApiError(400, f"request_token: the broker refused it: {exc}") from None
        try:
            await self.keep(account_id, broker, session, source="login")
        except WrongUser as exc:
            raise ApiError(403, f"user_id: {exc}") from None
        return f"Account {account_id} is logged in as {session.user_id or 'the broker user'}."
