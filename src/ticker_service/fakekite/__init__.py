"""A fake Kite Connect server for tests: Kite's REST shapes, login, ticker WebSocket and postbacks,
driven through the real `kiteconnect` client, with switches for the failures that matter.

    async with FakeKite(api_key="k", api_secret="s") as fake:
        kite = KiteConnect("k", access_token=fake.issue_access_token(), root=fake.url)
        order_id = await asyncio.to_thread(kite.place_order, ...)

Run as a process with `python -m ticker_service.fakekite --port N --api-key K --api-secret S`.
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
