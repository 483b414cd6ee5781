"""`python -m ticker_service.fakekite`: the fake as a process, for end-to-end tests and benchmarks.

Prints one line, `fakekite listening on http://HOST:PORT`, once it accepts connections, and runs until
SIGTERM or SIGINT. Drive it through its control API under `/_fake/`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from ticker_service.fakekite.instruments import BUILTIN_INSTRUMENTS, bench_equities
from ticker_service.fakekite.server import FakeKite


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ticker_service.fakekite", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True, help="0 picks a free port (printed on start)")
    p.add_argument("--api-key", required=True)
    p.add_argument("--api-secret", required=True)
    p.add_argument("--user-id", default="AB1234")
    p.add_argument("--redirect-url", default=None)
    p.add_argument("--postback-url", default=None)
    p.add_argument("--access-token", default=None, help="a session valid from the start")
    p.add_argument("--tick-interval", type=float, default=1.0, help="seconds between price steps; 0 for none")
    p.add_argument("--heartbeat-interval", type=float, default=1.0)
    p.add_argument("--request-token-ttl", type=float, default=300.0)
    p.add_argument("--enforce-rate-limits", action="store_true", help="answer 429 beyond Kite's per-key limits")
    p.add_argument(
        "--instruments", type=int, default=0, help="add N made-up NSE equities (NSE:BENCH0001, ...) for benchmarks"
    )
    p.add_argument(
        "--stamp-send-time",
        action="store_true",
        help="benchmarks: every price step sends every subscribed instrument, and a stock tick's last_quantity "
        "is its send time in microseconds modulo 2**32",
    )
    p.add_argument("--max-logged-requests", type=int, default=100_000, help="the request log keeps the most recent N")
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    fake = FakeKite(
        args.api_key,
        args.api_secret,
        user_id=args.user_id,
        redirect_url=args.redirect_url,
        postback_url=args.postback_url,
        host=args.host,
        port=args.port,
        access_token=args.access_token,
        tick_interval=args.tick_interval or None,
        heartbeat_interval=args.heartbeat_interval,
        request_token_ttl=args.request_token_ttl,
        enforce_rate_limits=args.enforce_rate_limits,
        max_logged_requests=args.max_logged_requests,
        instruments=BUILTIN_INSTRUMENTS + bench_equities(args.instruments),
        stamp_send_time=args.stamp_send_time,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await fake.start()
    print(f"fakekite listening on {fake.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
