"""The relay: workers that claim order tasks and drive the broker.

The rules that keep an order from being lost or placed twice (invariants 1 and 2):

* A claim commits `running`, the attempt number and a short lease *before* the broker call, and no
  transaction is open during the call. The lease is renewed while the call is in flight.
* The finish is fenced: it only applies if the task is still `running` under this worker's lease
  and attempt. A worker that lost its lease has its answer discarded; the order, if any, is found
  again by its tag.
* Any ambiguous outcome (timeout, lost answer, a crash, a lease that ran out) moves the task to
  `unknown`, never back to `pending`. An `unknown` task is reconciled against the broker's book by
  its tag before anything is sent again, and it never expires.
* Only failures known to have happened before the request reached the broker are retried
  (`retrying`, exponential backoff with jitter); after `max_attempts` they are dead letters.
* A task confirmed never sent that is past its deadline fails instead of reaching the market late.

Workers wake on NOTIFY (through `notify()`), chain-wake one another while there is work, and poll as
a fallback; shutdown lets in-flight calls finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import structlog

from ticker_service.batches.progress import BatchProgress
from ticker_service.brokers.base import (
    TERMINAL_ORDER_STATUSES,
    Broker,
    BrokerAmbiguous,
    BrokerAuthError,
    BrokerOrder,
    BrokerRejected,
    BrokerUnavailable,
    ModifyOrderParams,
    OrderNotFound,
    PlaceOrderParams,
)
from ticker_service.orders.mirror import apply_snapshot
from ticker_service.orders.tasks import (
    COMPLETED,
    DEAD_LETTER,
    FAILED,
    REJECTED,
    RESOLVED,
    RETRYING,
    RUNNING,
    UNKNOWN,
)
from ticker_service.outbox.events import NewEvent, task_failure_event, task_status_event
from ticker_service.outbox.writer import append_events_and_commit
from ticker_service.settings import Settings
from ticker_service.system import metrics

log = structlog.get_logger("ticker.relay")

# The relay's statements, on the raw asyncpg pool: each is prepared once per connection, and the
# claim is a single statement (its own transaction), so a task costs few round trips.
_NEXT_DUE = (
    "SELECT EXTRACT(EPOCH FROM (min(next_attempt_at) - now())) FROM order_tasks "
    "WHERE status IN ('pending', 'retrying', 'unknown')"
)
_CLAIM = """
WITH c AS (
    SELECT task_id FROM order_tasks
    WHERE status IN ('pending', 'retrying', 'unknown') AND next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), u AS (
    UPDATE order_tasks AS t SET
        status = CASE WHEN t.status <> 'unknown' AND t.deadline_at > now() THEN 'running' ELSE t.status END,
        attempts = CASE WHEN t.status <> 'unknown' AND t.deadline_at > now() THEN t.attempts + 1 ELSE t.attempts END,
        updated_at = CASE WHEN t.status <> 'unknown' AND t.deadline_at > now() THEN now() ELSE t.updated_at END,
        lease_owner = $1,
        lease_expires_at = now() + make_interval(secs => $2)
    FROM c WHERE t.task_id = c.task_id
    RETURNING t.*
), s AS (
    INSERT INTO account_seq AS a (account_id, last_seq)
    SELECT u.account_id, 1 FROM u WHERE u.status = 'running'
    ON CONFLICT (account_id) DO UPDATE SET last_seq = a.last_seq + 1
    RETURNING last_seq
), e AS (
    INSERT INTO outbox_events (event_id, account_id, seq, event, task_id, order_id, data)
    SELECT $3, u.account_id, s.last_seq, 'task_status', u.task_id, u.order_id,
           jsonb_build_object('event', 'task_status', 'task_id', u.task_id, 'status', 'running',
                              'operation', u.operation, 'attempts', u.attempts, 'order_id', u.order_id,
                              'result', NULL, 'error', NULL, 'worker', $1::text)
    FROM u CROSS JOIN s
    RETURNING account_id, seq
)
SELECT u.*, (SELECT seq FROM e) AS seq,
       (SELECT pg_notify('ticker_events', e.account_id || ':' || e.seq) FROM e) AS notified
