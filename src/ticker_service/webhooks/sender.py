"""Sending webhook deliveries: claim, POST, record; in every process, isolated per endpoint.

* Claims take a lease (`sending`) with `FOR UPDATE SKIP LOCKED`, so processes share the work and a
  delivery is sent by one of them at a time; a lease that runs out (a process died mid-send) sends
  the delivery again, with the same `webhook-id`, so receivers can drop the duplicate.
* Each delivery is its own task. At most `WEBHOOK_CONCURRENCY` are in flight per process, shared
  fairly between accounts first (an account never holds every slot: there is always room for one
  more), then between an account's endpoints, at most `WEBHOOK_ENDPOINT_CONCURRENCY` per endpoint. So
  a receiver that hangs until the timeout ties up only its own account's share.
* An endpoint whose attempts get no answer at all (timeouts, failed connections) is backed off: no
  request until the retry schedule's delay for its count of stalls in a row has passed, then one
  request at a time (a probe, across instances) until it answers again; the deliveries waiting behind
  it keep their attempts.
* Results are recorded in batches (one statement for the deliveries, one for their endpoints):
  2xx is delivered; anything else (redirects are not followed) retries on `WEBHOOK_RETRY_SCHEDULE`
  with jitter, honouring `Retry-After`, and is dead (replayable) after the last attempt. A 410, or
  failing without a single success for `WEBHOOK_DISABLE_AFTER` seconds, disables the endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import asyncpg
import structlog

from ticker_service import __version__
from ticker_service.settings import Settings
from ticker_service.system import metrics
from ticker_service.webhooks import signing
from ticker_service.webhooks.urls import UnsafeAddress, UnsafeUrl, UrlGuard

log = structlog.get_logger("ticker.webhooks")

# The claim shares this process's free slots fairly: between accounts first, then between an account's
# endpoints. Candidates are the first due deliveries of every endpoint (as many as the endpoint has
# room for: WEBHOOK_ENDPOINT_CONCURRENCY, or one probe at a time, across instances, while it stalls),
# so an account with a long backlog cannot crowd others out of the candidates. An account may hold at
# most WEBHOOK_CONCURRENCY / (accounts with work + 1) slots: there is always room for one more account.
# Within that, candidates are taken round-robin (first of each endpoint, then second, ...), and the
# accounts likewise. $5/$6 and $7/$8 are this process's deliveries in flight per endpoint and account;
# $10 the endpoints with a stall not yet recorded (until it is, the database does not know to back off).
_CLAIM = """
WITH inflight_hooks AS (
    SELECT * FROM unnest($5::text[], $6::int[]) AS f(webhook_id, n)
), inflight_accounts AS (
    SELECT * FROM unnest($7::text[], $8::int[]) AS a(account_id, n)
), hooks AS (
    SELECT w.webhook_id, w.account_id, CASE WHEN w.stalled > 0 THEN 1 ELSE $4 END - COALESCE(f.n, 0) AS room
    FROM webhooks AS w LEFT JOIN inflight_hooks AS f ON f.webhook_id = w.webhook_id
    WHERE w.active AND (w.backoff_until IS NULL OR w.backoff_until <= now()) AND NOT (w.webhook_id = ANY($10::text[]))
      AND (w.stalled = 0 OR NOT EXISTS (
          SELECT 1 FROM webhook_deliveries AS s WHERE s.webhook_id = w.webhook_id AND s.status = 'sending'))
), candidates AS (
    SELECT h.account_id, x.delivery_id, x.next_attempt_at, x.rank
    FROM hooks AS h CROSS JOIN LATERAL (
        SELECT d.delivery_id, d.next_attempt_at, row_number() OVER (ORDER BY d.next_attempt_at) AS rank
        FROM webhook_deliveries AS d
        WHERE d.webhook_id = h.webhook_id AND d.status IN ('pending', 'retrying') AND d.next_attempt_at <= now()
        ORDER BY d.next_attempt_at
        LIMIT GREATEST(h.room, 0)
    ) AS x
), busy AS (
    SELECT count(*) AS n FROM (SELECT account_id FROM candidates UNION SELECT account_id FROM inflight_accounts) AS b
), ranked AS (
    SELECT c.delivery_id, c.next_attempt_at,
           row_number() OVER (PARTITION BY c.account_id ORDER BY c.rank, c.next_attempt_at) AS account_rank,
           GREATEST(1, $9 / (busy.n + 1)) - COALESCE(a.n, 0) AS account_room
    FROM candidates AS c CROSS JOIN busy LEFT JOIN inflight_accounts AS a ON a.account_id = c.account_id
), fair AS (
    SELECT delivery_id FROM ranked WHERE account_rank <= account_room
    ORDER BY account_rank, next_attempt_at
    LIMIT $3
), c AS (
    SELECT d.delivery_id FROM webhook_deliveries AS d JOIN fair ON fair.delivery_id = d.delivery_id
    WHERE d.status IN ('pending', 'retrying')
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries AS d SET status = 'sending', attempts = d.attempts + 1, lease_owner = $1,
    lease_expires_at = now() + make_interval(secs => $2), updated_at = now()
FROM c, webhooks AS w
WHERE d.delivery_id = c.delivery_id AND w.webhook_id = d.webhook_id
RETURNING d.delivery_id, d.webhook_id, d.account_id, d.event_id, d.attempts, d.body, w.url, w.secret,
    w.stalled > 0 AS probe
"""
_RECORD = """
UPDATE webhook_deliveries AS d SET status = u.status, last_status_code = u.code, last_error = u.error,
    next_attempt_at = now() + make_interval(secs => u.delay),
    delivered_at = CASE WHEN u.status = 'delivered' THEN now() ELSE d.delivered_at END,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::text[], $6::float8[])
    AS u(delivery_id, attempts, status, code, error, delay)
