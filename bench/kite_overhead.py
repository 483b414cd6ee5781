"""Kite gateway overhead: what the service adds to an order placed on Kite.

    .venv/bin/python bench/kite_overhead.py            # 300 orders in sequence, then 30 s at 10 orders/s
    .venv/bin/python bench/kite_overhead.py --quick    # 100, then 10 s

The same order (NSE:INFY, 1 share, MARKET) is placed (a) directly with the official `kiteconnect`
client and (b) through the service (`POST /orders/place?wait=5`, a Kite account), against the same
fake Kite (`python -m ticker_service.fakekite`, a separate process) answering every request after
20 ms. Each is measured one order at a time in sequence, and at a fixed 10 orders/s (each latency
from the request's scheduled send time). Reported: p50 and p99 of each and of the difference
(service minus direct). Target: the service adds at most 2 ms at p50 and 5 ms at p99.

Beside them, in the same run, the durable floor (`bench/ceiling_app.py`, `POST /kite/place`): the
least any gateway that keeps invariants 1 and 2 must do for a Kite order (commit the accepted order,
commit that it is being sent, call Kite on a thread, commit the answer), with no project code. What
the floor adds over direct is what durability costs on this machine; the service is also reported
over the floor. The service's measurements are at least a minute apart, so that none of them runs
into Kite's 400 orders a minute, which the service keeps to (and the direct client does not).

The service answers 201 as soon as Kite has answered with the order id (what `kiteconnect`'s
`place_order` returns); the order's state follows on the stream. Everything runs on one 2-core
machine: the fake, the service, PostgreSQL and the clients share it, so read the difference, not the
absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request
from typing import Any

import aiohttp
from kiteconnect import KiteConnect

from harness.fakekite import ACCESS_TOKEN, API_KEY, kite_service_env, start_fake
from harness.load import fixed_timetable
from harness.procs import log, stop
from harness.report import median, percentile
from harness.servers import Config
from harness.session import Session, add_session_options, run_session

TARGET_P50_MS = 2.0
TARGET_P99_MS = 5.0
MINUTE_LIMIT_REST = 61.0  # seconds between the service's measurements: Kite's per-minute window and its margin
LATENCY_MS = 20
ORDER = {
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "transaction_type": "BUY",
    "quantity": 1,
    "product": "CNC",
    "order_type": "MARKET",
}


async def at_rate(call: Any, rate: float, seconds: float) -> list[float]:
    """`call()` at a fixed rate; each latency from the call's scheduled time (no coordinated omission)."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def send(scheduled: float, record: bool) -> None:
        await call()
        if record:
            latencies.append((loop.time() - scheduled) * 1000)

    await fixed_timetable(rate, 2.0, seconds, send, loop.time)
    return latencies


def start_fake_answering_late(s: Session) -> tuple[Any, str]:
    """The fake Kite, answering every request after `LATENCY_MS`."""
    proc, url = start_fake(s, "--tick-interval", "0")
    request = urllib.request.Request(
        f"{url}/_fake/latency", data=json.dumps({"ms": LATENCY_MS}).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=5).close()
    return proc, url


def service_config(fake: str) -> Config:
    return Config("kite", "service, one Kite account", "service", kite_service_env(fake, "kite"))


def direct_sequence(fake: str, n: int, pace: float) -> list[float]:
    kite = KiteConnect(API_KEY, access_token=ACCESS_TOKEN, root=fake)
    latencies = []
    for i in range(n + 5):
        started = time.perf_counter()
        kite.place_order(variety="regular", market_protection=-1, tag=f"D{i}", **ORDER)
        if i >= 5:  # warm-up
            latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, 1 / pace - (time.perf_counter() - started)))
    return latencies


async def direct_rate(fake: str, seconds: float, rate: float) -> list[float]:
    kite = KiteConnect(API_KEY, access_token=ACCESS_TOKEN, root=fake)

    async def one() -> None:
        await asyncio.to_thread(kite.place_order, variety="regular", market_protection=-1, **ORDER)

    return await at_rate(one, rate, seconds)


async def service_sequence(url: str, n: int, pace: float, path: str = "/orders/place?wait=5") -> list[float]:
    latencies = []
    async with aiohttp.ClientSession() as http:
        for i in range(n + 5):
            started = time.perf_counter()
            async with http.post(f"{url}{path}", json={**ORDER, "account_id": "kite"}) as r:
                body = await r.json()
                assert r.status == 201 and body["order_id"], body
            if i >= 5:
                latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(max(0.0, 1 / pace - (time.perf_counter() - started)))
    return latencies


async def service_rate(url: str, seconds: float, rate: float, path: str = "/orders/place?wait=5") -> list[float]:
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            async with http.post(f"{url}{path}", json={**ORDER, "account_id": "kite"}) as r:
                body = await r.json()
                assert r.status == 201 and body["order_id"], body

        return await at_rate(one, rate, seconds)


