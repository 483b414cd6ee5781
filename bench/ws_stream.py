"""WebSocket order-stream benchmark: how fast an order's events reach WebSocket clients, and what a socket costs.

    .venv/bin/python bench/ws_stream.py            # about 1-2 minutes
    .venv/bin/python bench/ws_stream.py --quick    # shorter runs, 300 clients

Starts an embedded PostgreSQL in a temporary directory (a fresh database per server start, like
every benchmark on bench/harness/), then measures:

  (a) latency from an order placed (POST /orders/place?wait=0, spec order NFO NIFTY25NOVFUT BUY 50
      NRML MARKET) to its order_update messages on one WebSocket client, at a fixed open-loop rate
      (default 200 orders/s) for --duration seconds after a warm-up; the service in its default
      configuration (relay workers in-process). Each latency runs from the POST's *scheduled* send
      time (no coordinated omission) to the message's arrival: `task_status pending` (committed by
      the POST itself: intake + stream), `order_placed` and `order_completed` (these include the
      relay executing the order at the paper broker). Also: event created_at -> arrival, and a
      check that the client saw every seq once, in order.
  (b) fan-out: --clients WebSocket clients (default 1,000) on one account of a server with
      TICKER_RELAY_WORKERS=0 (so a POST makes exactly one event); --trials times, one POST, then
      the time until *every* client has that event; also each client's own latency.
  (c) the server's memory (RSS) per idle connection: RSS with the clients connected minus RSS before,
      divided by the clients; and the server's CPU per delivered message during (b).

Clients, server and PostgreSQL share the machine (2 cores on the dev box): the times include the
client process reading 1,000 sockets on one event loop. Times are taken with time.perf_counter()
(uvloop's loop.time() has millisecond resolution). Sends traffic to 127.0.0.1 only; every
process it starts is stopped at the end, on Ctrl-C, on errors and after --max-runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.load import fixed_timetable, run_async
from harness.procs import cpu_seconds, log, rss_kib
from harness.report import Row, p50_p99, print_table, verdict
from harness.report import percentile as pct
from harness.servers import Config
from harness.session import Session, add_session_options, run_session

ORDER = {
    "exchange": "NFO",
    "tradingsymbol": "NIFTY25NOVFUT",
    "transaction_type": "BUY",
    "quantity": 50,
    "product": "NRML",
    "order_type": "MARKET",
}
ORDER_JSON = json.dumps(ORDER, separators=(",", ":")).encode()

TARGET_P99_MS = 25.0
TARGET_FANOUT_P99_MS = 100.0

DEFAULT = Config("ws-default", "service, default configuration", "service")
FANOUT = Config(
    "ws-fanout", "service, TICKER_RELAY_WORKERS=0 (one event per POST)", "service", {"TICKER_RELAY_WORKERS": "0"}
)


def ws_url(port: int, account_id: str = "primary") -> str:
    return f"ws://127.0.0.1:{port}/advanced/ws/orders/{account_id}"


# --------------------------------------------------------------------------------------------
# (a) latency at a fixed rate


@dataclass
class LatencyResult:
    rate: float
    sent: int
    statuses: dict[str, int]
    post_ms: list[float]
    to_event_ms: dict[str, list[float]]
    missing: dict[str, int]
    created_to_arrival_ms: list[float]
    seq_ok: bool
    seq_note: str
    relay_note: str = ""


async def _latency(port: int, rate: float, seconds: float, warmup: float, settle: float) -> LatencyResult:
    import aiohttp

    url = f"http://127.0.0.1:{port}/orders/place?wait=0"
    headers = {"Content-Type": "application/json"}
    arrivals: dict[tuple[str, str], float] = {}  # (task_id, kind) -> perf_counter() at arrival
    created_lag: list[float] = []
    seqs: list[int] = []
    scheduled: dict[str, float] = {}  # task_id -> scheduled send time (measured orders only)
    statuses: dict[str, int] = {}
    post_ms: list[float] = []

    def kind(data: dict[str, Any]) -> str | None:
        event = data.get("event")
        if event == "task_status":
            return "pending" if data.get("status") == "pending" else None
        return event if event in ("order_placed", "order_completed") else None

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.perf_counter()
            wall = time.time()
            m = json.loads(msg.data)
            if m.get("type") != "order_update":
                continue
            seqs.append(m["seq"])
            k = kind(m["data"])
            if k is not None:
                arrivals.setdefault((m["data"]["task_id"], k), now)
            created = datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp()
            created_lag.append((wall - created) * 1000.0)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(t0: float, record: bool) -> None:
            try:
                async with session.post(url, data=ORDER_JSON, headers=headers) as resp:
                    body = await resp.json()
                    status = str(resp.status)
            except Exception as exc:
                status, body = type(exc).__name__, {}
            if record:
                statuses[status] = statuses.get(status, 0) + 1
                post_ms.append((time.perf_counter() - t0) * 1000.0)
                if status == "202":
                    scheduled[body["task_id"]] = t0

        ws = await session.ws_connect(ws_url(port), autoping=True, max_msg_size=0)
        hello = json.loads((await ws.receive()).data)
        assert hello["type"] == "connected", hello
        first_seq = hello["since"] + 1
        reader = asyncio.create_task(read(ws))
        await fixed_timetable(rate, warmup, seconds, one, time.perf_counter)
        deadline = time.perf_counter() + settle
        while time.perf_counter() < deadline and any((t, "order_completed") not in arrivals for t in scheduled):
            await asyncio.sleep(0.1)
        await ws.close()
        reader.cancel()

    to_event: dict[str, list[float]] = {"pending": [], "order_placed": [], "order_completed": []}
    missing = dict.fromkeys(to_event, 0)
    for task_id, t0 in scheduled.items():
        for k in to_event:
            at = arrivals.get((task_id, k))
            if at is None:
                missing[k] += 1
            else:
                to_event[k].append((at - t0) * 1000.0)
    expected = list(range(first_seq, first_seq + len(seqs)))
    seq_ok = seqs == expected
    note = f"{len(seqs)} updates, seq {seqs[0]}..{seqs[-1]}" if seqs else "no updates"
    if not seq_ok:
        dupes = len(seqs) - len(set(seqs))
        note += f"; NOT consecutive ({dupes} duplicates)"
    return LatencyResult(rate, int(rate * seconds), statuses, post_ms, to_event, missing, created_lag, seq_ok, note)


# --------------------------------------------------------------------------------------------
# (b), (c) fan-out to many clients


@dataclass
class FanoutResult:
    clients: int
    rss_before_kib: int
    rss_connected_kib: int
    rss_after_kib: int
    connect_seconds: float
    reach_all_ms: list[float] = field(default_factory=list)
    per_client_ms: list[float] = field(default_factory=list)
    incomplete: int = 0
    server_cpu_s: float = 0.0
    deliveries: int = 0
    stats_total: int = -1


async def _fanout(port: int, pid: int, clients: int, trials: int) -> FanoutResult:
    import aiohttp

    arrivals: dict[str, list[float]] = {}  # task_id -> arrival times of its `pending` event, one per client
    waiting: dict[str, asyncio.Event] = {}

    async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.perf_counter()
            m = json.loads(msg.data)
            if m.get("type") == "order_update":
                task_id = m["data"].get("task_id")
                got = arrivals.setdefault(task_id, [])
                got.append(now)
                if len(got) == clients and task_id in waiting:
                    waiting[task_id].set()

    rss_before = rss_kib(pid)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        sem = asyncio.Semaphore(50)

        async def connect() -> None:
            async with sem:
                ws = await session.ws_connect(ws_url(port), max_msg_size=0)
                hello = json.loads((await ws.receive()).data)
                assert hello["type"] == "connected"
                sockets.append(ws)

        t = time.perf_counter()
        await asyncio.gather(*(connect() for _ in range(clients)))
        connect_seconds = time.perf_counter() - t
        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        await asyncio.sleep(2.0)  # let allocations settle before reading RSS
        rss_connected = rss_kib(pid)
        async with session.get(f"http://127.0.0.1:{port}/advanced/ws/stats") as r:
            stats_total = (await r.json())["total_connections"]
        result = FanoutResult(clients, rss_before, rss_connected, 0, connect_seconds, stats_total=stats_total)

        cpu0 = cpu_seconds(pid, with_children=False)
        for _ in range(trials):
            t0 = time.perf_counter()
            async with session.post(
                f"http://127.0.0.1:{port}/orders/place?wait=0",
                data=ORDER_JSON,
                headers={"Content-Type": "application/json"},
            ) as resp:
                assert resp.status == 202, await resp.text()
                task_id = (await resp.json())["task_id"]
            event = waiting.setdefault(task_id, asyncio.Event())
            if len(arrivals.get(task_id, [])) == clients:
                event.set()
            try:
                await asyncio.wait_for(event.wait(), 10)
                times = arrivals[task_id]
                result.reach_all_ms.append((max(times) - t0) * 1000.0)
                result.per_client_ms.extend((x - t0) * 1000.0 for x in times)
                result.deliveries += len(times)
            except TimeoutError:
                result.incomplete += 1
            await asyncio.sleep(0.2)
        result.server_cpu_s = cpu_seconds(pid, with_children=False) - cpu0
        result.rss_after_kib = rss_kib(pid)
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return result


# --------------------------------------------------------------------------------------------
# main


def measure(s: Session, args: argparse.Namespace) -> int:
    lat: LatencyResult | None = None
    lat_intake: LatencyResult | None = None
    fan: FanoutResult | None = None

    if args.only != "fanout":
        srv = s.servers.start(DEFAULT)
        try:
            lat = run_async(_latency(srv.port, args.rate, args.duration, args.warmup, args.settle))
            states = s.db.query(srv.db, "SELECT status, count(*) AS n FROM order_tasks GROUP BY 1")
            lat.relay_note = ", ".join(f"{r['status']}: {r['n']}" for r in states)
        finally:
            s.servers.finish(srv)
        log(
            f"(a) at {args.rate:g}/s: POST->pending p50 {pct(lat.to_event_ms['pending'], 50):.1f} ms, "
            f"p99 {pct(lat.to_event_ms['pending'], 99):.1f} ms; POST->order_placed p50 "
            f"{pct(lat.to_event_ms['order_placed'], 50):.1f} ms, p99 {pct(lat.to_event_ms['order_placed'], 99):.1f}"
            f" ms; {lat.seq_note}"
        )
        # the same with the relay off: how much of (a) is the stream, how much the relay's CPU
        srv = s.servers.start(FANOUT)
        try:
            lat_intake = run_async(_latency(srv.port, args.rate, args.duration, args.warmup, settle=2.0))
        finally:
            s.servers.finish(srv)
        log(
            f"(a') relay off, at {args.rate:g}/s: POST->pending p50 "
            f"{pct(lat_intake.to_event_ms['pending'], 50):.1f} ms, "
            f"p99 {pct(lat_intake.to_event_ms['pending'], 99):.1f} ms; {lat_intake.seq_note}"
        )

    if args.only != "latency":
        srv = s.servers.start(FANOUT)
        try:
            fan = run_async(_fanout(srv.port, srv.proc.pid, args.clients, args.trials))
        finally:
            s.servers.finish(srv)
        log(
            f"(b) {fan.clients} clients: reach-all p50 {pct(fan.reach_all_ms, 50):.1f} ms, "
            f"p99 {pct(fan.reach_all_ms, 99):.1f} ms; RSS {fan.rss_before_kib} -> {fan.rss_connected_kib} KiB"
        )

    print()
    print(
        f"WebSocket order-stream benchmark — {os.cpu_count()} CPUs; total {s.elapsed():.0f} s. "
        "Client, server and PostgreSQL share the machine; the figures are noisy."
    )
    print()
    rows: list[Row] = []
    if lat is not None:
        p = lat.to_event_ms
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(lat.statuses.items()))
        rows += [
            (
                f"(a) POST -> order_update task_status pending, p50 / p99 at {lat.rate:g}/s",
                p50_p99(p["pending"]),
                f"p99 <= {TARGET_P99_MS:g} ms",
                verdict(pct(p["pending"], 99) <= TARGET_P99_MS),
                f"max {pct(p['pending'], 100):.1f} ms; missing {lat.missing['pending']} of {len(lat.post_ms)}; "
                f"POST answers: {statuses}",
            ),
            (
                "(a) POST -> order_update order_placed (through the relay), p50 / p99",
                p50_p99(p["order_placed"]),
                f"p99 <= {TARGET_P99_MS:g} ms",
                verdict(pct(p["order_placed"], 99) <= TARGET_P99_MS and lat.missing["order_placed"] == 0),
                f"max {pct(p['order_placed'], 100):.1f} ms; missing {lat.missing['order_placed']}; "
                f"task states at the end: {lat.relay_note}",
            ),
            (
                "(a) POST -> order_update order_completed, p50 / p99",
                p50_p99(p["order_completed"]),
                "",
                "-",
                f"missing {lat.missing['order_completed']}",
            ),
            (
                "(a) POST answer (202), p50 / p99",
                p50_p99(lat.post_ms),
                "(reference)",
                "-",
                "intake alone: the part of the first row before the event exists",
            ),
            (
                "(a) event created_at -> arrival, p50 / p99",
                p50_p99(lat.created_to_arrival_ms),
                "(reference)",
                "-",
                "created_at is the start of the transaction that wrote the event (ms resolution)",
            ),
            (
                "(a) stream integrity",
                "ok" if lat.seq_ok else "BROKEN",
                "every seq once, in order",
                verdict(lat.seq_ok),
                lat.seq_note,
            ),
        ]
    if lat_intake is not None:
        p = lat_intake.to_event_ms
        rows.append(
            (
                f"(a') the same, TICKER_RELAY_WORKERS=0 (no relay competing), p50 / p99 at {lat_intake.rate:g}/s",
                p50_p99(p["pending"]),
                "(reference)",
                "-",
                f"max {pct(p['pending'], 100):.1f} ms; POST answer p50 / p99 {pct(lat_intake.post_ms, 50):.1f} / "
                f"{pct(lat_intake.post_ms, 99):.1f} ms; {lat_intake.seq_note}",
            )
        )
    if fan is not None:
        per_conn = (fan.rss_connected_kib - fan.rss_before_kib) / fan.clients
        cpu_us = 1e6 * fan.server_cpu_s / fan.deliveries if fan.deliveries else float("nan")
        rows += [
            (
                f"(b) one event to all {fan.clients} clients, p50 / p99 of {len(fan.reach_all_ms)} trials",
                p50_p99(fan.reach_all_ms),
                f"p99 <= {TARGET_FANOUT_P99_MS:g} ms",
                verdict(pct(fan.reach_all_ms, 99) <= TARGET_FANOUT_P99_MS and fan.incomplete == 0),
                f"max {pct(fan.reach_all_ms, 100):.1f} ms; incomplete {fan.incomplete}; from the POST's send",
            ),
            (
                "(b) each client's latency, p50 / p99",
                p50_p99(fan.per_client_ms),
                "",
                "-",
                f"{fan.deliveries} deliveries; server CPU {cpu_us:.0f} us per delivered message",
            ),
            (
                "(c) server RSS per idle WebSocket connection",
                f"{per_conn:.1f} KiB",
                "",
                "-",
                f"RSS {fan.rss_before_kib / 1024:.1f} MiB before, {fan.rss_connected_kib / 1024:.1f} MiB with "
                f"{fan.clients} connected, {fan.rss_after_kib / 1024:.1f} MiB after the trials; "
                f"/advanced/ws/stats said {fan.stats_total}; connecting took {fan.connect_seconds:.1f} s",
            ),
        ]
    print_table(rows)
    print()
    s.servers.print_epilogue()
    return 1 if any(r is not None and not r.seq_ok for r in (lat, lat_intake)) else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=200.0, help="orders/s for (a)")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds of (a)")
    ap.add_argument("--warmup", type=float, default=2.0, help="discarded seconds of load before (a)")
    ap.add_argument("--settle", type=float, default=30.0, help="seconds (a) waits for the last orders' events")
    ap.add_argument("--clients", type=int, default=1000, help="WebSocket clients for (b)")
    ap.add_argument("--trials", type=int, default=30, help="events fanned out in (b)")
    add_session_options(ap)
    ap.add_argument("--only", choices=["latency", "fanout"], help="run only (a) or only (b)+(c)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 3 s at the rate, 300 clients, 10 trials")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup, args.clients, args.trials = 3.0, 1.0, 300, 10

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.clients + 1024))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by the servers we start

    return run_session("ticker-ws-bench-", lambda s: measure(s, args), max_runtime=args.max_runtime, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