WHERE d.delivery_id = u.delivery_id AND d.status = 'sending' AND d.lease_owner = $7 AND d.attempts = u.attempts
"""
# Per endpoint in a batch: ok (any 2xx), gone (a 410), answered (any HTTP answer), stalled (an attempt
# that got no answer: timeout or connection failure), probe (a stalled attempt that was the endpoint's
# probe). A failure starts (or continues) the endpoint's failing period; past WEBHOOK_DISABLE_AFTER
# without a success, or on a 410, it is disabled. Any answer ends a stall; a stall backs the endpoint off
# for the retry schedule's entry of its count of stalls in a row ($6, at most $7 seconds): a stall of the
# requests sent before the endpoint was known to stall counts once, each failed probe once more.
_ENDPOINTS = """
WITH u AS (
    SELECT u.webhook_id, u.ok, u.gone, u.answered, u.stalled,
           NOT u.ok AND COALESCE(w.failing_since, now()) <= now() - make_interval(secs => $4) AS too_long,
           CASE WHEN u.answered THEN 0 WHEN u.probe THEN w.stalled + 1 WHEN u.stalled THEN GREATEST(w.stalled, 1)
                ELSE w.stalled END AS stalls
    FROM unnest($1::text[], $2::bool[], $3::bool[], $5::bool[], $8::bool[], $9::bool[])
        AS u(webhook_id, ok, gone, answered, stalled, probe)
    JOIN webhooks AS w ON w.webhook_id = u.webhook_id
)
UPDATE webhooks AS w SET
    last_success_at = CASE WHEN u.ok THEN now() ELSE w.last_success_at END,
    failing_since = CASE WHEN u.ok THEN NULL ELSE COALESCE(w.failing_since, now()) END,
    stalled = u.stalls,
    backoff_until = CASE
        WHEN u.stalls = 0 THEN NULL
        WHEN u.stalled THEN now() + make_interval(
            secs => LEAST($7, ($6::float8[])[LEAST(u.stalls, cardinality($6::float8[]))]))
        ELSE w.backoff_until END,
    active = w.active AND NOT (u.gone OR u.too_long),
    disabled_at = CASE WHEN w.active AND (u.gone OR u.too_long) THEN now() ELSE w.disabled_at END,
    disabled_reason = CASE
        WHEN NOT w.active THEN w.disabled_reason
        WHEN u.gone THEN 'the receiver answered 410 Gone'
        WHEN u.too_long THEN 'no successful delivery for ' || $4::text || ' seconds'
        ELSE w.disabled_reason END,
    updated_at = now()
FROM u
WHERE w.webhook_id = u.webhook_id
  AND NOT (u.ok AND w.failing_since IS NULL AND w.stalled = 0 AND u.stalls = 0
           AND COALESCE(w.last_success_at > now() - interval '1 second', false))
"""
MAX_ENDPOINT_BACKOFF = 300.0  # seconds: a stalled endpoint is probed at least this often
_EXPIRED = """
UPDATE webhook_deliveries SET status = 'retrying', lease_owner = NULL, lease_expires_at = NULL,
    next_attempt_at = now(), last_error = 'the sending process stopped before recording the result'
