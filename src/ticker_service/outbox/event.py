"""The outbox event: what every listener (WebSocket, webhooks) receives as `data`, with its ids."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec


class NewEvent(msgspec.Struct, frozen=True):
    """An event about to be appended; the outbox gives it the account's next seq at commit."""

    event_id: str
    event: str
    task_id: str | None
    order_id: str | None
    data: dict[str, Any]


def new_event(event: str, data: dict[str, Any], *, task_id: str | None, order_id: str | None) -> NewEvent:
    return NewEvent(
        event_id=str(uuid.uuid4()),
        event=event,
        task_id=task_id,
        order_id=order_id,
        data={"event": event, **data},
    )
