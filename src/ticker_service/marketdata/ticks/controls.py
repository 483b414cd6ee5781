"""KiteTicker's control messages, as both tick sockets take them from their clients.

`{"a": "subscribe", "v": [tokens]}`, `{"a": "unsubscribe", "v": [tokens]}`,
`{"a": "mode", "v": ["ltp" | "quote" | "full", [tokens]]}` (KITE.md). A message that cannot be
followed is answered with an error naming what was wrong, and changes nothing: an unknown token,
or instruments past the account's feed limit. What a client wants counts toward the account's
upstream subscription (through the hub's lease) for as long as it stays connected.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ticker_service.marketdata.packets import MODES, Mode
from ticker_service.marketdata.subscriptions.limits import LimitExceeded
from ticker_service.marketdata.ticks.client import TickClient
from ticker_service.marketdata.ticks.hub import TickHub

MAX_TOKENS_PER_MESSAGE = 9000


class ControlError(ValueError):
    """The message was refused; the text says why (sent back to the client)."""


def _tokens(value: Any) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_TOKENS_PER_MESSAGE:
        raise ControlError(f"v: expected a list of at most {MAX_TOKENS_PER_MESSAGE} instrument tokens")
    bad = [t for t in value if isinstance(t, bool) or not isinstance(t, int) or not 0 < t < 2**32]
    if bad:
        raise ControlError(f"v: not instrument tokens: {bad[:10]}")
    return list(dict.fromkeys(value))


async def apply_control(hub: TickHub, client: TickClient, text: str) -> None:
    """Follow one control message; ControlError when it was refused."""
    try:
        message = msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise ControlError('not JSON: expected {"a": "subscribe" | "unsubscribe" | "mode", "v": ...}') from None
    if not isinstance(message, dict) or "a" not in message or "v" not in message:
        raise ControlError('expected {"a": "subscribe" | "unsubscribe" | "mode", "v": ...}')
    action, value = message["a"], message["v"]
    if action == "subscribe":
        tokens = _tokens(value)
        await _check(hub, client, tokens)
        new = client.subscribe(tokens, None)
        hub.wants_changed(client.account_id)
        await hub.snapshot(client, new)
    elif action == "unsubscribe":
        client.unsubscribe(_tokens(value))
        hub.wants_changed(client.account_id)
    elif action == "mode":
        if not isinstance(value, list) or len(value) != 2 or value[0] not in MODES:
            raise ControlError('v: expected ["ltp" | "quote" | "full", [instrument tokens]]')
        mode: Mode = value[0]
        changed = client.set_mode(mode, _tokens(value[1]))
        if changed:
            hub.wants_changed(client.account_id)
            await hub.snapshot(client, changed)
    else:
        raise ControlError(f"a: unknown action {str(action)[:20]!r}; one of subscribe, unsubscribe, mode")


async def _check(hub: TickHub, client: TickClient, tokens: list[int]) -> None:
    unknown = await hub.unknown(client.account_id, tokens)
    if unknown:
        raise ControlError(f"instrument_token: unknown instrument(s) {unknown[:20]}")
    new = [t for t in tokens if t not in client.wants]
    if new:
        try:
            await hub.check_limit(client.account_id, new)
        except LimitExceeded as exc:
            raise ControlError(str(exc)) from None
