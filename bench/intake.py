"""Intake benchmark: how many orders/s the service accepts, and how fast it answers.

    .venv/bin/python bench/intake.py            # full run, about 4-5 minutes
    .venv/bin/python bench/intake.py --quick    # 1 run of 5 s each, for a smoke test
    .venv/bin/python bench/intake.py --compare-with ../other-checkout   # (a) for two source trees

Starts an embedded PostgreSQL in a temporary directory, then measures:

  (a) max accepted orders/s (202 answers to POST /orders/place?wait=0) with wrk, closed loop, for
      - the service as deployed by default (relay workers in the same process),
      - the service with TICKER_RELAY_WORKERS=0 (an intake-only instance: it only accepts orders;
        another process with workers would execute them),
      - bench/ceiling_app.py, a bare Litestar + asyncpg app doing the minimal outbox transaction;
      each --runs times (median reported), every run on a fresh database and a fresh server process;
  (b) p50/p99 latency of POST /orders/place?wait=0 at a fixed open-loop rate (default 300/s), the
      service in its default configuration (and, for reference, the ceiling app at the same rate);
      latency is measured from each request's *scheduled* send time, so a stalled server cannot
      hide its stall by slowing the client down (no coordinated omission);
  (c) end-to-end latency of POST /orders/place?wait=5 (until the broker's 201) at a moderate
      open-loop rate (default 50/s), default configuration.
  (d) how fast the relay executes: orders queued by an intake-only instance (MARKET, so each
      fills inside the paper broker's place call) are drained by a default instance; executed/s
      from the tasks' timestamps, and the paper book checked for one order per tag.

With --compare-with PATH it measures only (a), for the default configuration of this tree, of the
tree at PATH (a git worktree or checkout of another commit: its own .venv if it has one, else this
venv with PYTHONPATH=PATH/src) and of the ceiling app, interleaved run by run, and prints the
medians and each tree's ratio to the ceiling.

Needs `wrk` (apt-get install -y wrk). Sends traffic to 127.0.0.1 only. All processes it starts
are stopped at the end, on Ctrl-C, on errors and when --max-runtime is exceeded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from harness.load import OpenLoopResult, WrkResult, open_loop, run_wrk, write_wrk_script
from harness.procs import cpu_seconds, log
from harness.report import Row, fmt_rate, median, print_table, status_text, verdict
from harness.servers import THIS_TREE, Config, Tree
from harness.session import Session, add_session_options, run_session

BODY = {
    "exchange": "NFO",
    "tradingsymbol": "NIFTY25NOVFUT",
    "transaction_type": "BUY",
    "quantity": 50,
    "product": "NRML",
    "order_type": "LIMIT",
    "price": 18000,
}
BODY_JSON = json.dumps(BODY, separators=(",", ":"))
# (d): orders that fill inside the place call, with a deadline long enough to wait in the queue
MARKET_JSON = json.dumps(
    {**{k: v for k, v in BODY.items() if k != "price"}, "order_type": "MARKET", "expires_in": 3600},
    separators=(",", ":"),
)
PLACE = "/orders/place?wait=0"

TARGET_ORDERS_PER_S = 1000.0
TARGET_P99_MS = 20.0
TARGET_RATIO = 0.45

CONFIGS = {
    "default": Config("default", "service, default (relay workers in-process)", "service"),
    "intake": Config(
        "intake", "service, TICKER_RELAY_WORKERS=0 (intake-only)", "service", {"TICKER_RELAY_WORKERS": "0"}
    ),
    "ceiling": Config("ceiling", "ceiling app (bare Litestar + asyncpg)", "ceiling"),
}


# --------------------------------------------------------------------------------------------
# (a) closed-loop throughput


def throughput_run(
    s: Session, config: Config, script: Path, args: argparse.Namespace, run_no: int
) -> tuple[WrkResult, str]:
    """One wrk run on a fresh server; also the task states right after it (what the relay did meanwhile)."""
    run = s.servers.start(config)
    states = ""
    try:
        run_wrk(run.port, script, threads=args.threads, connections=args.connections, seconds=args.warmup)
        cpu0 = cpu_seconds(run.proc.pid, with_children=True), cpu_seconds(s.db.postmaster, with_children=True)
        res = run_wrk(run.port, script, threads=args.threads, connections=args.connections, seconds=args.duration)
        res.server_cpu = cpu_seconds(run.proc.pid, with_children=True) - cpu0[0]
        res.pg_cpu = cpu_seconds(s.db.postmaster, with_children=True) - cpu0[1]
        if config.kind == "service":
            rows = s.db.query(run.db, "SELECT status, count(*) AS n FROM order_tasks GROUP BY 1")
            states = status_text({r["status"]: r["n"] for r in rows})
    finally:
        s.servers.finish(run)
    log(
        f"(a) {config.label}, run {run_no}/{args.runs}: {fmt_rate(res.accepted_per_s)} accepted "
        f"({res.requests} answers in {res.seconds:.1f}s; {status_text(res.statuses)}; "
        f"socket errors: {res.socket_errors}; p50 {res.p50_ms} ms, p99 {res.p99_ms} ms; "
        f"CPU: server {res.server_cpu / res.seconds:.2f} cores = "
        f"{res.per_order_ms(res.server_cpu):.2f} ms/order, PostgreSQL "
        f"{res.pg_cpu / res.seconds:.2f} cores = {res.per_order_ms(res.pg_cpu):.2f} ms/order)"
    )
    return res, states


def throughput_rows(tput: dict[str, list[WrkResult]], configs: dict[str, Config], names: dict[str, str]) -> list[Row]:
    """The (a) rows: each configuration's median, then `names`' configurations over the ceiling."""
    rows: list[Row] = []
    med: dict[str, float] = {}
    for key, results in tput.items():
        med[key] = median(r.accepted_per_s for r in results)
        reference = configs[key].kind == "ceiling"
        runs = ", ".join(f"{r.accepted_per_s:,.0f}" for r in results)
        srv = median(r.per_order_ms(r.server_cpu) for r in results)
        pg = median(r.per_order_ms(r.pg_cpu) for r in results)
        rows.append(
            (
                f"(a) accepted orders/s: {configs[key].label}",
                fmt_rate(med[key]),
                "(reference)" if reference else f">= {TARGET_ORDERS_PER_S:,.0f}/s",
                verdict(None if reference else med[key] >= TARGET_ORDERS_PER_S),
                f"runs {runs}; non-202 {sum(r.not_accepted for r in results)} of "
                f"{sum(r.requests for r in results)}; CPU/order: server {srv:.2f} ms, PostgreSQL {pg:.2f} ms",
            )
        )
    if med.get("ceiling", 0) > 0:
        for key, name in names.items():
            if key in med:
                ratio = med[key] / med["ceiling"]
                rows.append(
                    (
                        f"(a) ratio {name} / ceiling",
                        f"{ratio:.0%}",
                        f">= {TARGET_RATIO:.0%}",
                        verdict(ratio >= TARGET_RATIO),
                        "",
                    )
                )
    return rows


# --------------------------------------------------------------------------------------------
# (b), (c) open-loop latency


def latency_run(
    s: Session, config: Config, args: argparse.Namespace, *, wait: float, rate: float, expect: int, timeout: float
) -> OpenLoopResult:
    run = s.servers.start(config)
    try:
        return open_loop(
            f"http://127.0.0.1:{run.port}/orders/place?wait={wait:g}",
            BODY_JSON.encode(),
            rate=rate,
            seconds=args.duration,
            warmup=args.warmup,
            expect=expect,
            timeout=timeout,
        )
    finally:
        s.servers.finish(run)


# --------------------------------------------------------------------------------------------
# (d) relay execution rate


def relay_drain(s: Session, args: argparse.Namespace) -> dict[str, float]:
    """Queue with an intake-only instance, then drain with a default one: the relay's rate, without intake load."""
    market = write_wrk_script(s.workdir / "market.lua", url_path=PLACE, body_json=MARKET_JSON)
    intake = s.servers.start(CONFIGS["intake"])
    try:
        run_wrk(intake.port, market, threads=args.threads, connections=args.connections, seconds=args.duration)
    finally:
        s.servers.finish(intake, keep_db=True)
    queued = s.db.query(intake.db, "SELECT count(*) AS n FROM order_tasks")[0]["n"]
    relay = s.servers.start(CONFIGS["default"], db=intake.db)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            left = s.db.query(
                intake.db, "SELECT count(*) AS n FROM order_tasks WHERE status NOT IN ('completed', 'rejected')"
            )[0]["n"]
            if left == 0:
                break
            time.sleep(0.5)
        spans = s.db.query(
            intake.db,
            "SELECT count(*) AS n, EXTRACT(EPOCH FROM max(updated_at) - min(updated_at)) AS s "
            "FROM order_tasks WHERE status = 'completed'",
        )[0]
        paper = s.db.query(intake.db, "SELECT count(DISTINCT tag) AS tags, count(*) AS n FROM paper_orders")[0]
    finally:
        s.servers.finish(relay)
    drain = {"queued": queued, "done": spans["n"], "seconds": float(spans["s"] or 0), **paper}
    log(
        f"(d) relay: {spans['n']} of {queued} queued MARKET orders executed in {drain['seconds']:.1f} s "
        f"({spans['n'] / max(drain['seconds'], 1e-9):,.0f}/s); paper book: {paper['n']} orders, "
        f"{paper['tags']} distinct tags"
    )
    return drain


