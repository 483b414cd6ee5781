"""Tick fan-out benchmark: 500 instruments ticking once a second to 100 WebSocket clients.

    .venv/bin/python bench/ticks.py            # 3 rounds of 10 s per server: 30 s each (~3 minutes)
    .venv/bin/python bench/ticks.py --quick    # 1 round of 5 s each (~1 minute)

The feed is a Kite account on the fake Kite (`python -m ticker_service.fakekite`, its own process)
started with `--instruments 500 --stamp-send-time --tick-interval 1`: 500 made-up NSE equities, and
every second one frame with every subscribed instrument, each stock packet's `last_quantity` the
time the fake queued it, in microseconds modulo 2**32 (Kite's own timestamps are whole seconds). So
the path measured is the production one: Kite's ticker socket -> the service's ticker client -> the
account's holder -> the `market_ticks` upsert and batched NOTIFY through PostgreSQL -> the hub ->
each client's conflating slot -> `/ws/ticks` JSON. (The paper feed would skip the upstream socket and
add the price model's own CPU to the service's, which a Kite account leaves to Kite.)

The service (`ticker-service serve`, one Kite account, the 500 instruments stored as the account's
subscriptions in quote mode, which every client that sends no control message follows) and the
ceiling (`bench/ceiling_app.py` `WS /ws/ticks`: a bare Litestar app on the same uvicorn options that
holds its own ticker connection to the same fake, turns each frame into one JSON text of the same
shape, encoded once, and hands it to every socket) run side by side for the whole run, both fed by
the fake. They are measured in turn, round by round (the order alternates each round): 100
WebSocket clients (aiohttp, two client processes of 50, so the clients' CPU is not the server's)
connect to one of them, warm up, then record for --duration seconds:

  * latency of every delivered tick: from its stamp at the fake to its receipt by the client
    (p50 / p99 over all ticks of all rounds);
  * delivered ticks/s (ticks received by all clients in the window; 500 x 100 = 50,000/s expected);
  * the server process's CPU seconds (/proc/PID/stat, user + system) over the same window, per
    delivered tick, and PostgreSQL's (the postmaster and its backends) beside it.

Targets (the market-data issue): p99 <= 20 ms; the service delivers at least half the ceiling's
ticks per CPU second. Everything (fake, servers, PostgreSQL, clients) shares the machine.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import resource
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from harness.fakekite import ACCESS_TOKEN, API_KEY, kite_service_env, start_fake
from harness.load import run_async
from harness.procs import cpu_seconds, log, spawn, stop
from harness.report import Row, median, print_table, verdict
from harness.report import percentile as pct
from harness.servers import Config, Running
from harness.session import Session, add_session_options, run_session

TARGET_P99_MS = 20.0
TARGET_RATIO = 0.5
INSTRUMENTS = 500
CLIENTS = 100
CLIENT_PROCESSES = 2
ACCOUNT = "kite"
# the fake's --instruments: NSE:BENCH0001.. with exchange tokens from 900001 (fakekite.instruments)
TOKENS = [(900_000 + i) << 8 | 1 for i in range(1, INSTRUMENTS + 1)]


class TickIn(msgspec.Struct):
    """What a client reads of a tick: the instrument, and the fake's send time in `last_quantity`."""

    instrument_token: int
    last_quantity: int = 0


class MessageIn(msgspec.Struct):
    type: str
    data: list[TickIn] = []
    subscriptions: list[Any] | None = None


# --------------------------------------------------------------------------------------------
# the client process (this script with --client): N sockets, records [t0, t1)


