"""The load generators, and why there are two.

wrk (closed loop: each connection sends its next request when the previous answer arrives) finds
the most a server accepts. It cannot measure latency honestly, since a stalled server also stalls
its client; for that the fixed-rate client sends on a timetable and measures every latency from the
request's *scheduled* send time (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness.procs import spawn, stop
from harness.report import percentile

T = TypeVar("T")

# wrk's own summary counts only non-2xx answers; this hook counts every status, so a 200 or a 201
# where a 202 is expected is not mistaken for an accepted request.
_WRK_LUA = """
wrk.method = "POST"
wrk.path = "[[PATH]]"
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
"""


def write_wrk_script(path: Path, *, url_path: str, body_json: str) -> Path:
    path.write_text(_WRK_LUA.replace("[[PATH]]", url_path).replace("[[BODY]]", f"[[{body_json}]]"))
    return path


@dataclass
class WrkResult:
    accepted_per_s: float
    requests: int
    seconds: float
    statuses: dict[int, int]
    socket_errors: str
    p50_ms: float | None
    p99_ms: float | None
    accepted_status: int = 202
    server_cpu: float = 0.0  # CPU seconds used during the run by the server process
    pg_cpu: float = 0.0  # ... and by PostgreSQL (all its processes)

    def per_order_ms(self, cpu: float) -> float:
        n = self.statuses.get(self.accepted_status, 0)
        return 1000.0 * cpu / n if n else float("nan")

    @property
    def not_accepted(self) -> int:
        return sum(v for k, v in self.statuses.items() if k != self.accepted_status)


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(
    port: int, script: Path, *, threads: int, connections: int, seconds: float, accepted_status: int = 202
) -> WrkResult:
    """The rate counts only `accepted_status` answers over wrk's own measured span."""
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
        accepted_per_s=statuses.get(accepted_status, 0) / secs,
        requests=requests,
        seconds=secs,
        statuses=statuses,
        socket_errors=sock.group(1) if sock else "none",
        p50_ms=_ms(p50.group(1)) if p50 else None,
        p99_ms=_ms(p99.group(1)) if p99 else None,
        accepted_status=accepted_status,
    )


# --------------------------------------------------------------------------------------------
# open loop


async def fixed_timetable(
    rate: float,
    warmup: float,
    seconds: float,
    send: Callable[[float, bool], Coroutine[Any, Any, None]],
    clock: Callable[[], float],
) -> float:
    """Start `send(scheduled, record)` at `rate`/s whatever the answers do; returns the timetable's start.

    Each send is its own task, so a slow answer never delays the next send; `record` is false for
    the warm-up's sends. The caller's latencies run from `scheduled`, on the same `clock`.
    """
    n_warm, n = int(rate * warmup), int(rate * seconds)
    t0 = clock() + 0.05
    pending: list[asyncio.Task[None]] = []
    for i in range(n_warm + n):
        scheduled = t0 + i / rate
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(send(scheduled, i >= n_warm)))
    await asyncio.gather(*pending)
    return t0


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
        return percentile(self.latencies_ms, q)


async def _open_loop(
    url: str, body: bytes, rate: float, seconds: float, warmup: float, expect: int, timeout: float
) -> OpenLoopResult:
    import aiohttp

    headers = {"Content-Type": "application/json"}
    loop = asyncio.get_running_loop()
    statuses: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    lags: list[float] = []
    timeline: list[tuple[float, float]] = []  # (scheduled, latency ms); offsets once the start is known

    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one(scheduled: float, record: bool) -> None:
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
                timeline.append((scheduled, elapsed * 1000.0))

        t0 = await fixed_timetable(rate, warmup, seconds, one, loop.time)
    start = t0 + warmup
    return OpenLoopResult(
        rate,
        int(rate * seconds),
        dict(statuses),
        latencies,
        max(lags) * 1000.0 if lags else 0.0,
        [(scheduled - start, ms) for scheduled, ms in timeline],
    )


def open_loop(
    url: str, body: bytes, *, rate: float, seconds: float, warmup: float, expect: int, timeout: float
) -> OpenLoopResult:
    """POST `body` to `url` at a fixed rate; latencies of the `expect`ed answers, every status counted."""
    return run_async(_open_loop(url, body, rate, seconds, warmup, expect, timeout))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """uvloop when installed: the client shares the CPU with the servers it measures, so it should cost little."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