FROM u
"""
_RENEW = """
UPDATE order_tasks SET lease_expires_at = now() + make_interval(secs => $4)
WHERE task_id = $1 AND lease_owner = $2 AND attempts = $3
RETURNING task_id
"""
_SET_STATE = """
UPDATE order_tasks SET status = $2, last_error = $3, next_attempt_at = now() + make_interval(secs => $4),
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
    unknown_since = CASE $5 WHEN 'set' THEN now() WHEN 'clear' THEN NULL ELSE unknown_since END
WHERE task_id = $1
"""
_SET_FINAL = """
UPDATE order_tasks SET status = $2, last_error = $3, order_id = COALESCE($4, order_id),
    result = COALESCE($5::jsonb, result), lease_owner = NULL, lease_expires_at = NULL, updated_at = now(),
    unknown_since = NULL
WHERE task_id = $1
RETURNING CASE WHEN $6 THEN pg_notify('ticker_task_done', task_id) END
"""
_STILL_UNKNOWN = """
UPDATE order_tasks SET lease_owner = NULL, lease_expires_at = NULL, last_error = $2,
    next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
WHERE task_id = $1
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a broker call (or a reconciliation) established."""

    kind: str  # placed | done | rejected | before_send | auth | ambiguous | not_found | still_unknown
    message: str | None = None
    order_id: str | None = None
    order: BrokerOrder | None = None


class Relay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        brokers: Callable[[str], Broker],
        settings: Settings,
        *,
        on_task_resolved: Callable[[str], None] | None = None,
    ) -> None:
        self.batches = BatchProgress(settings.max_attempts, settings.default_expires_in)
        self.pool = pool
        self.brokers = brokers
        self.settings = settings
        self.on_task_resolved = on_task_resolved
        self.instance_id = settings.instance_id
        self._workers: list[asyncio.Task[None]] = []
        self._idle: deque[asyncio.Event] = deque()
        self._generation = 0
        self._stopping = False
        self._rng = random.Random()
        self.running = False

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._workers = [
            asyncio.create_task(self._worker(i), name=f"relay-worker-{i}") for i in range(self.settings.relay_workers)
        ]
        self.running = bool(self._workers)

    async def stop(self) -> None:
        """Graceful: no new claims; in-flight broker calls get until their timeout to finish."""
        self._stopping = True
        self.notify_all()
        if self._workers:
            _, pending = await asyncio.wait(self._workers, timeout=self.settings.broker_timeout + 2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._workers = []
        self.running = False

    def notify(self) -> None:
        """Something may be claimable: wake one idle worker (it wakes the next if it finds work)."""
        self._generation += 1
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.is_set():
                waiter.set()
                return

    def notify_all(self) -> None:
        self._generation += 1
        while self._idle:
            self._idle.popleft().set()

    # ---- the worker loop -----------------------------------------------------------------------

    async def _worker(self, index: int) -> None:
        owner = f"{self.instance_id}:{index}"
        failures = 0
        while not self._stopping:
            generation = self._generation
            try:
                did_work = await self.run_once(owner)
                failures = 0
            except Exception:
                failures += 1
                log.exception("relay worker step failed", worker=owner)
                await asyncio.sleep(min(0.2 * 2**failures, self.settings.poll_interval * 5))
                continue
            if did_work:
                self.notify()  # there may be more: let an idle colleague look too
                continue
            if self._generation != generation:
                continue  # a notification arrived while we were looking
            await self._idle_wait()

    async def _idle_wait(self) -> None:
        timeout = self.settings.poll_interval
        with contextlib.suppress(Exception):
            due = await self._seconds_until_next_due()
            if due is not None:
                timeout = max(0.0, min(timeout, due))
        event = asyncio.Event()
        self._idle.append(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._idle.remove(event)

    async def _seconds_until_next_due(self) -> float | None:
        value = await self.pool.fetchval(_NEXT_DUE)
        return None if value is None else float(value)

    async def run_once(self, owner: str) -> bool:
        """Claim and process at most one task; False when there was nothing to do."""
        claimed = await self._claim(owner)
        if claimed is None:
            return False
        kind, task = claimed
        if kind == "expired":
            await self._finish(
                task, owner, Outcome("expired", "deadline passed before the request could be sent; not placed")
            )
        elif kind == "execute":
            await self._execute(task, owner)
        elif kind == "reconcile":
            await self._reconcile(task, owner)
        return True

    # ---- claim ---------------------------------------------------------------------------------

    async def _claim(self, owner: str) -> tuple[str, dict[str, Any]] | None:
        """One statement: lock the next due task, take its lease and, unless it is `unknown` or past
        its deadline, mark it `running` (next attempt) with its `task_status` event."""
        row = await self.pool.fetchrow(_CLAIM, owner, float(self.settings.lease_seconds), str(uuid.uuid4()))
        if row is None:
            return None
        task = dict(row)
        task.pop("seq", None)
        task.pop("notified", None)
        if task["status"] == UNKNOWN:
            return "reconcile", task
        if task["status"] == RUNNING:
            return "execute", task
        return "expired", task  # pending or retrying, past its deadline: never sent, never will be

    # ---- execute -------------------------------------------------------------------------------

    async def _renew_lease(self, task: Mapping[str, Any], owner: str) -> None:
        """Started a third of the lease into a call that is still running; renews every third."""
        interval = self.settings.lease_seconds / 3
        while True:
            try:
                renewed = await self.pool.fetchval(
                    _RENEW, task["task_id"], owner, task["attempts"], float(self.settings.lease_seconds)
                )
                if renewed is None:
                    log.warning("lease lost during broker call", task_id=task["task_id"])
                    return
            except Exception:
                log.exception("lease renewal failed", task_id=task["task_id"])
            await asyncio.sleep(interval)

    async def _call(self, task: Mapping[str, Any], owner: str, call: Callable[[], Any]) -> Outcome:
        """Run one broker call with the lease kept alive; map every exception to an Outcome.

        Most calls end long before a third of the lease, so the renewer is only started (by a timer)
        for calls still running then: no task per call on the hot path."""
        renewer: asyncio.Task[None] | None = None

        def start_renewer() -> None:
            nonlocal renewer
            renewer = asyncio.create_task(self._renew_lease(task, owner))

        timer = asyncio.get_running_loop().call_later(self.settings.lease_seconds / 3, start_renewer)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.broker_timeout):
                result = await call()
        except BrokerRejected as exc:
            return Outcome("rejected", str(exc))
        except OrderNotFound as exc:
            return Outcome("rejected", str(exc))
        except BrokerUnavailable as exc:
            return Outcome("before_send", str(exc))
        except BrokerAuthError as exc:
            return Outcome("auth", str(exc))
        except (BrokerAmbiguous, TimeoutError) as exc:
            return Outcome("ambiguous", str(exc) or "broker call timed out")
        except Exception as exc:
            log.exception("unexpected broker error; treating the outcome as unknown", task_id=task["task_id"])
            return Outcome("ambiguous", f"unexpected error: {type(exc).__name__}")
        finally:
            timer.cancel()
            if renewer is not None:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
            metrics.BROKER_CALL_SECONDS.labels(operation=task["operation"]).observe(time.perf_counter() - started)
        if isinstance(result, BrokerOrder):
            return Outcome("done", order_id=result.order_id, order=result)
        return Outcome("placed", order_id=result.order_id, order=result.order)

    async def _execute(self, task: dict[str, Any], owner: str) -> None:
        broker = self.brokers(task["account_id"])
        params = task["params"]
        operation = task["operation"]
        if operation == "place_order":
            place = PlaceOrderParams(
                exchange=params["exchange"],
                tradingsymbol=params["tradingsymbol"],
                transaction_type=params["transaction_type"],
                quantity=params["quantity"],
                product=params["product"],
                order_type=params["order_type"],
                variety=params.get("variety") or "regular",
                price=_dec(params.get("price")),
                trigger_price=_dec(params.get("trigger_price")),
                validity=params.get("validity") or "DAY",
                disclosed_quantity=params.get("disclosed_quantity"),
                market_protection=_dec(params.get("market_protection")),
                tag=task["broker_tag"],
            )
            outcome = await self._call(task, owner, lambda: broker.place_order(place))
            if outcome.kind == "placed" and outcome.order is None and outcome.order_id:
                outcome = Outcome(
                    "placed", order_id=outcome.order_id, order=await self._fetch(broker, outcome.order_id)
                )
        elif operation == "modify_order":
            modify = ModifyOrderParams(
                order_id=task["order_id"],
                variety=params.get("variety") or "regular",
                quantity=params.get("quantity"),
                price=_dec(params.get("price")),
                trigger_price=_dec(params.get("trigger_price")),
                order_type=params.get("order_type"),
                validity=params.get("validity"),
            )
            outcome = await self._call(task, owner, lambda: broker.modify_order(modify))
        elif operation == "cancel_order":
            outcome = await self._call(
                task, owner, lambda: broker.cancel_order(task["order_id"], params.get("variety") or "regular")
            )
        else:
            outcome = Outcome("rejected", f"unknown operation {operation!r}")
        if operation in ("modify_order", "cancel_order") and outcome.kind == "rejected" and outcome.order is None:
            # why it was refused matters (a filled order cannot be cancelled: a batch squares it off)
            outcome = Outcome("rejected", outcome.message, order=await self._fetch(broker, task["order_id"]))
        await self._finish(task, owner, outcome)

    async def _fetch(self, broker: Broker, order_id: str) -> BrokerOrder | None:
        try:
            return await asyncio.wait_for(broker.get_order(order_id), timeout=self.settings.broker_timeout)
        except Exception:
            log.warning("could not fetch a placed order; updates will fill it in", order_id=order_id)
            return None

    # ---- finish (fenced) -----------------------------------------------------------------------

    def _backoff(self, attempts: int) -> float:
        base: float = self.settings.retry_base_seconds * 2.0 ** max(attempts - 1, 0)
        return base * (0.5 + self._rng.random())  # jitter: 50 %..150 %

    async def _finish(self, task: dict[str, Any], owner: str, outcome: Outcome) -> None:
        """Record `outcome` in one transaction, fenced on our lease and attempt.

        A plain BEGIN rather than asyncpg's transaction object: the outcome's events and the COMMIT
        go to the server together (`append_events_and_commit`), so the account's seq row is not
        held locked while this process gets back to the connection.
        """
        async with self.pool.acquire() as conn:
            await conn.execute("BEGIN")
            try:
                current = await conn.fetchrow(
                    "SELECT status, lease_owner, attempts FROM order_tasks WHERE task_id = $1 FOR UPDATE",
                    task["task_id"],
                )
                if current is None or (current["status"], current["lease_owner"], current["attempts"]) != (
                    task["status"],
                    owner,
                    task["attempts"],
                ):
                    await conn.execute("ROLLBACK")
                    log.warning(
                        "finish fenced off: the task moved on without us; its order is found again by tag",
                        task_id=task["task_id"],
                        outcome=outcome.kind,
                    )
                    metrics.FENCED_FINISHES.inc()
                    return
                status = await self._apply_outcome(conn, task, outcome)
                if conn.is_in_transaction():  # an outcome without events (still unknown)
                    await conn.execute("COMMIT")
            except BaseException:
                if not conn.is_closed() and conn.is_in_transaction():
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
        if status in RESOLVED:
            self._resolved(task["task_id"])

    def _resolved(self, task_id: str) -> None:
        if self.on_task_resolved is not None:
            self.on_task_resolved(task_id)

    async def _apply_outcome(self, conn: asyncpg.Connection, task: dict[str, Any], outcome: Outcome) -> str | None:
        """Record `outcome` in the caller's transaction; returns the task's new status."""
        operation = task["operation"]
        kind = outcome.kind
        if kind in ("placed", "done"):
            events: list[NewEvent] = []
            order_id = outcome.order_id or task.get("order_id")
            result: dict[str, Any] = {"order_id": order_id}
            if outcome.order is not None:
                result["order_status"] = outcome.order.status
                is_place = operation == "place_order"
                events = await apply_snapshot(
                    conn,
                    task["account_id"],
                    outcome.order,
                    task_id=task["task_id"] if is_place else None,
                    client_tag=task["params"].get("tag") if is_place else None,
                )
            return await self._set_final(
                conn, task, COMPLETED, None, events, order_id=order_id, result=result, status_first=True
            )
        if kind == "rejected":
            if operation == "place_order":
                events = [task_failure_event("order_rejected", task, outcome.message or "rejected")]
                return await self._set_final(conn, task, REJECTED, outcome.message, events)
            changes: list[NewEvent] = []
            refused: dict[str, Any] | None = None
            if outcome.order is not None:  # the order as it is now, e.g. COMPLETE for a refused cancel
                changes = await apply_snapshot(conn, task["account_id"], outcome.order)
                refused = {"order_id": task.get("order_id"), "order_status": outcome.order.status}
            return await self._set_final(conn, task, REJECTED, outcome.message, changes, result=refused)
        if kind == "expired":
            return await self._give_up(conn, task, FAILED, outcome.message or "deadline passed; not placed")
        if kind == "auth":
            metrics.BROKER_AUTH_FAILURES.labels(account=task["account_id"]).inc()
            log.error(
                "broker refused the session token; task dead-lettered, operator action needed",
                task_id=task["task_id"],
                account_id=task["account_id"],
            )
            return await self._give_up(conn, task, DEAD_LETTER, f"broker refused the session: {outcome.message}")
        if kind == "before_send":
            if task["attempts"] >= task["max_attempts"]:
                return await self._give_up(
                    conn,
                    task,
                    DEAD_LETTER,
                    f"gave up after {task['attempts']} attempts; never sent: {outcome.message}",
                )
            delay = self._backoff(task["attempts"])
            return await self._set_state(conn, task, RETRYING, outcome.message, delay, retry_in=round(delay, 3))
        if kind == "ambiguous":
            metrics.UNKNOWN_OUTCOMES.labels(account=task["account_id"]).inc()
            return await self._set_state(
                conn, task, UNKNOWN, f"outcome unknown: {outcome.message}", self._reconcile_grace(), unknown="set"
            )
        if kind == "not_found":
            # reconciliation proved the request never took effect: it is now safe to send again
            now = await conn.fetchval("SELECT now()")
            if task["deadline_at"] <= now:
                return await self._give_up(
                    conn, task, FAILED, "not placed (confirmed by reconciliation) and its deadline has passed"
                )
            if task["attempts"] >= task["max_attempts"]:
                return await self._give_up(
                    conn,
                    task,
                    DEAD_LETTER,
                    f"not placed after {task['attempts']} attempts (confirmed by reconciliation)",
                )
            await conn.execute("SELECT pg_notify('ticker_tasks', '')")
            return await self._set_state(conn, task, RETRYING, outcome.message, 0.0, unknown="clear")
        if kind == "still_unknown":
            metrics.RECONCILE_FAILURES.labels(account=task["account_id"]).inc()
            await conn.execute(_STILL_UNKNOWN, task["task_id"], outcome.message, self._reconcile_retry_delay())
            return UNKNOWN
        raise ValueError(f"unknown outcome {kind}")

    async def _give_up(self, conn: asyncpg.Connection, task: dict[str, Any], status: str, message: str) -> str:
        return await self._set_final(conn, task, status, message, [task_failure_event("order_failed", task, message)])

    def _reconcile_grace(self) -> float:
        """How long after an ambiguous call before "not in the book" can be trusted."""
        return 2 * self.settings.broker_timeout

    def _reconcile_retry_delay(self) -> float:
        return min(self.settings.poll_interval * 2, 5.0) * (0.5 + self._rng.random())

    async def _set_state(
        self,
        conn: asyncpg.Connection,
        task: dict[str, Any],
        status: str,
        error: str | None,
        delay: float,
        *,
        unknown: str = "keep",
        **extra: Any,
    ) -> str:
        """A non-final state: the lease is released and the task is due again after `delay` seconds."""
        await conn.execute(_SET_STATE, task["task_id"], status, error, float(delay), unknown)
        metrics.TASK_OUTCOMES.labels(operation=task["operation"], status=status).inc()
        await append_events_and_commit(
            conn, task["account_id"], [task_status_event(task, status, error=error, **extra)]
        )
        return status

    async def _set_final(
        self,
        conn: asyncpg.Connection,
        task: dict[str, Any],
        status: str,
        error: str | None,
        events: list[NewEvent],
        *,
        order_id: str | None = None,
        result: dict[str, Any] | None = None,
        status_first: bool = False,
    ) -> str:
        await conn.execute(_SET_FINAL, task["task_id"], status, error, order_id, result, status in RESOLVED)
        metrics.TASK_OUTCOMES.labels(operation=task["operation"], status=status).inc()
        status_event = task_status_event(
            task, status, order_id=order_id or task.get("order_id"), result=result, error=error
        )
        ordered = [status_event, *events] if status_first else [*events, status_event]
        if task.get("batch_id") and status in RESOLVED:  # the batch moves on in this same transaction
            ordered += await self.batches.on_task_final(conn, task, status, result, error)
        await append_events_and_commit(conn, task["account_id"], ordered)
        return status

    # ---- reconcile (unknown tasks) -------------------------------------------------------------

    async def _reconcile(self, task: dict[str, Any], owner: str) -> None:
        broker = self.brokers(task["account_id"])
        operation = task["operation"]
        try:
            if operation == "place_order":
                found = await asyncio.wait_for(
                    broker.orders_by_tag(task["broker_tag"]), timeout=self.settings.broker_timeout
                )
                if len(found) > 1:
                    log.critical(
                        "more than one order carries one task's tag",
                        task_id=task["task_id"],
                        order_ids=[o.order_id for o in found],
                    )
                    metrics.DUPLICATE_ORDERS.inc()
                if found:
                    outcome = Outcome("placed", order_id=found[0].order_id, order=found[0])
                else:
                    outcome = await self._not_found_or_wait(task, "no order with this task's tag")
            else:
                order = await asyncio.wait_for(broker.get_order(task["order_id"]), timeout=self.settings.broker_timeout)
                outcome = await self._reconcile_change(task, order)
        except Exception as exc:
            log.warning("reconciliation failed; task stays unknown", task_id=task["task_id"], error=str(exc))
            outcome = Outcome("still_unknown", f"reconciliation failed: {exc or type(exc).__name__}")
        await self._finish(task, owner, outcome)

    async def _not_found_or_wait(self, task: Mapping[str, Any], message: str) -> Outcome:
        waited = await self.pool.fetchval(
            "SELECT EXTRACT(EPOCH FROM now() - unknown_since) FROM order_tasks WHERE task_id = $1", task["task_id"]
        )
        if waited is not None and float(waited) >= self._reconcile_grace():
            return Outcome("not_found", f"{message}; confirmed not placed")
        return Outcome("still_unknown", f"{message} yet; waiting out the grace period")

    async def _reconcile_change(self, task: Mapping[str, Any], order: BrokerOrder) -> Outcome:
        params = task["params"]
        if task["operation"] == "cancel_order":
            if order.status == "CANCELLED":
                return Outcome("done", order_id=order.order_id, order=order)
            if order.status in TERMINAL_ORDER_STATUSES:
                return Outcome("rejected", f"Order cannot be cancelled as it is {order.status}.")
            return await self._not_found_or_wait(task, "the order is still open")
        wanted = {k: params.get(k) for k in ("quantity", "price", "trigger_price", "order_type", "validity")}
        have = {
            "quantity": order.quantity,
            "price": order.price,
            "trigger_price": order.trigger_price,
            "order_type": order.order_type,
            "validity": order.validity,
        }
        if all(v is None or have[k] == v for k, v in wanted.items()):
            return Outcome("done", order_id=order.order_id, order=order)
        if order.status in TERMINAL_ORDER_STATUSES:
            return Outcome("rejected", f"Order cannot be modified as it is {order.status}.")
        return await self._not_found_or_wait(task, "the modification is not visible")


def _dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