async def _client(url: str, sockets: int, t0: float, t1: float, out: Path) -> None:
    import aiohttp

    decoder = msgspec.json.Decoder(MessageIn)
    # (receipt time in us, message) while recording: decoded only after the window, so the receipt
    # time of one socket's message never includes this process decoding the messages before it
    received: list[tuple[int, str]] = []
    summary: dict[str, Any] = {"connected": 0, "subscriptions": [], "messages": 0, "ticks": 0, "errors": []}

    async def one(session: aiohttp.ClientSession) -> None:
        ws = await session.ws_connect(url, max_msg_size=0)
        hello = decoder.decode((await ws.receive()).data)
        summary["connected"] += 1
        summary["subscriptions"].append(len(hello.subscriptions or []))
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.time()
            if t0 <= now < t1:
                received.append((int(now * 1e6), msg.data))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(sockets)]
        await asyncio.sleep(max(0.0, t1 - time.time()))
        for task in tasks:
            if task.done() and (error := task.exception()) is not None:
                summary["errors"].append(f"{type(error).__name__}: {error}")
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies = array.array("d")
    for now_us, data in received:
        message = decoder.decode(data)
        if message.type != "ticks":
            continue
        summary["messages"] += 1
        summary["ticks"] += len(message.data)
        latencies.extend(((now_us - t.last_quantity) % 2**32) / 1000.0 for t in message.data)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary["cpu_s"] = usage.ru_utime + usage.ru_stime
    out.with_suffix(".bin").write_bytes(latencies.tobytes())
    out.with_suffix(".json").write_text(json.dumps(summary))


# --------------------------------------------------------------------------------------------
# the parent


@dataclass
class Window:
    label: str
    seconds: float
    ticks: int
    messages: int
    server_cpu_s: float
    pg_cpu_s: float
    client_cpu_s: float
    latencies_ms: array.array[float]
    connected: int
    other_cpu_s: float = 0.0  # the other server's CPU over the same window (it has no clients then)
    subscriptions: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ticks / self.seconds

    @property
    def ticks_per_cpu_s(self) -> float:
        return self.ticks / self.server_cpu_s if self.server_cpu_s else float("nan")


def measure_window(
    s: Session, srv: Running, other: Running, label: str, url: str, seconds: float, warmup: float
) -> Window:
    """CLIENTS sockets (over CLIENT_PROCESSES processes) on `url`; the server's CPU over the same window,
    and the other server's (fed too, but with no clients: what it costs to hold the feed)."""
    t0 = time.time() + 2.0 + warmup  # 2 s to connect, then the warm-up
    t1 = t0 + seconds
    procs, outs = [], []
    for i in range(CLIENT_PROCESSES):
        out = s.workdir / f"client-{label}-{time.monotonic_ns()}-{i}"
        n = CLIENTS // CLIENT_PROCESSES + (1 if i < CLIENTS % CLIENT_PROCESSES else 0)
        cmd = [sys.executable, __file__, "--client", url, str(n), repr(t0), repr(t1), str(out)]
        procs.append(spawn(cmd, out=s.workdir / f"clients-{label}.log"))
        outs.append(out)
    time.sleep(max(0.0, t0 - time.time()))
    cpu0, pg0 = cpu_seconds(srv.proc.pid, with_children=False), cpu_seconds(s.db.postmaster, with_children=True)
    other0 = cpu_seconds(other.proc.pid, with_children=False)
    time.sleep(max(0.0, t1 - time.time()))
    cpu1, pg1 = cpu_seconds(srv.proc.pid, with_children=False), cpu_seconds(s.db.postmaster, with_children=True)
    other1 = cpu_seconds(other.proc.pid, with_children=False)
    for proc in procs:
        try:
            proc.wait(30)
        finally:
            stop(proc)
    window = Window(label, seconds, 0, 0, cpu1 - cpu0, pg1 - pg0, 0.0, array.array("d"), 0, other1 - other0)
    for out in outs:
        if not out.with_suffix(".json").exists():
            window.errors.append(f"client process wrote nothing; see {s.workdir / f'clients-{label}.log'}")
            continue
        summary = json.loads(out.with_suffix(".json").read_text())
        window.ticks += summary["ticks"]
        window.messages += summary["messages"]
        window.connected += summary["connected"]
        window.client_cpu_s += summary["cpu_s"]
        window.subscriptions |= set(summary["subscriptions"])
        window.errors += summary["errors"]
        window.latencies_ms.frombytes(out.with_suffix(".bin").read_bytes())
    return window


