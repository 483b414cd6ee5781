"""Webhook delivery benchmark: deliveries per second to a local receiver.

    .venv/bin/python bench/webhooks.py              # 20,000 deliveries, 3 runs (median)
    .venv/bin/python bench/webhooks.py --quick      # 5,000 deliveries, 1 run

Starts an embedded PostgreSQL in a temporary directory, a receiver process (aiohttp, answers 200 at
once) and the service (`ticker-service serve`, default configuration, WEBHOOK_ALLOW_PRIVATE=true).
It registers one webhook through the API, then queues N deliveries for it in one INSERT (as the
fan-out would: pending rows with signed-per-attempt bodies) and NOTIFYs the senders; the rate is
the number delivered over the span from the first to the last `delivered_at`, and the receiver's
count must equal N (no loss; duplicates counted separately). Target: at least 1,000 deliveries/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
import urllib.request
from typing import Any

from harness.procs import free_port, log, spawn, stop
from harness.report import median
from harness.servers import Config
from harness.session import Session, add_session_options, run_session

TARGET = 1000.0
SERVICE = Config(
    "webhooks", "service, default, WEBHOOK_ALLOW_PRIVATE=true", "service", {"WEBHOOK_ALLOW_PRIVATE": "true"}
)

RECEIVER = textwrap.dedent(
    """
    import os, sys
    from aiohttp import web
    seen = {}
    async def hook(request):
        await request.read()
        key = request.headers["webhook-id"]
        seen[key] = seen.get(key, 0) + 1
        return web.Response(text="OK")
    async def count(request):
        return web.json_response({"unique": len(seen), "total": sum(seen.values())})
    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
    """
)

QUEUE = """
INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, event, account_id, seq, body, status)
SELECT 'dl_bench_' || g, '{webhook_id}', 'ev_bench_' || g, 'order_completed', 'primary', g,
       '{{"event":"order_completed","event_id":"ev_bench_' || g || '","account_id":"primary",'
       || '"data":{{"order_id":"' || g || '","status":"COMPLETE"}},"timestamp":"2026-11-23T09:15:30.123Z",'
       || '"seq":' || g || '}}',
       'pending'
FROM generate_series(1, {n}) AS g;
SELECT pg_notify('ticker_webhooks', '');
"""


def http_json(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return dict(json.loads(r.read()))


def run_once(s: Session, n: int, index: int) -> dict[str, float]:
    rport = free_port()
    script = s.workdir / "receiver.py"
    script.write_text(RECEIVER)
    receiver = spawn([sys.executable, str(script), str(rport)], out=s.workdir / f"receiver-{index}.log")
    try:
        server = s.servers.start(SERVICE)
        try:
            hook = http_json(
                "POST",
                f"http://127.0.0.1:{server.port}/advanced/webhooks",
                {"url": f"http://127.0.0.1:{rport}/hook", "account_id": "primary", "events": ["order_completed"]},
            )
            statements = QUEUE.format(webhook_id=hook["webhook_id"], n=n)
            started = time.monotonic()
            s.db.execute(server.db, statements)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                left = s.db.query(
                    server.db, "SELECT count(*) AS n FROM webhook_deliveries WHERE status <> 'delivered'"
                )[0]["n"]
                if left == 0:
                    break
                time.sleep(0.25)
            wall = time.monotonic() - started
            span = s.db.query(
                server.db,
                "SELECT count(*) AS n, EXTRACT(EPOCH FROM max(delivered_at) - min(delivered_at)) AS s, "
                "max(attempts) AS a FROM webhook_deliveries WHERE status = 'delivered'",
            )[0]
            counts = http_json("GET", f"http://127.0.0.1:{rport}/count")
        finally:
            s.servers.finish(server)
    finally:
        stop(receiver)
    rate = float(span["n"]) / max(float(span["s"] or 0), 1e-9)
    log(
        f"run {index}: {span['n']} of {n} delivered in {float(span['s']):.2f} s ({rate:,.0f}/s; wall incl. "
        f"polling {wall:.1f} s); receiver saw {counts['unique']} distinct, {counts['total']} in all; "
        f"max attempts {span['a']}"
    )
    return {"rate": rate, "delivered": float(span["n"]), "unique": float(counts["unique"])}


def measure(s: Session, args: argparse.Namespace) -> int:
    results = [run_once(s, args.deliveries, i + 1) for i in range(args.runs)]
    rate = median(r["rate"] for r in results)
    lost = sum(args.deliveries - r["unique"] for r in results)
    print()
    print(
        f"webhook deliveries/s to a local receiver (median of {args.runs}): {rate:,.0f}/s "
        f"(target >= {TARGET:,.0f}/s: {'PASS' if rate >= TARGET else 'FAIL'}); "
        f"runs {', '.join(format(r['rate'], ',.0f') for r in results)}; lost {lost:.0f}"
    )
    s.servers.print_epilogue()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deliveries", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    add_session_options(ap)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.deliveries, args.runs = 5000, 1
    return run_session(
        "ticker-webhook-bench-", lambda s: measure(s, args), max_runtime=args.max_runtime, keep=args.keep
    )


if __name__ == "__main__":
    sys.exit(main())
