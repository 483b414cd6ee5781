"""The NOTIFY channels of market data, and the tick batches' payload format.

* `ticker_ticks`: `<origin> <since> <account_id> <base64 of a Kite frame>`, sent by an account's
  feed holder; every instance's hub fans it out. `origin` names the sending process's hub, which has
  handed the ticks to its own clients already, before the database, and `since` is when (that
  process's monotonic clock) it handed over the first of them: its hub passes them on only when the
  account's clients there are newer than that (one connected in between), and otherwise does not
  even decode them. A payload stays under
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
from typing import Final, NamedTuple

from ticker_service.marketdata.packets import MalformedFrameError, split_packets
from ticker_service.marketdata.ticks.wire import frames

TICKS_CHANNEL: Final = "ticker_ticks"
WANTS_CHANNEL: Final = "ticker_market_wants"
MAX_PAYLOAD: Final = 7900  # PostgreSQL refuses 8000 bytes and more


class TickNotice(NamedTuple):
    origin: str
    since: float
    account_id: str
    encoded: str  # the packets, still in base64: `decode_packets` when they are wanted


def encode_batches(origin: str, account_id: str, packets: list[bytes], since: float = 0.0) -> list[str]:
    """Payloads carrying every packet, each under `MAX_PAYLOAD` bytes. `origin` has no spaces."""
    head = f"{origin} {since!r} {account_id} "
    room = (MAX_PAYLOAD - len(head.encode())) * 3 // 4  # base64 grows by 4/3
    return [head + base64.b64encode(frame).decode() for frame in frames(packets, room)]


def decode_notice(payload: str) -> TickNotice:
    """The payload's head, its packets left encoded; ValueError for a payload that is not one of ours."""
    origin, _, rest = payload.partition(" ")
    since, _, rest = rest.partition(" ")
    account_id, _, encoded = rest.rpartition(" ")
    if not origin or not account_id:
        raise ValueError("tick payload without an origin or an account")
    try:
        return TickNotice(origin, float(since), account_id, encoded)
    except ValueError:
        raise ValueError("tick payload without a hand-over time") from None


def decode_packets(encoded: str) -> list[bytes]:
    try:
        return split_packets(base64.b64decode(encoded, validate=True))
    except (binascii.Error, MalformedFrameError) as exc:
        raise ValueError(f"malformed tick payload: {exc}") from None


def decode_batch(payload: str) -> tuple[str, str, list[bytes]]:
    """(origin, account id, packets); ValueError for a payload that is not one of ours."""
    notice = decode_notice(payload)
    return notice.origin, notice.account_id, decode_packets(notice.encoded)
