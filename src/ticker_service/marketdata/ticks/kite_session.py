"""`/ws/kite`: Kite's own ticker protocol, so a `kiteconnect.KiteTicker` strategy connects by changing
only its `root` (`KiteTicker(api_key, access_token, root="ws://host:8080/ws/kite")`).

Binary frames exactly as Kite packs them (each packet cut to the client's mode), Kite's 1-byte
heartbeat when there is nothing else to send for a second, Kite's text error messages, and Kite's
control messages. Like Kite, a client starts with no instruments and a new subscription is in
`quote`. Every client shares the account's one upstream feed.

Order updates come as Kite sends them on its ticker, `{"type": "order", "data": {...}}`, which
KiteTicker hands to `on_order_update`: every order event of the account from the moment the socket
opened (the order stream's own, so any instance's orders, and paper orders too), its `data` the
event as the order stream carries it (Kite's order fields, plus the service's `event`, `task_id`
and the client's `tag`). Like Kite's, the socket has no replay: a client that falls too far behind
(`TICKER_WS_BACKLOG` events) is closed, and KiteTicker reconnects; the order stream with `since`,
or webhooks, is where nothing is ever missed.

KiteTicker puts `api_key` and `access_token` in the URL. Either the account's own Kite api_key
with its current access token, or an account id as `api_key` with a service API key that may use
it as `access_token` (paper accounts, and strategies that should not hold Kite credentials).
Anything else is refused at the handshake with 403, as Kite refuses a bad session, whatever the
reason, so nothing can be probed.
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec
from litestar import WebSocket

from ticker_service.brokers.base import Broker, TickCarrier
from ticker_service.marketdata.ticks.client import TickClient
from ticker_service.marketdata.ticks.controls import ControlError, apply_control
from ticker_service.marketdata.ticks.entry import TickEntry
from ticker_service.marketdata.ticks.hub import TickHub
from ticker_service.marketdata.ticks.pump import refuse, run_until_first_ends, send_loop
from ticker_service.marketdata.ticks.wire import HEARTBEAT, frames
from ticker_service.settings import Settings
from ticker_service.stream import close_codes
from ticker_service.stream.hub import StreamHub
from ticker_service.stream.texts import receive_texts
from ticker_service.system import metrics
from ticker_service.system.access import Access, Source

KITE_ACCESS = Access(Source.SIGNED, "api_key", deferred=True)  # the URL's own credentials, checked below
HEARTBEAT_EVERY = 1.0
MAX_FRAME_BYTES = 1 << 20
_OUT = metrics.TICKS_OUT.labels(endpoint="kite")
_POLICY_VIOLATION = 1008


def _encode(client: TickClient, batch: dict[int, TickEntry]) -> list[str | bytes]:
    wants = client.wants
    packets = [entry.packet_for(wants.get(token, entry.mode)) for token, entry in batch.items()]
    return list(frames(packets, MAX_FRAME_BYTES))


class _StreamMessage(msgspec.Struct):
    type: str
    data: msgspec.Raw = msgspec.Raw(b"null")


class _EventName(msgspec.Struct):
    event: str = ""


_stream_message = msgspec.json.Decoder(_StreamMessage)
_event_name = msgspec.json.Decoder(_EventName)


def order_message(stream_message: str) -> str | None:
    """An order stream message as Kite's ticker order message; None for what is not an order event
    (task status events). The event's JSON is passed through as it is, never re-encoded."""
    message = _stream_message.decode(stream_message)
    if message.type != "order_update":
        return None
    data = bytes(message.data)
    if not _event_name.decode(data).event.startswith("order_"):
        return None
    return '{"type":"order","data":' + data.decode() + "}"


async def send_orders(socket: WebSocket[Any, Any, Any], stream: StreamHub, account_id: str) -> None:
    """The account's order events from now on, until the stream asks this socket to close."""
    subscriber, tailer = await stream.subscribe(account_id, None)
    try:

        async def send(message: str) -> None:
            text = order_message(message)
            if text is not None:
                await socket.send_text(text)

        await stream.deliver(subscriber, tailer, send)
    finally:
        stream.unsubscribe(subscriber, tailer)


def _error(text: str) -> str:
    return msgspec.json.encode({"type": "error", "data": text}).decode()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


async def account_of(
    brokers: dict[str, Broker], api_keys: dict[str, list[str]] | None, api_key: str, access_token: str
) -> str | None:
    """The account these URL credentials open, or None."""
    if not api_key or not access_token:
        return None
    for account_id, broker in brokers.items():
        if isinstance(broker, TickCarrier) and await broker.owns_ticker_credentials(api_key, access_token):
            return account_id
    if api_key in brokers:
        if api_keys is None:
            return api_key  # no API keys configured: the service is open (loopback only)
        for key, allowed in api_keys.items():
            if _same(key, access_token) and ("*" in allowed or api_key in allowed):
                return api_key
    return None


async def serve_kite_ticks(
    socket: WebSocket[Any, Any, Any],
    hub: TickHub,
    stream: StreamHub,
    settings: Settings,
    brokers: dict[str, Broker],
    api_key: str,
    access_token: str,
) -> None:
    account_id = await account_of(brokers, settings.api_keys, api_key, access_token)
    if account_id is None:
        await socket.close(_POLICY_VIOLATION)  # before accepting: the server answers the handshake 403
        return
    await socket.accept()
    try:
        client = await hub.connect(account_id, "kite", follow_stored=False)
    except ConnectionAbortedError:
        await refuse(socket, close_codes.GOING_AWAY, "server shutting down")
        return
    try:

        async def on_text(text: str) -> None:
            try:
                await apply_control(hub, client, text)
            except ControlError as exc:
                await socket.send_text(_error(str(exc)))

        await run_until_first_ends(
            send_loop(socket, client, _encode, idle=HEARTBEAT_EVERY, idle_message=HEARTBEAT, on_sent=_OUT.inc),
            receive_texts(socket, on_text),
            send_orders(socket, stream, account_id),
        )
    finally:
        closing = hub.closing
        hub.disconnect(client)
        if closing:
            await refuse(socket, close_codes.GOING_AWAY, "server shutting down")
