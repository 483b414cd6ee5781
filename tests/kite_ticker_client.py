"""The real `kiteconnect.KiteTicker`, run as a child process by tests: it connects, subscribes, and
prints every callback it gets as one JSON line on stdout.

A process per test because KiteTicker runs Twisted's reactor, which cannot be restarted within a
process (pykiteconnect #80, #185).

    python tests/kite_ticker_client.py ROOT API_KEY ACCESS_TOKEN [--tokens 408065,779521] [--mode full]
        [--stop-on-close]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from kiteconnect import KiteTicker


def emit(event: str, **fields: Any) -> None:
    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, bytes):
            return value.decode(errors="replace")
        return str(value)

    sys.stdout.write(json.dumps({"event": event, **fields}, default=default) + "\n")
    sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("api_key")
    p.add_argument("access_token")
    p.add_argument("--tokens", default="")
    p.add_argument("--mode", default="quote", choices=["ltp", "quote", "full"])
    p.add_argument("--stop-on-close", action="store_true")
    args = p.parse_args()
    tokens = [int(t) for t in args.tokens.split(",") if t]

    kws = KiteTicker(args.api_key, args.access_token, root=args.root, reconnect_max_delay=5)

    def on_connect(ws: KiteTicker, response: Any) -> None:
        emit("connect")
        if tokens:
            ws.subscribe(tokens)
            if args.mode != "quote":
                ws.set_mode(args.mode, tokens)

    def on_ticks(ws: KiteTicker, ticks: list[dict[str, Any]]) -> None:
        emit("ticks", ticks=ticks)

    def on_message(ws: KiteTicker, payload: bytes, is_binary: bool) -> None:
        emit("message", binary=is_binary, size=len(payload))

    def on_order_update(ws: KiteTicker, data: dict[str, Any]) -> None:
        emit("order_update", data=data)

    def on_error(ws: KiteTicker, code: Any, reason: Any) -> None:
        emit("error", code=code, reason=reason)

    def on_close(ws: KiteTicker, code: Any, reason: Any) -> None:
        emit("close", code=code, reason=reason)
        if args.stop_on_close:
            ws.stop_retry()
            ws.stop()

    def on_reconnect(ws: KiteTicker, attempts: int) -> None:
        emit("reconnect", attempts=attempts)

    kws.on_connect = on_connect
    kws.on_ticks = on_ticks
    kws.on_message = on_message
    kws.on_order_update = on_order_update
    kws.on_error = on_error
    kws.on_close = on_close
    kws.on_reconnect = on_reconnect
    kws.connect()


if __name__ == "__main__":
    main()
