"""Subscriptions of an account: validated against its instruments and the feed's limits, then stored.

Never a broker call: storing the row and notifying is all a request does; the account's feed holder
(on whichever instance) reads the new wants and changes the upstream subscription.
"""

from __future__ import annotations

import asyncpg

from ticker_service.marketdata.packets import Mode
from ticker_service.marketdata.subscriptions import leases, store
from ticker_service.marketdata.subscriptions.instruments import Lookup
from ticker_service.marketdata.subscriptions.limits import FeedLimits, LimitExceeded
from ticker_service.marketdata.subscriptions.schemas import SubscribeRequest, SubscriptionsView, SubscriptionView
from ticker_service.system.errors import FieldError


class SubscriptionService:
    def __init__(self, pool: asyncpg.Pool, lookup: Lookup, limits: FeedLimits, accounts: list[str]) -> None:
        self.pool = pool
        self.lookup = lookup
        self.limits = limits
        self.accounts = set(accounts)

    def _check_account(self, account_id: str) -> None:
        if account_id not in self.accounts:
            raise FieldError("account_id", f"unknown account {account_id[:64]!r}")

    async def subscribe(self, req: SubscribeRequest) -> SubscriptionsView:
        self._check_account(req.account_id)
        tokens = req.tokens
        if not tokens and not req.instruments:
            raise FieldError("instrument_token", "give one or more tokens, or `instruments`")
        found = await self.lookup.by_tokens(req.account_id, tokens) if tokens else {}
        unknown = [t for t in tokens if t not in found]
        if unknown:
            raise FieldError("instrument_token", f"unknown instrument(s) {unknown[:20]}")
        if req.instruments:
            named = await self.lookup.by_symbols(req.account_id, req.instruments)
            missing = [s for s in req.instruments if s not in named]
            if missing:
                raise FieldError("instruments", f"unknown instrument(s) {missing[:20]}")
            tokens = tokens + [i.instrument_token for i in named.values()]
        modes: dict[int, Mode] = dict.fromkeys(tokens, req.mode)
        try:
            self.limits.check(await leases.desired(self.pool, req.account_id), modes)
        except LimitExceeded as exc:
            raise FieldError("instrument_token", str(exc).removeprefix("instrument_token: ")) from None
        await store.add(self.pool, req.account_id, modes)
        return await self.list(req.account_id)

    async def list(self, account_id: str) -> SubscriptionsView:
        self._check_account(account_id)
        stored = await store.stored(self.pool, account_id)
        found = await self.lookup.by_tokens(account_id, list(stored))
        views = [
            SubscriptionView(
                instrument_token=token,
                mode=mode,
                exchange=found[token].exchange if token in found else None,
                tradingsymbol=found[token].tradingsymbol if token in found else None,
            )
            for token, mode in stored.items()
        ]
        upstream = len(await leases.desired(self.pool, account_id))
        return SubscriptionsView(account_id, views, upstream=upstream, limit=self.limits.total)

    async def unsubscribe(self, account_id: str, raw_token: str) -> SubscriptionsView:
        self._check_account(account_id)
        if not raw_token.isdigit() or len(raw_token) > 10:
            raise FieldError("instrument_token", f"not an instrument token: {raw_token[:20]!r}")
        if not await store.remove(self.pool, account_id, int(raw_token)):
            raise FieldError("instrument_token", f"{raw_token} is not subscribed", status_code=404)
        return await self.list(account_id)