def report(label: str, direct: list[float], floor: list[float], service: list[float]) -> tuple[float, float]:
    d50, d99 = median(direct), percentile(direct, 99)
    f50, f99 = median(floor), percentile(floor, 99)
    s50, s99 = median(service), percentile(service, 99)
    print(f"{label}:")
    print(f"  direct kiteconnect : p50 {d50:7.2f} ms  p99 {d99:7.2f} ms  ({len(direct)} orders)")
    print(f"  durable floor      : p50 {f50:7.2f} ms  p99 {f99:7.2f} ms  ({len(floor)} orders)")
    print(f"  through the service: p50 {s50:7.2f} ms  p99 {s99:7.2f} ms  ({len(service)} orders)")
    added50, added99 = s50 - d50, s99 - d99
    verdict50 = "PASS" if added50 <= TARGET_P50_MS else "FAIL"
    verdict99 = "PASS" if added99 <= TARGET_P99_MS else "FAIL"
    print(
        f"  added by the floor  : p50 {f50 - d50:+.2f} ms, p99 {f99 - d99:+.2f} ms "
        "(3 durable commits, a thread hop and HTTP: no gateway that keeps invariants 1 and 2 adds less)"
    )
    print(
        f"  added by the service: p50 {added50:+.2f} ms (target <= {TARGET_P50_MS:g}: {verdict50}), "
        f"p99 {added99:+.2f} ms (target <= {TARGET_P99_MS:g}: {verdict99}); "
        f"over the floor: p50 {s50 - f50:+.2f} ms, p99 {s99 - f99:+.2f} ms"
    )
    return added50, added99


def floor_config(fake: str) -> Config:
    env = {"KITE_ROOT": fake, "KITE_API_KEY": API_KEY, "KITE_ACCESS_TOKEN": ACCESS_TOKEN}
    return Config("floor", "durable Kite gateway floor (bench/ceiling_app.py)", "ceiling", env)


def measure(s: Session, args: argparse.Namespace) -> int:
    fake_proc, fake = start_fake_answering_late(s)
    server = s.servers.start(service_config(fake))
    floor_server = s.servers.start(floor_config(fake))
    url = f"http://127.0.0.1:{server.port}"
    floor_url = f"http://127.0.0.1:{floor_server.port}"
    service_done = [0.0]  # when the service's last measurement ended (time.monotonic)

    def minute_apart() -> None:
        """Kite allows 400 orders a minute and the service keeps to it: a measurement right after
        another would measure that limit, not the overhead. The direct client and the floor ignore it."""
        rest = MINUTE_LIMIT_REST - (time.monotonic() - service_done[0])
        if rest > 0:
            log(f"waiting {rest:.0f} s: the service's previous orders leave Kite's 400-a-minute window")
            time.sleep(rest)

    try:
        log("in sequence: direct")
        direct = direct_sequence(fake, args.orders, args.pace)
        log("in sequence: the durable floor")
        floor = asyncio.run(service_sequence(floor_url, args.orders, args.pace, "/kite/place"))
        log("in sequence: through the service")
        service = asyncio.run(service_sequence(url, args.orders, args.pace))
        service_done[0] = time.monotonic()
        loaded = []
        for rate in args.rates:
            log(f"at {rate:g}/s: direct")
            direct_loaded = asyncio.run(direct_rate(fake, args.seconds, rate))
            log(f"at {rate:g}/s: the durable floor")
            floor_loaded = asyncio.run(service_rate(floor_url, args.seconds, rate, "/kite/place"))
            minute_apart()
            log(f"at {rate:g}/s: through the service")
            loaded.append((rate, direct_loaded, floor_loaded, asyncio.run(service_rate(url, args.seconds, rate))))
            service_done[0] = time.monotonic()
    finally:
        s.servers.finish(server)
        s.servers.finish(floor_server)
        stop(fake_proc)
    print()
    print(f"Kite gateway overhead, fake Kite answering after {LATENCY_MS} ms (2 cores shared by all)")
    report(f"one order at a time (at most {args.pace:g} a second, under Kite's 10)", direct, floor, service)
    for rate, direct_loaded, floor_loaded, service_loaded in loaded:
        report(f"{rate:g} orders/s, open loop", direct_loaded, floor_loaded, service_loaded)
    print(
        "At 10/s the service queues: it keeps at most 10 orders in any 1 s + TICKER_RATE_MARGIN_SECONDS "
        "(0.1 s), so it sends at most about 9.1 a second; the direct client and the floor are not limited at all."
    )
    s.servers.print_epilogue()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--rates", type=float, nargs="+", default=[10.0, 8.0])
    ap.add_argument("--pace", type=float, default=8.0, help="in sequence: at most this many orders a second")
    add_session_options(ap)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.orders, args.seconds = 100, 10.0
    return run_session("ticker-kite-bench-", lambda s: measure(s, args), max_runtime=args.max_runtime, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
