"""One WebSocket of the order stream, from handshake to close.

The socket is accepted first and refused with a close code (4401, 4403, 4404, 4400) when it may
not follow the account, so that browsers, which cannot see a refused handshake's HTTP status,
still learn why. Then: `connected`, the account's events (catch-up, then live), `pong` for each
`ping`. The socket ends when the client leaves, or when its subscriber is asked to close (backlog
exceeded: 4008, shutdown: 1001, events gone: 4410, database unreadable: 1011); every such close
reason says which `since` to reconnect with.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from litestar import WebSocket

from ticker_service.settings import Settings
from ticker_service.stream import close_codes
from ticker_service.stream.hub import EventsGone, SinceAhead, StreamHub
from ticker_service.stream.messages import PONG, encode_connected, encode_error, is_ping
from ticker_service.stream.subscriber import Subscriber
from ticker_service.stream.texts import receive_texts
from ticker_service.system.access import Access, Source, authorize
from ticker_service.system.auth import resolve_caller
from ticker_service.system.errors import ApiError

log = structlog.get_logger("ticker.stream")

STREAM_ACCESS = Access(Source.PATH, "account_id", deferred=True)
CLOSE_TIMEOUT = 10.0
NORMAL_CLOSURE = 1000  # a reader that does not take our close frame by then is left to the transport


def parse_since(raw: str | None) -> int | None:
    """`?since=<seq>`: a whole number >= 0 (exclusive: events after it)."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ValueError(f"since: expected a whole number >= 0, got {raw[:40]!r}")
    return int(raw)


def _closing_reason(subscriber: Subscriber) -> str:
    if subscriber.close_reason is not None:
        return subscriber.close_reason
    since = subscriber.delivered_seq
    words = {
        close_codes.BACKLOG_EXCEEDED: "backlog limit exceeded",
        close_codes.GOING_AWAY: "server shutting down",
        close_codes.INTERNAL_ERROR: "stream unavailable",
    }.get(subscriber.close_code or 0, "closing")
    return close_codes.reason(f"{words}; reconnect with since={since}")


async def _refuse(socket: WebSocket[Any, Any, Any], code: int, text: str) -> None:
    with contextlib.suppress(Exception):
        await socket.close(code, close_codes.reason(text))


async def serve_order_stream(
    socket: WebSocket[Any, Any, Any],
    hub: StreamHub,
    settings: Settings,
    account_id: str,
    since_raw: str | None,
    api_key: str | None,
) -> None:
    await socket.accept()
    try:
        caller = resolve_caller(socket, settings.api_keys, api_key)
        # who may follow the account first, so a limited key cannot tell a real account from a made-up one
        await authorize(socket, STREAM_ACCESS, caller=caller, accounts=settings.account_ids, pool=None)
        if account_id not in settings.accounts.brokers:
            await _refuse(socket, close_codes.UNKNOWN_ACCOUNT, f"account_id: unknown account {account_id[:64]!r}")
            return
    except ApiError as exc:
        if exc.status_code == 401:
            await _refuse(socket, close_codes.UNAUTHORIZED, exc.message)
        else:  # the reason echoes the account the client put in the URL, nothing more
            await _refuse(socket, close_codes.FORBIDDEN, f"account_id: this API key may not use {account_id[:64]!r}")
        return
    try:
        since = parse_since(since_raw)
    except ValueError as exc:
        await _refuse(socket, close_codes.BAD_REQUEST, str(exc))
        return
    try:
        subscriber, tailer = await hub.subscribe(account_id, since)
    except SinceAhead as exc:
        await _refuse(socket, close_codes.BAD_REQUEST, str(exc))
        return
    except EventsGone as exc:
        await _refuse(socket, close_codes.EVENTS_GONE, str(exc))
        return
    except ConnectionAbortedError:
        await _refuse(socket, close_codes.GOING_AWAY, "server shutting down")
        return
    except Exception as exc:
        log.warning("stream subscribe failed", account_id=account_id, error=str(exc))
        await _refuse(socket, close_codes.INTERNAL_ERROR, "stream unavailable; reconnect")
        return

    tasks: list[asyncio.Task[Any]] = []
    try:
        await socket.send_text(encode_connected(account_id, subscriber.next_seq - 1, settings.server.instance_id))
        deliver = asyncio.create_task(hub.deliver(subscriber, tailer, socket.send_text))
        receive = asyncio.create_task(_answer_pings(socket))
        closing = asyncio.create_task(subscriber.closing.wait())
        tasks = [deliver, receive, closing]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if receive.done():
            return  # the client left (or the connection broke)
        if deliver.done() and subscriber.close_code is None:
            error = deliver.exception()  # sending failed: the connection is gone
            log.debug("stream send failed", account_id=account_id, error=type(error).__name__)
            return
        deliver.cancel()  # it may be blocked sending to a reader that stopped reading
        with contextlib.suppress(BaseException):
            await deliver
        if subscriber.close_code is not None:
            code, text = subscriber.close_code, _closing_reason(subscriber)
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await socket.close(code, text)
            except Exception as exc:  # a reader that stopped reading never takes the close frame
                log.info("stream close not delivered", account_id=account_id, code=code, error=type(exc).__name__)
    except Exception as exc:  # a send to a connection that is already gone
        log.debug("stream socket ended", account_id=account_id, error=type(exc).__name__)
    finally:
        subscriber.request_close(NORMAL_CLOSURE)  # no-op if already closing; ends `deliver` even if a cancel is lost
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        hub.unsubscribe(subscriber, tailer)


async def _answer_pings(socket: WebSocket[Any, Any, Any]) -> None:
    """Read the client's messages until it leaves: `ping` gets `pong`, anything else an error."""

    async def answer(text: str) -> None:
        if is_ping(text):
            await socket.send_text(PONG)
        else:
            await socket.send_text(encode_error("unknown message; send 'ping' to get 'pong'"))

    await receive_texts(socket, answer)
