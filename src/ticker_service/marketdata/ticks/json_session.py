"""`/ws/ticks`: the account's ticks as JSON in Kite's tick shape, for browsers and scripts.

The API key comes as for the order stream (`X-API-Key`, or `?api_key=` for browsers). A key that may
not use the account and an account that does not exist get the same close (4404, the same words),
so the socket cannot be used to probe account names. Then the client gets `connected` (with what
it follows), the latest tick of each instrument, and every change after that:

    {"type": "ticks", "data": [{"instrument_token": 408065, "mode": "quote", "last_price": 1573.7, ...}]}

It may send KiteTicker's control messages to narrow or widen its instruments; `ping` gets `pong`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import WebSocket

from ticker_service.marketdata.ticks.client import TickClient
from ticker_service.marketdata.ticks.controls import ControlError, apply_control
from ticker_service.marketdata.ticks.entry import TickEntry
from ticker_service.marketdata.ticks.hub import TickHub
from ticker_service.marketdata.ticks.pump import refuse, run_until_first_ends, send_loop
from ticker_service.settings import Settings
from ticker_service.stream import close_codes
from ticker_service.stream.texts import receive_texts
from ticker_service.system import metrics
from ticker_service.system.access import DEFAULT_ACCOUNT, Access, Source
from ticker_service.system.auth import resolve_caller
from ticker_service.system.errors import ApiError

TICKS_ACCESS = Access(Source.QUERY, "account_id", DEFAULT_ACCOUNT, deferred=True)
_OUT = metrics.TICKS_OUT.labels(endpoint="ticks")
_encoder = msgspec.json.Encoder()


_TICKS_HEAD = b'{"type":"ticks","data":['
_TICKS_TAIL = b"]}"


def _encode(client: TickClient, batch: dict[int, TickEntry]) -> list[str | bytes]:
    """`{"type": "ticks", "data": [...]}` of the ticks' cached encodings (each tick is encoded once,
    for every socket: 100 sockets of the same 500 ticks used to encode them 100 times)."""
    wants = client.wants
    data = b",".join(entry.encoded_for(wants.get(token, entry.mode)) for token, entry in batch.items())
    return [(_TICKS_HEAD + data + _TICKS_TAIL).decode()]


def _message(kind: str, **fields: Any) -> str:
    return _encoder.encode({"type": kind, **fields}).decode()


async def serve_json_ticks(
    socket: WebSocket[Any, Any, Any], hub: TickHub, settings: Settings, account_id: str, api_key: str | None
) -> None:
    await socket.accept()
    refusal = f"account_id: no account {account_id[:64]!r} for this API key"
    try:
        caller = resolve_caller(socket, settings.api_keys, api_key)
    except ApiError as exc:
        await refuse(socket, close_codes.UNAUTHORIZED, exc.message)
        return
    if not caller.may(account_id) or account_id not in settings.accounts.brokers:
        await refuse(socket, close_codes.UNKNOWN_ACCOUNT, refusal)
        return
    try:
        client = await hub.connect(account_id, "ticks")
    except ConnectionAbortedError:
        await refuse(socket, close_codes.GOING_AWAY, "server shutting down")
        return
    try:
        following = [{"instrument_token": t, "mode": m} for t, m in client.wants.items()]
        await socket.send_text(
            _message("connected", account_id=account_id, subscriptions=following, instance_id=hub.instance_id)
        )

        async def on_text(text: str) -> None:
            if text.strip().lower() == "ping":
                await socket.send_text("pong")
                return
            try:
                await apply_control(hub, client, text)
            except ControlError as exc:
                await socket.send_text(_message("error", message=str(exc)))

        await run_until_first_ends(send_loop(socket, client, _encode, on_sent=_OUT.inc), receive_texts(socket, on_text))
    finally:
        closing = hub.closing
        hub.disconnect(client)
        if closing:
            await refuse(socket, close_codes.GOING_AWAY, "server shutting down; reconnect")