# --------------------------------------------------------------------------------------------
# the full benchmark


def measure(s: Session, args: argparse.Namespace) -> int:
    script = write_wrk_script(s.workdir / "place.lua", url_path=PLACE, body_json=BODY_JSON)

    tput: dict[str, list[WrkResult]] = {}
    relay_notes: list[str] = []
    if args.only in (None, "throughput"):
        for key in ("default", "intake", "ceiling"):
            tput[key] = []
            for i in range(args.runs):
                res, states = throughput_run(s, CONFIGS[key], script, args, i + 1)
                tput[key].append(res)
                if states:
                    relay_notes.append(f"{key} run {i + 1}: task states right after the run: {states}")

    lat: dict[str, OpenLoopResult] = {}
    if args.only in (None, "latency"):
        for key in ("default", "ceiling"):
            r = lat[key] = latency_run(s, CONFIGS[key], args, wait=0, rate=args.rate, expect=202, timeout=10.0)
            log(
                f"(b) {CONFIGS[key].label} at {args.rate:g}/s, wait=0: p50 {r.pct(50):.1f} ms, "
                f"p99 {r.pct(99):.1f} ms, max {r.pct(100):.1f} ms "
                f"({status_text(r.statuses)}; client max send lag {r.max_send_lag_ms:.1f} ms; "
                f"worst seconds {r.worst_seconds()})"
            )
        e2e = lat["e2e"] = latency_run(
            s, CONFIGS["default"], args, wait=5, rate=args.e2e_rate, expect=201, timeout=15.0
        )
        log(
            f"(c) service default at {args.e2e_rate:g}/s, wait=5: p50 {e2e.pct(50):.1f} ms, "
            f"p99 {e2e.pct(99):.1f} ms, max {e2e.pct(100):.1f} ms ({status_text(e2e.statuses)}; "
            f"worst seconds {e2e.worst_seconds()})"
        )

    drain = relay_drain(s, args) if args.only in (None, "relay") else {}

    print()
    print(
        f"Intake benchmark — {os.cpu_count()} CPUs, wrk -t{args.threads} -c{args.connections}, "
        f"{args.duration:g} s per measurement, {args.runs} run(s) per throughput figure (median); "
        f"total {s.elapsed():.0f} s"
    )
    print("Client, servers and PostgreSQL share the machine; the figures are noisy.")
    print()
    rows = throughput_rows(tput, CONFIGS, {"default": "default", "intake": "intake"})
    if "default" in lat:
        r = lat["default"]
        rows += [
            (
                f"(b) p50 latency at {args.rate:g}/s, wait=0, service default",
                f"{r.pct(50):.1f} ms",
                "",
                "-",
                status_text(r.statuses),
            ),
            (
                f"(b) p99 latency at {args.rate:g}/s, wait=0, service default",
                f"{r.pct(99):.1f} ms",
                f"<= {TARGET_P99_MS:g} ms",
                verdict(r.pct(99) <= TARGET_P99_MS),
                f"max {r.pct(100):.1f} ms",
            ),
        ]
    if "ceiling" in lat:
        r = lat["ceiling"]
        rows.append(
            (
                f"(b) p50 / p99 at {args.rate:g}/s, ceiling app",
                f"{r.pct(50):.1f} / {r.pct(99):.1f} ms",
                "(reference)",
                "-",
                status_text(r.statuses),
            )
        )
    if "e2e" in lat:
        r = lat["e2e"]
        rows += [
            (
                f"(c) end-to-end p50 at {args.e2e_rate:g}/s, wait=5 (201)",
                f"{r.pct(50):.1f} ms",
                "",
                "-",
                status_text(r.statuses),
            ),
            (
                f"(c) end-to-end p99 at {args.e2e_rate:g}/s, wait=5 (201)",
                f"{r.pct(99):.1f} ms",
                "",
                "-",
                f"max {r.pct(100):.1f} ms",
            ),
        ]
    if drain:
        rows.append(
            (
                "(d) relay: queued MARKET orders executed per second (8 workers, one paper account)",
                fmt_rate(drain["done"] / max(drain["seconds"], 1e-9)),
                "",
                "-",
                f"{drain['done']} of {drain['queued']} in {drain['seconds']:.1f} s; paper book "
                f"{drain['n']} orders for {drain['tags']} tags (one each: none placed twice)",
            )
        )
    print_table(rows)
    print()
    print(
        "intake-only = the service with TICKER_RELAY_WORKERS=0: it accepts orders but executes none "
        "(another process with relay workers would)."
    )
    for note in relay_notes:
        print(f"  {note}")
    s.servers.print_epilogue()
    return 0


