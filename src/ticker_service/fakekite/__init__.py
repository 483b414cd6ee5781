"""A fake Kite Connect server for tests: Kite's REST shapes, login, ticker WebSocket and postbacks, driven
through the real `kiteconnect` clients, with switches for the failures an order gateway must survive.

    async with FakeKite(api_key="k", api_secret="s") as fake:       # a free loopback port
        kite = KiteConnect("k", access_token=fake.issue_access_token(), root=fake.url)
        order_id = await asyncio.to_thread(kite.place_order, ...)    # the fake answers on this loop
        ticker = KiteTicker("k", token, root=fake.ticker_url)        # in another process (Twisted)

Market: `set_price(exchange, symbol, price)` (held until `release_price`), `advance_prices()`,
`set_tick_interval(seconds | None)`. Orders: `fill(order_id, price=None, quantity=None)`,
`cancel_by_exchange(order_id)`, `place_external(...)`, `orders`, `order(...)`, `trades`. Sessions:
`login()` (a request token), `issue_access_token()`, `expire_token()`.

Switches, each for the next `n` requests whose route name (kiteconnect's `_routes` names; a pattern
such as `order.*`) matches: `lose_next` (takes effect, no answer: closed or held past the client's
timeout), `drop_next` (closed before it takes effect), `rate_limit_next` (429), `fail_next` (any Kite
error), `reject_next` (accepted, then REJECTED by RMS); and `set_latency(ms, route)`,
`set_allowed_ips(ips)` (403 on order routes from other IPs), `stop_listening()`/`start_listening()`,
`ticker_silence()`, `ticker_disconnect_all()`, `ticker_send_error()`, `corrupt_postback_checksum()`.

Observation: `requests` (every request with its form, headers and arrival times),
`max_requests_in_window(route, window)`, `ticker_stats`, `postbacks_sent`.

Run as a process with `python -m ticker_service.fakekite --port N --api-key K --api-secret S`, and drive
it over HTTP under `/_fake/` (see `ticker_service.fakekite.control`).
"""

from ticker_service.fakekite.instruments import BUILTIN_INSTRUMENTS, FakeInstrument
from ticker_service.fakekite.packets import DepthLevel, Tick, pack_frame, pack_packet
from ticker_service.fakekite.portfolio import Holding
from ticker_service.fakekite.postbacks import SentPostback, postback_checksum
from ticker_service.fakekite.requestlog import RecordedRequest, max_in_window
from ticker_service.fakekite.server import FakeKite
from ticker_service.fakekite.ticker import TickerStats

__all__ = [
    "BUILTIN_INSTRUMENTS",
    "DepthLevel",
    "FakeInstrument",
    "FakeKite",
    "Holding",
    "RecordedRequest",
    "SentPostback",
    "Tick",
    "TickerStats",
    "max_in_window",
    "pack_frame",
    "pack_packet",
    "postback_checksum",
]
