"""An asyncio client of Kite's ticker WebSocket: one upstream connection per account.

Why not `kiteconnect.KiteTicker` (KITE.md): its Twisted reactor is process-global and cannot be
restarted, and its ping loop has sent no pings since 2024, so a silently dead socket is never
noticed. This client judges liveness by any frame (Kite sends a 1-byte heartbeat about once a
second), reconnects with backoff and jitter, resubscribes everything after every reconnect, and
stops knocking after a 403 until the access token changes.

Outputs are pulled, not pushed: the reader only appends to two in-memory inboxes and never awaits a
consumer, so a slow consumer cannot delay heartbeat handling (and with it the silence watchdog).
`ticks()` yields batches of Kite's packets as they came (checked against Kite's layouts, never
parsed here: the service passes them on, and only what needs a value reads one) from a bounded
buffer that, when full, keeps only the latest packet per instrument (ticks are latest-value data);
`order_updates()` yields from an unbounded FIFO, because order events must never be dropped and
arrive at human rates (a few thousand a day at most). A pull
API also fits the broker protocol, whose `order_updates()` is an async iterator, and leaves the
consumer's failures with the consumer instead of a callback policy inside the client.

The access token is fetched from an async callable at every connection attempt (tokens change
daily and live in PostgreSQL). It is never logged: error texts are redacted before they are logged
or kept in `last_error`, since aiohttp puts the request URL (with the token) in its messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import random
import re
import traceback
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from datetime import datetime
from typing import Any, Final

import aiohttp
import msgspec
import structlog

from ticker_service.brokers.kite.config import KITE_TICKER_ROOT
from ticker_service.brokers.kite.ticker_messages import (
    ErrorMessage,
    MalformedMessageError,
    Notice,
    OrderUpdate,
    UnknownMessage,
    parse_text_message,
)
from ticker_service.marketdata.packets import MODES, MalformedFrameError, Mode, packet_token, split_packets
from ticker_service.timeutil import utcnow

TokenSource = Callable[[], Awaitable[str | None]]

MAX_INSTRUMENTS_PER_CONNECTION: Final = 3000  # KITE.md: 3,000 instruments per connection
_MAX_FRAME_BYTES: Final = 8 * 1024 * 1024  # 3,000 full packets are about 560 kB
_USER_AGENT: Final = "ticker-service"
_TOKEN_IN_URL = re.compile(r"(access_token=)[^&\s'\"]+")


class TickerState(enum.StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    SILENT = "silent"  # the watchdog found no frame for `silence_timeout`; reconnecting
    # handshake refused with 403 (or no token yet): waiting for a new one
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (a state's name, not a secret)
    RATE_LIMITED = "rate_limited"  # handshake refused with 429: too many connections for the API key


class TickerConfig(msgspec.Struct, frozen=True, kw_only=True):
    silence_timeout: float = 5.0  # gokiteconnect's figure; Kite's heartbeat comes about once a second
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    token_poll_interval: float = 5.0  # while the token is refused, how often to ask whether it changed
    connect_timeout: float = 10.0  # handshake, and the resubscription right after it
    close_timeout: float = 1.0  # a dead socket must not hold up the reconnect
    tick_buffer_size: int = 10_000  # ticks held before the buffer conflates to the latest per instrument
    max_instruments: int = MAX_INSTRUMENTS_PER_CONNECTION
    # Kite sends order messages on every connection of the user: a group's extra connections drop
    # theirs (the first one carries them), so no inbox fills up unread
    order_updates: bool = True

    def __post_init__(self) -> None:
        positive = ("silence_timeout", "backoff_initial", "backoff_max", "token_poll_interval", "connect_timeout")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must not be below backoff_initial")
        if self.tick_buffer_size < 1 or self.max_instruments < 1:
            raise ValueError("tick_buffer_size and max_instruments must be at least 1")

    def backoff(self, failures: int) -> float:
        """Delay before the next attempt after `failures` consecutive failures, "equal jitter": at
        least half the exponential step, so a refusing server is never hammered by a lucky draw."""
        step = min(self.backoff_max, self.backoff_initial * 2.0 ** min(failures, 32))
        return step / 2 + random.uniform(0, step / 2)


class TickerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """For health and metrics. Never carries the token."""

    state: TickerState
    last_frame_at: datetime | None
    connected_since: datetime | None
    reconnects: int  # connections opened after the first one
    last_error: str | None
    frames: int
    malformed_frames: int
    ticks_conflated: int  # ticks replaced by a newer one of the same instrument before anyone read them
    pending_ticks: int
    pending_order_updates: int
    subscriptions: int


class TickBuffer:
    """Tick packets waiting for their consumer: FIFO up to `capacity`; past it, the latest per instrument.

    Once full it compacts to one packet per instrument and from then on replaces in place, so it holds
    at most `capacity` packets plus one per subscribed instrument, and never loses an instrument's
    latest tick. Reading takes everything at once and returns it to FIFO mode.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.conflated = 0
        self._items: list[bytes] = []
        self._positions: dict[int, int] | None = None  # instrument -> index, while conflating
        self._ready = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, packet: bytes) -> None:
        if self._positions is None and len(self._items) < self.capacity:
            self._items.append(packet)
        else:
            positions = self._positions if self._positions is not None else self._compact()
            token = packet_token(packet)
            at = positions.get(token)
            if at is None:
                positions[token] = len(self._items)
                self._items.append(packet)
            else:
                self._items[at] = packet
                self.conflated += 1
        self._ready.set()

    def put_all(self, packets: list[bytes]) -> None:
        """A frame's packets; while there is room, one extend (a step of 500 instruments is one frame)."""
        if self._positions is None and len(self._items) + len(packets) <= self.capacity:
            self._items.extend(packets)
            if packets:
                self._ready.set()
            return
        for packet in packets:
            self.put(packet)

    def _compact(self) -> dict[int, int]:
        latest: dict[int, bytes] = {}
        for packet in self._items:
            latest[packet_token(packet)] = packet
        self.conflated += len(self._items) - len(latest)
        self._items = list(latest.values())
        self._positions = {token: i for i, token in enumerate(latest)}
        return self._positions

    async def get(self) -> list[bytes] | None:
        """Everything waiting (at least one packet), or None once closed and drained."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        batch, self._items, self._positions = self._items, [], None
        return batch

    def close(self) -> None:
        self._closed = True
        self._ready.set()


class OrderInbox:
    """Order updates in arrival order, never dropped; read in batches of everything waiting."""

    def __init__(self) -> None:
        self._items: deque[OrderUpdate] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, update: OrderUpdate) -> None:
        self._items.append(update)
        self._ready.set()

    async def get(self) -> list[OrderUpdate] | None:
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        batch = list(self._items)
        self._items.clear()
        return batch

    def close(self) -> None:
        self._closed = True
        self._ready.set()


class _Outcome(enum.Enum):
    FAILED = "failed"  # no connection, or one that never proved alive
    HEALTHY_ENDED = "healthy_ended"  # a connection that carried frames for a while, then ended
    TOKEN_REFUSED = "token_refused"  # noqa: S105 (an outcome's name, not a secret)


class KiteTickerClient:
    """One account's ticker connection. Use `run(stop)` in a task; read `ticks()` / `order_updates()`."""

    def __init__(
        self,
        *,
        api_key: str,
        access_token: TokenSource,
        ticker_root: str = KITE_TICKER_ROOT,
        account_id: str | None = None,
        config: TickerConfig | None = None,
    ) -> None:
        self.config = config or TickerConfig()
        self._api_key = api_key
        self._token_source = access_token
        self._root = ticker_root
        self._log = structlog.get_logger("ticker.kite.ticker").bind(account_id=account_id, ticker_root=ticker_root)
        self._desired: dict[int, Mode] = {}
        self._send_lock = asyncio.Lock()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ticks = TickBuffer(self.config.tick_buffer_size)
        self._orders = OrderInbox()
        self._token_nudge = asyncio.Event()
        self._refused_digest: bytes | None = None
        self._secret: str | None = None  # the token in use, only to redact it from error texts
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopped.set()
        self._background: set[asyncio.Task[Any]] = set()
        # status
        self._state = TickerState.DISCONNECTED
        self._last_frame_at: datetime | None = None
        self._last_frame_monotonic: float | None = None
        self._connected_since: datetime | None = None
        self._ever_connected = False
        self._reconnects = 0
        self._last_error: str | None = None
        self._frames = 0
        self._malformed = 0

    # ---- outputs -------------------------------------------------------------------------------

    async def ticks(self) -> AsyncIterator[list[bytes]]:
        """Batches of tick packets (Kite's layout), oldest first; only the latest per instrument
        survives an overflow."""
        while (batch := await self._ticks.get()) is not None:
            yield batch

    async def order_updates(self) -> AsyncIterator[list[OrderUpdate]]:
        """Batches of order updates in arrival order; ends after `close()` once drained."""
        while (batch := await self._orders.get()) is not None:
            yield batch

    def status(self) -> TickerStatus:
        return TickerStatus(
            state=self._state,
            last_frame_at=self._last_frame_at,
            connected_since=self._connected_since,
            reconnects=self._reconnects,
            last_error=self._last_error,
            frames=self._frames,
            malformed_frames=self._malformed,
            ticks_conflated=self._ticks.conflated,
            pending_ticks=len(self._ticks),
            pending_order_updates=len(self._orders),
            subscriptions=len(self._desired),
        )

    @property
    def state(self) -> TickerState:
        return self._state

    @property
    def last_frame_monotonic(self) -> float | None:
        """The event loop's clock at the last frame (for comparisons with `loop.time()`)."""
        return self._last_frame_monotonic

    @property
    def subscriptions(self) -> dict[int, Mode]:
        return dict(self._desired)

    # ---- subscriptions -------------------------------------------------------------------------

    async def subscribe(self, tokens: Iterable[int], mode: Mode | None = None) -> None:
        """Add instruments; new ones start in `quote` unless `mode` is given, known ones keep theirs.

        Sent at once when connected, and again after every reconnect.
        """
        wanted = _token_list(tokens)
        if mode is not None:
            _check_mode(mode)
        async with self._send_lock:
            new = sum(1 for t in wanted if t not in self._desired)
            if len(self._desired) + new > self.config.max_instruments:
                raise ValueError(f"a ticker connection takes at most {self.config.max_instruments} instruments")
            for token in wanted:
                self._desired[token] = mode or self._desired.get(token, "quote")
            await self._send_now(_subscription_messages({t: self._desired[t] for t in wanted}))

    async def unsubscribe(self, tokens: Iterable[int]) -> None:
        gone = _token_list(tokens)
        async with self._send_lock:
            for token in gone:
                self._desired.pop(token, None)
            if gone:
                await self._send_now([{"a": "unsubscribe", "v": gone}])

    async def set_mode(self, mode: Mode, tokens: Iterable[int]) -> None:
        """Change the mode of subscribed instruments; others are ignored (subscribe them first)."""
        _check_mode(mode)
        wanted = _token_list(tokens)
        async with self._send_lock:
            known = [t for t in wanted if t in self._desired]
            if len(known) < len(wanted):
                self._log.warning("set_mode for instruments not subscribed; ignored", count=len(wanted) - len(known))
            for token in known:
                self._desired[token] = mode
            if known:
                await self._send_now([{"a": "mode", "v": [mode, known]}])

    # ---- tokens --------------------------------------------------------------------------------

    def token_changed(self) -> None:
        """A nudge from whoever stores tokens: if the token was refused, try again now."""
        self._refused_digest = None
        self._token_nudge.set()

    # ---- life cycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the connection up until `stop` is set or `close()` is called; never raises for
        network, protocol or token trouble (that is what `status()` reports)."""
        if not self._stopped.is_set():
            raise RuntimeError("this ticker client is already running")
        if self._closing.is_set():
            raise RuntimeError("this ticker client is closed")
        self._stopped.clear()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout)
        try:
            async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": _USER_AGENT}) as session:
                main = asyncio.create_task(self._connect_forever(session), name="kite-ticker")
                stopper = asyncio.create_task(_first_of(stop, self._closing), name="kite-ticker-stop")
                try:
                    done, _ = await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if main in done:
                        main.result()
                finally:
                    for task in (main, stopper):
                        task.cancel()
                    await asyncio.gather(main, stopper, return_exceptions=True)
                    await self._settle_background()  # before the session closes the sockets under it
        finally:
            self._ws = None
            self._connected_since = None
            self._state = TickerState.DISCONNECTED
            self._stopped.set()

    async def _settle_background(self) -> None:
        """Sockets being closed may say goodbye within the close timeout; then they are cut."""
        if not self._background:
            return
        _, late = await asyncio.wait(list(self._background), timeout=2 * self.config.close_timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def close(self) -> None:
        """Stop `run` (if running) and end the output iterators once they are drained."""
        self._closing.set()
        await self._stopped.wait()
        self._ticks.close()
        self._orders.close()

    # ---- connection loop -----------------------------------------------------------------------

    async def _connect_forever(self, session: aiohttp.ClientSession) -> None:
        failures = 0
        while True:
            try:
                outcome = await self._attempt(session)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug of ours: keep the feed alive, say what happened
                self._fail(TickerState.DISCONNECTED, "ticker loop failed", exc, with_traceback=True)
                outcome = _Outcome.FAILED
            if outcome is _Outcome.TOKEN_REFUSED:
                failures = 0
                await self._wait_for_new_token()
                continue  # at once: the token is new
            if outcome is _Outcome.HEALTHY_ENDED:
                failures = 0
            delay = self.config.backoff(failures)
            if outcome is _Outcome.FAILED:
                failures += 1
            await asyncio.sleep(delay)

    async def _attempt(self, session: aiohttp.ClientSession) -> _Outcome:
        self._token_nudge.clear()  # this attempt uses the freshest token; later nudges count
        token = await self._fetch_token()
        if token is None:
            self._set_state(TickerState.TOKEN_EXPIRED, "no access token")
            self._log.warning("no access token for the ticker; waiting for one")
            return _Outcome.TOKEN_REFUSED
        if self._refused_digest == _digest(token):
            self._set_state(TickerState.TOKEN_EXPIRED, "access token refused (403)")
            return _Outcome.TOKEN_REFUSED
        self._secret = token
        self._set_state(TickerState.CONNECTING)
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                ws = await session.ws_connect(
                    self._root,
                    params={"api_key": self._api_key, "access_token": token},
                    autoping=True,
                    heartbeat=None,  # liveness comes from Kite's own heartbeats
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.config.close_timeout),
                    max_msg_size=_MAX_FRAME_BYTES,
                )
        except aiohttp.WSServerHandshakeError as exc:
            return self._handshake_refused(exc.status, token)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._fail(TickerState.DISCONNECTED, "ticker connection failed", exc)
            return _Outcome.FAILED
        try:
            return await self._serve(ws)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self._fail(TickerState.DISCONNECTED, "ticker connection lost", exc)
            return _Outcome.FAILED
        finally:
            async with self._send_lock:
                self._ws = None
            self._connected_since = None
            # in the background: a silent peer would hold up the reconnect for `close_timeout`
            self._in_background(ws.close())

    def _handshake_refused(self, status: int, token: str) -> _Outcome:
        if status == 403:
            self._refused_digest = _digest(token)
            self._set_state(TickerState.TOKEN_EXPIRED, "handshake refused: 403, access token expired or invalid")
            self._log.warning("ticker handshake refused; waiting for a new access token", status=status)
            return _Outcome.TOKEN_REFUSED
        if status == 429:
            self._set_state(TickerState.RATE_LIMITED, "handshake refused: 429, too many connections for the API key")
            self._log.warning("ticker handshake refused: too many connections; backing off", status=status)
            return _Outcome.FAILED
        self._set_state(TickerState.DISCONNECTED, f"handshake refused: {status}")
        self._log.warning("ticker handshake refused", status=status)
        return _Outcome.FAILED

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> _Outcome:
        """Resubscribe, then read until the socket closes or goes silent."""
        loop = asyncio.get_running_loop()
        opened = loop.time()
        frames_before = self._frames
        async with self._send_lock:
            async with asyncio.timeout(self.config.connect_timeout):
                for control in _subscription_messages(self._desired):
                    await ws.send_json(control)
            self._ws = ws
            subscribed = len(self._desired)
        if self._ever_connected:
            self._reconnects += 1
        self._ever_connected = True
        self._connected_since = utcnow()
        self._set_state(TickerState.CONNECTED)
        self._log.info("ticker connected", subscriptions=subscribed, reconnects=self._reconnects)

        def ending() -> _Outcome:
            alive = self._frames > frames_before and loop.time() - opened >= self.config.silence_timeout
            return _Outcome.HEALTHY_ENDED if alive else _Outcome.FAILED

        while True:
            try:
                message = await ws.receive(timeout=self.config.silence_timeout)
            except TimeoutError:
                self._set_state(TickerState.SILENT, f"no frame for {self.config.silence_timeout} s")
                self._log.warning("ticker silent; reconnecting", silence_timeout=self.config.silence_timeout)
                return ending()
            kind = message.type
            if kind is aiohttp.WSMsgType.BINARY:
                self._on_frame(message.data)
            elif kind is aiohttp.WSMsgType.TEXT:
                self._on_frame_seen()
                self._on_text(message.data)
            elif kind in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                code = ws.close_code
                self._set_state(TickerState.DISCONNECTED, f"closed by Kite (code {code})")
                self._log.warning("ticker connection closed", code=code)
                return ending()
            elif kind is aiohttp.WSMsgType.ERROR:
                self._fail(TickerState.DISCONNECTED, "ticker connection error", ws.exception())
                return ending()

    # ---- frames and messages -------------------------------------------------------------------

    def _on_frame_seen(self) -> None:
        self._frames += 1
        self._last_frame_monotonic = asyncio.get_running_loop().time()
        self._last_frame_at = utcnow()

    def _on_frame(self, frame: bytes) -> None:
        self._on_frame_seen()
        if len(frame) <= 1:  # heartbeat
            return
        try:
            packets = split_packets(frame)
        except MalformedFrameError as exc:
            self._malformed += 1
            self._log.warning("malformed ticker frame skipped", size=len(frame), reason=str(exc))
            return
        self._ticks.put_all(packets)

    def _on_text(self, text: str) -> None:
        try:
            message = parse_text_message(text)
        except MalformedMessageError as exc:
            self._log.error("malformed ticker text message skipped", reason=str(exc), size=len(text))
            return
        if isinstance(message, OrderUpdate):
            if not self.config.order_updates:
                return
            self._orders.put(message)
            if not message.typed:
                self._log.warning("order update kept untyped: unexpected field types", order_id=message.order_id)
        elif isinstance(message, ErrorMessage):
            self._last_error = f"kite: {self._redact(message.message)}"
            self._log.warning("kite ticker error message", message=self._redact(message.message))
        elif isinstance(message, Notice):
            self._log.info("kite ticker notice", data=message.data)
        elif isinstance(message, UnknownMessage):
            self._log.info("unknown ticker message ignored", type=message.type)

    # ---- sending -------------------------------------------------------------------------------

    async def _send_now(self, messages: list[dict[str, Any]]) -> None:
        """Send on the live socket, if any (caller holds the send lock). A failure is only logged:
        the desired set is already updated, and if the socket is broken, the reconnect resends it;
        if a send stalls on a live socket, the socket is closed so that the reconnect resyncs."""
        ws = self._ws
        if ws is None or ws.closed:
            return
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                for message in messages:
                    await ws.send_json(message)
        except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError) as exc:
            self._log.warning("ticker control message not sent; resubscribing on reconnect", error=self._describe(exc))
            self._in_background(ws.close())

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Tracked so that `run` cancels it on the way out; its failure is of no interest."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(_forget(self._background))

    # ---- tokens --------------------------------------------------------------------------------

    async def _fetch_token(self) -> str | None:
        try:
            token = await self._token_source()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.warning("access token lookup failed", error=self._describe(exc))
            return None
        return token or None

    async def _wait_for_new_token(self) -> None:
        """Until the token source returns a token other than the refused one, or a nudge comes."""
        refused = self._refused_digest
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.token_poll_interval):
                    await self._token_nudge.wait()
            if self._token_nudge.is_set():
                self._log.info("access token changed (nudge); reconnecting")
                return
            token = await self._fetch_token()
            if token is not None and _digest(token) != refused:
                self._refused_digest = None
                self._log.info("new access token; reconnecting")
                return

    # ---- status helpers ------------------------------------------------------------------------

    def _set_state(self, state: TickerState, error: str | None = None) -> None:
        self._state = state
        if error is not None:
            self._last_error = error

    def _fail(self, state: TickerState, event: str, exc: BaseException | None, with_traceback: bool = False) -> None:
        described = self._describe(exc) if exc is not None else "unknown error"
        self._set_state(state, described)
        if with_traceback and exc is not None:
            self._log.error(event, error=described, trace=self._redact("".join(traceback.format_exception(exc))))
        else:
            self._log.warning(event, error=described)

    def _describe(self, exc: BaseException) -> str:
        text = str(exc)
        return self._redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _redact(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return _TOKEN_IN_URL.sub(r"\1***", text)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _token_list(tokens: Iterable[int]) -> list[int]:
    out: list[int] = []
    seen: set[int] = set()
    for token in tokens:
        if isinstance(token, bool) or not isinstance(token, int) or token <= 0:
            raise ValueError(f"not an instrument token: {token!r}")
        if token not in seen:
            seen.add(token)
            out.append(token)
    return out


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown ticker mode {mode!r}: one of ltp, quote, full")


def _subscription_messages(modes: dict[int, Mode]) -> list[dict[str, Any]]:
    """Kite's control messages for these instruments: subscribe, then the mode, per mode (as KiteTicker
    resubscribes), since a subscription starts in quote."""
    by_mode: dict[Mode, list[int]] = {}
    for token, mode in modes.items():
        by_mode.setdefault(mode, []).append(token)
    messages: list[dict[str, Any]] = []
    for mode, tokens in by_mode.items():
        messages.append({"a": "subscribe", "v": tokens})
        messages.append({"a": "mode", "v": [mode, tokens]})
    return messages


def _forget(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved

    return done


async def _first_of(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
