"""The stream's messages, in the spec's shapes, encoded with msgspec.

An `order_update` is encoded once per event and the same string goes to every socket of the
account (and to every replay of that event: its timestamp is the event's own `created_at`). The
event's `data` is embedded as the JSON text PostgreSQL returns (`msgspec.Raw`): never decoded and
re-encoded on the way through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from ticker_service.timeutil import rfc3339, utcnow


class Connected(msgspec.Struct, frozen=True):
    """The welcome message. `since`: the seq after which this socket's order updates start."""

    account_id: str
    timestamp: str
    since: int
    instance_id: str
    type: Literal["connected"] = "connected"


class OrderUpdate(msgspec.Struct, frozen=True):
    """One outbox event. `seq` is the account's gap-free sequence number; `event_id` is stable."""

    account_id: str
    data: msgspec.Raw
    timestamp: str
    event_id: str
    seq: int
    type: Literal["order_update"] = "order_update"


class ErrorMessage(msgspec.Struct, frozen=True):
    detail: str
    type: Literal["error"] = "error"


_encoder = msgspec.json.Encoder()

PONG = '{"type":"pong"}'


def encode_connected(account_id: str, since: int, instance_id: str) -> str:
    message = Connected(account_id=account_id, timestamp=rfc3339(utcnow()) or "", since=since, instance_id=instance_id)
    return _encoder.encode(message).decode()


def encode_update(account_id: str, seq: int, event_id: str, created_at: datetime, data_json: str) -> str:
    message = OrderUpdate(
        account_id=account_id,
        data=msgspec.Raw(data_json),
        timestamp=rfc3339(created_at) or "",
        event_id=event_id,
        seq=seq,
    )
    return _encoder.encode(message).decode()


def encode_error(detail: str) -> str:
    return _encoder.encode(ErrorMessage(detail=detail)).decode()


def is_ping(text: str) -> bool:
    """The spec's keep-alive is the text `ping`; `{"type": "ping"}` is accepted too."""
    stripped = text.strip()
    if stripped.lower() == "ping":
        return True
    if stripped.startswith("{"):
        try:
            value = msgspec.json.decode(stripped)
        except msgspec.DecodeError:
            return False
        return isinstance(value, dict) and value.get("type") == "ping"
    return False