# --------------------------------------------------------------------------------------------
# --compare-with: (a) for two source trees


def compare(s: Session, args: argparse.Namespace, other: Tree, found: dict[str, str]) -> int:
    """Interleaved, so that the machine's drifting load falls on both trees alike; the order rotates
    each run, so no tree always runs right after the ceiling (or first, on a cold machine)."""
    configs = {
        "this": Config("this", f"service, default, this tree ({THIS_TREE.describe()})", "service"),
        "compared": Config("compared", f"service, default, {other.root} ({other.describe()})", "service", tree=other),
        "ceiling": CONFIGS["ceiling"],
    }
    script = write_wrk_script(s.workdir / "place.lua", url_path=PLACE, body_json=BODY_JSON)
    tput: dict[str, list[WrkResult]] = {key: [] for key in configs}
    relay_notes: list[str] = []
    keys = list(configs)
    for i in range(args.runs):
        for key in keys[i % 3 :] + keys[: i % 3]:
            res, states = throughput_run(s, configs[key], script, args, i + 1)
            tput[key].append(res)
            if states:
                relay_notes.append(f"{key} run {i + 1}: task states right after the run: {states}")

    print()
    print(
        f"Intake benchmark, two trees — {os.cpu_count()} CPUs, wrk -t{args.threads} -c{args.connections}, "
        f"{args.duration:g} s per measurement, {args.runs} run(s) per configuration, interleaved (median); "
        f"total {s.elapsed():.0f} s"
    )
    print("Client, servers and PostgreSQL share the machine; the figures are noisy: compare the ratios.")
    for key in ("this", "compared"):
        print(f"  {key} tree: ticker_service from {found[key]}")
    print()
    rows = throughput_rows(tput, configs, {"this": "this tree", "compared": "compared tree"})
    paired = [
        a.accepted_per_s / b.accepted_per_s
        for a, b in zip(tput["this"], tput["compared"], strict=True)
        if b.accepted_per_s
    ]
    if paired:
        rows.append(
            (
                "(a) ratio this tree / compared tree",
                f"{median(paired):.0%}",
                "(reference)",
                "-",
                f"median of the runs' ratios ({', '.join(f'{p:.0%}' for p in paired)})",
            )
        )
    print_table(rows)
    print()
    for note in relay_notes:
        print(f"  {note}")
    s.servers.print_epilogue()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="throughput runs per configuration (median)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of discarded load before each")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--rate", type=float, default=300.0, help="open-loop rate for (b), orders/s")
    ap.add_argument("--e2e-rate", type=float, default=50.0, help="open-loop rate for (c), orders/s")
    add_session_options(ap)
    ap.add_argument(
        "--only", choices=["throughput", "latency", "relay"], help="run only part (a), parts (b)+(c), or (d)"
    )
    ap.add_argument(
        "--compare-with",
        metavar="PATH",
        type=Path,
        help="measure only (a), default configuration, for this tree and the source tree at PATH (and the ceiling)",
    )
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 run, 5 s each")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 5.0, 1.0
    if args.compare_with is not None and args.only not in (None, "throughput"):
        ap.error("--compare-with measures only (a): it does not go with --only " + args.only)

    if shutil.which("wrk") is None and args.only in (None, "throughput", "relay"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    if args.compare_with is None:
        return run_session("ticker-bench-", lambda s: measure(s, args), max_runtime=args.max_runtime, keep=args.keep)
    other = Tree.at(args.compare_with)
    try:
        found = {"this": THIS_TREE.check(), "compared": other.check()}
    except RuntimeError as exc:
        print(f"--compare-with: {exc}", file=sys.stderr)
        return 2
    for key, where in found.items():
        log(f"{key} tree: ticker_service from {where}")
    return run_session(
        "ticker-bench-", lambda s: compare(s, args, other, found), max_runtime=args.max_runtime, keep=args.keep
    )


if __name__ == "__main__":
    sys.exit(main())