WHERE status = 'sending' AND lease_expires_at < now()
"""


@dataclass(slots=True)
class Result:
    delivery_id: str
    webhook_id: str
    account_id: str
    attempts: int
    probe: bool  # sent while the endpoint was stalled: the one request it gets at a time
    code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    stalled: bool = False  # no HTTP answer at all: the timeout passed or the connection failed

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def _connect_error(exc: aiohttp.ClientConnectorError) -> str:
    """What a failed connection says, without the addresses it tried (no DNS answers in answers)."""
    if isinstance(exc.os_error, UnsafeAddress):
        return f"url: {exc.os_error}"
    reason = exc.os_error.strerror or type(exc.os_error).__name__
    return f"{type(exc).__name__}: cannot connect to {exc.host}:{exc.port} ({reason})"[:500]


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    return None


class DeliverySender:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, guard: UrlGuard) -> None:
        self.pool = pool
        self.settings = settings
        self.guard = guard
        self.owner = f"{settings.server.instance_id}:webhooks"
        self.schedule = settings.webhooks.retry_schedule
        self._inflight: Counter[str] = Counter()  # per endpoint
        self._accounts: Counter[str] = Counter()  # per account
        self._stalling: Counter[str] = Counter()  # endpoints: stalls not recorded yet (no claims meanwhile)
        self._total = 0
        self._wake = asyncio.Event()
        self._results: list[Result] = []
        self._results_ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._rng = random.Random()
        self._keys: dict[str, bytes] = {}

    def notify(self, _payload: str = "") -> None:
        self._wake.set()

    async def start(self) -> None:
        self._stop.clear()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.webhooks.timeout),
            # the guard's resolver: one lookup per connection, checked, and the connection uses it
            connector=aiohttp.TCPConnector(
                limit=self.settings.webhooks.concurrency, ttl_dns_cache=30, resolver=self.guard.resolver
            ),
            headers={"User-Agent": f"ticker-service/{__version__}"},
        )
        self._loops = [
            asyncio.create_task(self._claim_loop(), name="webhook-claims"),
            asyncio.create_task(self._record_loop(), name="webhook-results"),
        ]

    async def stop(self) -> None:
        """Let in-flight sends finish (they are bounded by the timeout) and record them."""
        self._stop.set()
        self._wake.set()
        if self._sends:
            await asyncio.wait(self._sends, timeout=self.settings.webhooks.timeout + 1)
        self._results_ready.set()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=5)
        if self._session is not None:
            await self._session.close()

    # ---- claiming ------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sweep > self.settings.execution.poll_interval:
                    last_sweep = time.monotonic()
                    await self.pool.execute(_EXPIRED)
                if await self._claim_some():
                    continue
            except Exception:
                log.exception("claiming webhook deliveries failed")
            await self._pause(self.settings.execution.poll_interval)

    async def _claim_some(self) -> bool:
        """Claim into the free slots; True when it filled them (more may be due)."""
        concurrency = self.settings.webhooks.concurrency
        free = concurrency - self._total
        if free <= 0:
            return False
        want = min(free, 200)
        lease = float(2 * self.settings.webhooks.timeout + 5)  # the send is bounded by the timeout
        # shares are computed from this process's in-flight counts: claims run one at a time here, so
        # the counts are exact
        rows = await self.pool.fetch(
            _CLAIM,
            self.owner,
            lease,
            want,
            self.settings.webhooks.endpoint_concurrency,
            list(self._inflight),
            list(self._inflight.values()),
            list(self._accounts),
            list(self._accounts.values()),
            concurrency,
            list(self._stalling),
        )
        for row in rows:
            self._inflight[row["webhook_id"]] += 1
            self._accounts[row["account_id"]] += 1
            self._total += 1
            task = asyncio.create_task(self._send(row))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        return len(rows) == want

    async def _pause(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    # ---- sending -------------------------------------------------------------------------------

    def _key(self, secret: str) -> bytes:
        key = self._keys.get(secret)
        if key is None:
            key = self._keys[secret] = signing.signing_key(secret)
        return key

    async def _send(self, row: Any) -> None:
        body: bytes = row["body"].encode()
        result = Result(row["delivery_id"], row["webhook_id"], row["account_id"], row["attempts"], row["probe"])
        started = time.perf_counter()
        try:
            assert self._session is not None
            target = self.guard.check_literal(row["url"])
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": row["event_id"],
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signing.sign(self._key(row["secret"]), row["event_id"], timestamp, body),
            }
            if self.guard.may_carry_secret(target):
                headers["X-Webhook-Secret"] = row["secret"]
            async with self._session.post(row["url"], data=body, headers=headers, allow_redirects=False) as resp:
                result.code = resp.status
                result.retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                await resp.content.read(64 * 1024)
            if not result.ok:
                result.error = f"HTTP {resp.status}" + (
                    ": redirects are not followed" if 300 <= resp.status < 400 else ""
                )
        except UnsafeUrl as exc:
            result.error = str(exc)
        except aiohttp.ClientConnectorError as exc:
            result.error = _connect_error(exc)
            result.stalled = not isinstance(exc.os_error, UnsafeAddress)
        except TimeoutError:
            result.error = f"no answer within {self.settings.webhooks.timeout:g} s"
            result.stalled = result.code is None
        except aiohttp.ClientError as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:500]
            result.stalled = result.code is None
        except Exception as exc:  # a bug must not lose the result
            log.exception("webhook send failed unexpectedly", delivery_id=row["delivery_id"])
            result.error = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            metrics.WEBHOOK_SECONDS.observe(time.perf_counter() - started)
            for counts, key in ((self._inflight, row["webhook_id"]), (self._accounts, row["account_id"])):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]
            self._total -= 1
            if result.stalled:
                self._stalling[result.webhook_id] += 1
            self._results.append(result)
            self._results_ready.set()
            self._wake.set()

    # ---- recording -----------------------------------------------------------------------------

    def _next(self, result: Result) -> tuple[str, float]:
        """(delivery status, seconds until the next attempt)."""
        if result.ok:
            return "delivered", 0.0
        if result.code == 410 or result.attempts > len(self.schedule):
            return "dead", 0.0
        delay = self.schedule[result.attempts - 1] * (0.8 + 0.4 * self._rng.random())
        if result.retry_after is not None:  # the receiver's own pace, within reason (a day at most)
            delay = max(delay, min(result.retry_after, 86_400.0))
        return "retrying", delay

    async def _record_loop(self) -> None:
        while not (self._stop.is_set() and not self._sends and not self._results):
            await self._results_ready.wait()
            self._results_ready.clear()
            await asyncio.sleep(0.005)  # let a few more finish: one statement records them all
            batch, self._results = self._results, []
            if not batch:
                continue
            try:
                await self._record(batch)
            except Exception:
                log.exception("recording webhook results failed; the leases will resend them", n=len(batch))
            finally:
                for result in batch:
                    if result.stalled:
                        self._stalling[result.webhook_id] -= 1
                        if self._stalling[result.webhook_id] <= 0:
                            del self._stalling[result.webhook_id]
                self._wake.set()  # claims held back for those endpoints may go on

    async def _record(self, batch: list[Result]) -> None:
        decided = [(r, *self._next(r)) for r in batch]
        endpoints: dict[str, _EndpointOutcome] = {}
        for r, _, _ in decided:
            endpoints.setdefault(r.webhook_id, _EndpointOutcome()).add(r)
        outcomes = list(endpoints.values())
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                _RECORD,
                [r.delivery_id for r, _, _ in decided],
                [r.attempts for r, _, _ in decided],
                [status for _, status, _ in decided],
                [r.code for r, _, _ in decided],
                [r.error for r, _, _ in decided],
                [delay for _, _, delay in decided],
                self.owner,
            )
            await conn.execute(
                _ENDPOINTS,
                list(endpoints),
                [o.ok for o in outcomes],
                [o.gone for o in outcomes],
                float(self.settings.webhooks.disable_after),
                [o.answered for o in outcomes],
                list(self.schedule),
                MAX_ENDPOINT_BACKOFF,
                [o.stalled for o in outcomes],
                [o.probe_stalled for o in outcomes],
            )
        for _, status, _ in decided:
            metrics.WEBHOOK_DELIVERIES.labels(outcome=status).inc()


@dataclass(slots=True)
class _EndpointOutcome:
    """What a batch of results says about one endpoint."""

    ok: bool = False  # a 2xx
    gone: bool = False  # a 410
    answered: bool = False  # any HTTP answer: the endpoint is not stalled
    stalled: bool = False  # an attempt with no answer
    probe_stalled: bool = False  # ... that was the endpoint's probe

    def add(self, result: Result) -> None:
        self.ok = self.ok or result.ok
        self.gone = self.gone or result.code == 410
        self.answered = self.answered or result.code is not None
        self.stalled = self.stalled or result.stalled
        self.probe_stalled = self.probe_stalled or (result.stalled and result.probe)
