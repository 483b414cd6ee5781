"""The NOTIFY channels of market data, and the tick batches' payload format.

* `ticker_ticks`: `<origin> <account_id> <base64 of a Kite frame>`, sent by an account's feed
  holder; every instance's hub fans it out (`origin` names the sending process's hub, which has
  handed the ticks to its own clients already, before the database, and so only passes them on to a
  client that connected in between). A payload stays under
  PostgreSQL's 8,000-byte limit, so a flush of many ticks is several notifications in one
  transaction. Ticks are latest-value data: a lost notification is repaired by the next tick of the
  instrument, and new clients read the latest ticks from the `market_ticks` table.
* `ticker_market_wants` (payload an account id): the account's stored subscriptions or some
  instance's connected clients changed what they want; wakes the account's feed holder, and every
  hub re-reads the stored list its default clients follow.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

from ticker_service.marketdata.packets import MalformedFrameError, split_frame
from ticker_service.marketdata.ticks.wire import frames

TICKS_CHANNEL: Final = "ticker_ticks"
WANTS_CHANNEL: Final = "ticker_market_wants"
MAX_PAYLOAD: Final = 7900  # PostgreSQL refuses 8000 bytes and more


def encode_batches(origin: str, account_id: str, packets: list[bytes]) -> list[str]:
    """Payloads carrying every packet, each under `MAX_PAYLOAD` bytes. `origin` has no spaces."""
    head = f"{origin} {account_id} "
    room = (MAX_PAYLOAD - len(head.encode())) * 3 // 4  # base64 grows by 4/3
    return [head + base64.b64encode(frame).decode() for frame in frames(packets, room)]


def decode_batch(payload: str) -> tuple[str, str, list[bytes]]:
    """(origin, account id, packets); ValueError for a payload that is not one of ours."""
    origin, _, rest = payload.partition(" ")
    account_id, _, encoded = rest.rpartition(" ")
    if not origin or not account_id:
        raise ValueError("tick payload without an origin or an account")
    try:
        frame = base64.b64decode(encoded, validate=True)
        return origin, account_id, [bytes(p) for p in split_frame(frame)]
    except (binascii.Error, MalformedFrameError) as exc:
        raise ValueError(f"malformed tick payload: {exc}") from None