def service_config(fake: str) -> Config:
    return Config("ticks-service", "service, /ws/ticks (Kite account)", "service", kite_service_env(fake, ACCOUNT))


def ceiling_config(fake: str) -> Config:
    upstream = f"{fake.replace('http', 'ws')}/ws?api_key={API_KEY}&access_token={ACCESS_TOKEN}"
    env = {"CEILING_TICKS_UPSTREAM": upstream, "CEILING_TICKS_TOKENS": ",".join(map(str, TOKENS))}
    return Config("ticks-ceiling", "ceiling app, /ws/ticks (one encode, broadcast)", "ceiling", env)


def _http(method: str, url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def subscribe_all(port: int) -> None:
    """The 500 instruments as the account's stored subscriptions; waits until the feed carries them."""
    base = f"http://127.0.0.1:{port}"
    _http("POST", f"{base}/subscriptions", {"instrument_token": TOKENS, "mode": "quote", "account_id": ACCOUNT})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _http("GET", f"{base}/subscriptions?account_id={ACCOUNT}").get("upstream") == INSTRUMENTS:
            return
        time.sleep(0.5)
    raise RuntimeError("the service's feed does not carry the 500 instruments after 30 s")


def measure(s: Session, args: argparse.Namespace) -> int:
    fake, fake_url = start_fake(s, "--tick-interval", "1", "--instruments", str(INSTRUMENTS), "--stamp-send-time")
    try:
        service = s.servers.start(service_config(fake_url))
        ceiling = s.servers.start(ceiling_config(fake_url))
        try:
            subscribe_all(service.port)
            urls = {
                "service": f"ws://127.0.0.1:{service.port}/ws/ticks?account_id={ACCOUNT}",
                "ceiling": f"ws://127.0.0.1:{ceiling.port}/ws/ticks",
            }
            servers = {"service": service, "ceiling": ceiling}
            windows: dict[str, list[Window]] = {"service": [], "ceiling": []}
            for r in range(args.rounds):
                order = ["service", "ceiling"] if r % 2 == 0 else ["ceiling", "service"]
                for name in order:
                    other = servers["ceiling" if name == "service" else "service"]
                    w = measure_window(s, servers[name], other, name, urls[name], args.duration, args.warmup)
                    windows[name].append(w)
                    log(
                        f"round {r + 1} {name}: {w.rate:,.0f} ticks/s, p50 {pct(w.latencies_ms, 50):.1f} ms, "
                        f"p99 {pct(w.latencies_ms, 99):.1f} ms, server CPU {1e6 * w.server_cpu_s / max(w.ticks, 1):.2f}"
                        f" us/tick, {w.connected} connected{'; errors: ' + '; '.join(w.errors[:3]) if w.errors else ''}"
                    )
        finally:
            s.servers.finish(ceiling)
            s.servers.finish(service)
    finally:
        stop(fake)
    report(s, args, windows)
    return 0


def _total(ws: list[Window]) -> Window:
    out = Window(ws[0].label, 0.0, 0, 0, 0.0, 0.0, 0.0, array.array("d"), 0)
    for w in ws:
        out.seconds += w.seconds
        out.ticks += w.ticks
        out.messages += w.messages
        out.server_cpu_s += w.server_cpu_s
        out.pg_cpu_s += w.pg_cpu_s
        out.client_cpu_s += w.client_cpu_s
        out.other_cpu_s += w.other_cpu_s
        out.latencies_ms.extend(w.latencies_ms)
        out.connected = min(out.connected or w.connected, w.connected)
        out.subscriptions |= w.subscriptions
        out.errors += w.errors
    return out


def report(s: Session, args: argparse.Namespace, windows: dict[str, list[Window]]) -> None:
    svc, ceil = _total(windows["service"]), _total(windows["ceiling"])
    ratio = svc.ticks_per_cpu_s / ceil.ticks_per_cpu_s if ceil.ticks else float("nan")
    pairs = zip(windows["service"], windows["ceiling"], strict=True)
    round_ratios = [a.ticks_per_cpu_s / b.ticks_per_cpu_s if b.ticks else float("nan") for a, b in pairs]
    expected = INSTRUMENTS * CLIENTS
    print()
    print(
        f"Tick fan-out benchmark: {INSTRUMENTS} instruments once a second to {CLIENTS} clients; {os.cpu_count()} CPUs; "
        f"{args.rounds} round(s) of {args.duration:g} s per server; total {s.elapsed():.0f} s. Fake, servers, "
        "PostgreSQL and clients share the machine."
    )
    print()
    rows: list[Row] = []
    for w, name in ((svc, "service"), (ceil, "ceiling")):
        target = f"p99 <= {TARGET_P99_MS:g} ms" if name == "service" else "(reference)"
        ok = verdict(pct(w.latencies_ms, 99) <= TARGET_P99_MS) if name == "service" else "-"
        per_round = ", ".join(f"{pct(x.latencies_ms, 99):.1f}" for x in windows[name])
        rows += [
            (
                f"{name}: feed -> client latency, p50 / p99",
                f"{pct(w.latencies_ms, 50):.1f} / {pct(w.latencies_ms, 99):.1f} ms",
                target,
                ok,
                f"max {pct(w.latencies_ms, 100):.1f} ms; p99 per round: {per_round}",
            ),
            (
                f"{name}: delivered ticks/s",
                f"{w.rate:,.0f}/s",
                f"{expected:,} a step",
                "-",
                f"{w.ticks:,} ticks in {w.messages:,} messages over {w.seconds:g} s (the fake steps every 1 s plus "
                f"its own work); {w.connected} clients connected"
                + (f", following {sorted(w.subscriptions)} instruments each" if name == "service" else ""),
            ),
            (
                f"{name}: server CPU per delivered tick",
                f"{1e6 * w.server_cpu_s / max(w.ticks, 1):.2f} us",
                "",
                "-",
                f"{w.ticks_per_cpu_s:,.0f} ticks per CPU second; server {w.server_cpu_s / w.seconds * 100:.0f} % of a "
                f"core; PostgreSQL {w.pg_cpu_s / w.seconds * 100:.0f} % ({1e6 * w.pg_cpu_s / max(w.ticks, 1):.2f} "
                f"us/tick); clients {w.client_cpu_s / w.seconds * 100:.0f} %",
            ),
        ]
    rows.append(
        (
            "service with no clients (feed held)",
            f"{ceil.other_cpu_s / ceil.seconds * 1000:.1f} ms/s",
            "",
            "-",
            "the service's CPU while the ceiling was measured: its feed, candles, market_ticks and NOTIFY, and "
            f"its order pipeline's idle loops (the ceiling meanwhile: {svc.other_cpu_s / svc.seconds * 1000:.1f} ms/s)",
        )
    )
    rows.append(
        (
            "ratio: service ticks per CPU second / ceiling's",
            f"{ratio * 100:.0f} %",
            f">= {TARGET_RATIO * 100:.0f} %",
            verdict(ratio >= TARGET_RATIO),
            f"per round: {', '.join(f'{r * 100:.0f} %' for r in round_ratios)} "
            f"(median {median(round_ratios) * 100:.0f} %)",
        )
    )
    print_table(rows)
    errors = svc.errors + ceil.errors
    if errors:
        print(f"client errors: {'; '.join(errors[:5])}")
    print()
    s.servers.print_epilogue()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        url, n, t0, t1, out = sys.argv[2:7]
        run_async(_client(url, int(n), float(t0), float(t1), Path(out)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each measures both servers, in alternating order")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per server per round")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds the clients are connected before recording")
    add_session_options(ap)
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 round of 5 s each")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 5.0
    return run_session("ticker-ticks-bench-", lambda s: measure(s, args), max_runtime=args.max_runtime, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
