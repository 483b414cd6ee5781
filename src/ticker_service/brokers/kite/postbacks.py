"""Kite's postbacks: `POST /postbacks/kite/{account_id}`, the order's new state, straight to the mirror.

Kite POSTs an order's JSON on every change of an order placed with the app's api_key. The only
authentication is the checksum, SHA-256 of order_id + order_timestamp + api_secret (KITE.md), so no
API key is asked for and a missing or wrong checksum is refused (401) before anything is read into
the service. The order then takes the same path as the ticker's messages and reconciliation
(`orders.mirror`), which records a change once however many of them report it. Kite documents no
retries and no ordering: reconciliation repairs whatever a postback misses.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import msgspec
import structlog
from litestar import Controller, Request, post
from litestar.params import FromPath

from ticker_service.brokers.base import BrokerOrder
from ticker_service.brokers.kite.config import KiteAccount
from ticker_service.brokers.kite.mapping import PSEUDO_UPDATE, to_order
from ticker_service.orders.mirror import record_orders
from ticker_service.system.access import Access
from ticker_service.system.errors import ApiError

log = structlog.get_logger("ticker.kite")


def checksum(order_id: str, order_timestamp: str, api_secret: str) -> str:
    return hashlib.sha256(f"{order_id}{order_timestamp}{api_secret}".encode()).hexdigest()


def verified(payload: Mapping[str, Any], api_secret: str) -> bool:
    given = payload.get("checksum")
    if not isinstance(given, str) or not given:
        return False
    expected = checksum(str(payload.get("order_id", "")), str(payload.get("order_timestamp", "")), api_secret)
    return hmac.compare_digest(expected, given.lower())


class PostbacksController(Controller):
    path = "/postbacks/kite"
    tags = ["kite"]

    @post(
        "/{account_id:str}",
        summary="Kite's postback of an order change (authenticated by its checksum, no API key)",
        status_code=200,
        opt=Access.signed(),
    )
    async def postback(self, request: Request[Any, Any, Any], account_id: FromPath[str]) -> dict[str, Any]:
        runtime = request.app.state.runtime
        config = runtime.settings.accounts.brokers.get(account_id)
        if not isinstance(config, KiteAccount) or not config.api_secret:
            # any other account answers as a wrong checksum does: account names cannot be probed
            raise ApiError(401, "checksum: missing or wrong")
        try:
            payload = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            raise ApiError(400, "malformed request body: expected Kite's postback JSON") from None
        if not isinstance(payload, dict) or not verified(payload, config.api_secret):
            log.warning("postback refused: bad or missing checksum", account_id=account_id)
            raise ApiError(401, "checksum: missing or wrong")
        try:
            reported = to_order(payload)
        except (KeyError, ValueError, TypeError) as exc:
            raise ApiError(422, f"postback: not an order ({type(exc).__name__})") from None
        order: BrokerOrder | None = reported
        if reported.status == PSEUDO_UPDATE:  # a modification or partial fill: the order's state is read back
            order = await runtime.brokers[account_id].current(reported.order_id)
        written = await record_orders(runtime.pool, account_id, [order]) if order is not None else 0
        return {"status": "ok", "order_id": reported.order_id, "events": written}
