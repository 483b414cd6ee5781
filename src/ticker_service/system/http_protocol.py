"""uvicorn's HTTP protocol with deadlines for receiving a request (slow and half-open clients).

uvicorn bounds the idle time between two requests of a connection (`timeout_keep_alive`) but not the
time a request takes to arrive: a client that sends its headers, or its body, a byte at a time holds
a connection (and the body read so far) for as long as it likes (uvicorn's issue #157 asks for
exactly these two timeouts; they do not exist yet). This subclass of its httptools protocol adds them:

* headers: from the connection's first byte (or from its opening, for a client that sends nothing)
  until the header section is complete, at most `header_timeout` seconds;
* body: from the end of the headers until the body is complete, at most `body_timeout` seconds.

When one passes before any answer was started, the client gets `408 Request Timeout` and the
connection is closed. A body deadline marks the request's scope (`CUT_OFF`) so the application's
metrics count it as 408, not as a client that went away. Answers, however long they take (a
request waiting for the broker), are not limited here. A WebSocket upgrade drops both deadlines.
"""

from __future__ import annotations

from asyncio import TimerHandle, Transport
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ticker_service.system import metrics

CUT_OFF = "ticker.cut_off"  # the scope key set when the body deadline cut a request off
_MESSAGE = b"the request did not arrive in time"
_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\nconnection: close\r\n\r\n" + _MESSAGE
)


class DeadlineProtocol(HttpToolsProtocol):
    """HttpToolsProtocol plus the two deadlines; `deadline_protocol` sets them."""

    header_timeout: float = 5.0
    body_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: TimerHandle | None = None

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if phase == "body" and cycle is not None:
            if cycle.response_complete:  # answered early (413): the rest of the body is not awaited
                self.transport.close()
                return
            if cycle.response_started:
                return  # an answer on its way is not cut
            self.scope[CUT_OFF] = True  # type: ignore[literal-required]
        metrics.SLOW_CLIENTS.labels(phase=phase).inc()
        self.transport.write(_RESPONSE)
        self.transport.close()

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the next request of a kept-alive connection begins
            self._arm(self.header_timeout, "headers")

    def on_headers_complete(self) -> None:
        self._arm(self.body_timeout, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()


def deadline_protocol(header_timeout: float, body_timeout: float) -> type[DeadlineProtocol]:
    """The protocol class for uvicorn's `http=` with these deadlines."""
    return type(
        "ConfiguredDeadlineProtocol",
        (DeadlineProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )
