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
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
from ticker_service.db.tables import order_tasks
from ticker_service.orders.mirror import apply_snapshot
from ticker_service.orders.tasks import (
    COMPLETED,
    DEAD_LETTER,
    FAILED,
    PENDING,
    REJECTED,
    RESOLVED,
    RETRYING,
    RUNNING,
    UNKNOWN,
)
from ticker_service.outbox.events import NewEvent, task_failure_event, task_status_event
from ticker_service.outbox.writer import append_events, notify_task_done
from ticker_service.settings import Settings
from ticker_service.system import metrics

log = structlog.get_logger("ticker.relay")


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
        engine: AsyncEngine,
        brokers: Callable[[str], Broker],
        settings: Settings,
        *,
        on_task_resolved: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
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
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    text(
                        "SELECT EXTRACT(EPOCH FROM (min(next_attempt_at) - now())) FROM order_tasks "
                        "WHERE status IN ('pending', 'retrying', 'unknown')"
                    )
                )
            ).scalar()
        return None if value is None else float(value)

    async def run_once(self, owner: str) -> bool:
        """Claim and process at most one task; False when there was nothing to do."""
        claimed = await self._claim(owner)
        if claimed is None:
            return False
        kind, task = claimed
        if kind == "handled":
            self._resolved(task["task_id"])
        elif kind == "execute":
            await self._execute(task, owner)
        elif kind == "reconcile":
            await self._reconcile(task, owner)
        return True

    # ---- claim ---------------------------------------------------------------------------------

    async def _claim(self, owner: str) -> tuple[str, dict[str, Any]] | None:
        async with self.engine.begin() as conn:
            row = (
                (
                    await conn.execute(
                        select(order_tasks)
                        .where(
                            order_tasks.c.status.in_((PENDING, RETRYING, UNKNOWN)),
                            order_tasks.c.next_attempt_at <= func.now(),
                            (order_tasks.c.lease_expires_at.is_(None)) | (order_tasks.c.lease_expires_at < func.now()),
                        )
                        .order_by(order_tasks.c.next_attempt_at)
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                return None
            task = dict(row)
            now = (await conn.execute(select(func.now()))).scalar_one()
            lease_until = now + timedelta(seconds=self.settings.lease_seconds)
            if task["status"] == UNKNOWN:
                await conn.execute(
                    update(order_tasks)
                    .where(order_tasks.c.task_id == task["task_id"])
                    .values(lease_owner=owner, lease_expires_at=lease_until)
                )
                task.update(lease_owner=owner, lease_expires_at=lease_until)
                return "reconcile", task
            if task["deadline_at"] <= now:
                await self._give_up(conn, task, FAILED, "deadline passed before the request could be sent; not placed")
                return "handled", task
            attempt = task["attempts"] + 1
            await conn.execute(
                update(order_tasks)
                .where(order_tasks.c.task_id == task["task_id"])
                .values(
                    status=RUNNING,
                    attempts=attempt,
                    lease_owner=owner,
                    lease_expires_at=lease_until,
                    updated_at=now,
                )
            )
            task.update(status=RUNNING, attempts=attempt, lease_owner=owner, lease_expires_at=lease_until)
            await append_events(conn, task["account_id"], [task_status_event(task, RUNNING, worker=owner)])
        return "execute", task

    # ---- execute -------------------------------------------------------------------------------

    async def _renew_lease(self, task: Mapping[str, Any], owner: str) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.engine.begin() as conn:
                    renewed = (
                        await conn.execute(
                            update(order_tasks)
                            .where(
                                order_tasks.c.task_id == task["task_id"],
                                order_tasks.c.lease_owner == owner,
                                order_tasks.c.attempts == task["attempts"],
                            )
                            .values(lease_expires_at=func.now() + timedelta(seconds=self.settings.lease_seconds))
                            .returning(order_tasks.c.task_id)
                        )
                    ).first()
                if renewed is None:
                    log.warning("lease lost during broker call", task_id=task["task_id"])
                    return
            except Exception:
                log.exception("lease renewal failed", task_id=task["task_id"])

    async def _call(self, task: Mapping[str, Any], owner: str, call: Callable[[], Any]) -> Outcome:
        """Run one broker call with the lease kept alive; map every exception to an Outcome."""
        renewer = asyncio.create_task(self._renew_lease(task, owner))
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(call(), timeout=self.settings.broker_timeout)
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
        async with self.engine.begin() as conn:
            current = (
                await conn.execute(
                    select(order_tasks.c.status, order_tasks.c.lease_owner, order_tasks.c.attempts)
                    .where(order_tasks.c.task_id == task["task_id"])
                    .with_for_update()
                )
            ).first()
            expected = UNKNOWN if task["status"] == UNKNOWN else RUNNING
            if current is None or (current.status, current.lease_owner, current.attempts) != (
                expected,
                owner,
                task["attempts"],
            ):
                log.warning(
                    "finish fenced off: the task moved on without us; its order is found again by tag",
                    task_id=task["task_id"],
                    outcome=outcome.kind,
                )
                metrics.FENCED_FINISHES.inc()
                return
            status = await self._apply_outcome(conn, task, outcome)
        if status in RESOLVED:
            self._resolved(task["task_id"])

    def _resolved(self, task_id: str) -> None:
        if self.on_task_resolved is not None:
            self.on_task_resolved(task_id)

    async def _apply_outcome(self, conn: AsyncConnection, task: dict[str, Any], outcome: Outcome) -> str | None:
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
            rejected = [task_failure_event("order_rejected", task, outcome.message or "rejected")]
            return await self._set_final(
                conn, task, REJECTED, outcome.message, rejected if operation == "place_order" else []
            )
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
            return await self._set_state(
                conn,
                task,
                RETRYING,
                last_error=outcome.message,
                next_attempt_at=func.now() + timedelta(seconds=delay),
                retry_in=round(delay, 3),
            )
        if kind == "ambiguous":
            metrics.UNKNOWN_OUTCOMES.labels(account=task["account_id"]).inc()
            return await self._set_state(
                conn,
                task,
                UNKNOWN,
                last_error=f"outcome unknown: {outcome.message}",
                unknown_since=func.now(),
                next_attempt_at=func.now() + timedelta(seconds=self._reconcile_grace()),
            )
        if kind == "not_found":
            # reconciliation proved the request never took effect: it is now safe to send again
            now = (await conn.execute(select(func.now()))).scalar_one()
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
            await conn.execute(text("SELECT pg_notify('ticker_tasks', '')"))
            return await self._set_state(
                conn, task, RETRYING, last_error=outcome.message, next_attempt_at=func.now(), unknown_since=None
            )
        if kind == "still_unknown":
            metrics.RECONCILE_FAILURES.labels(account=task["account_id"]).inc()
            await conn.execute(
                update(order_tasks)
                .where(order_tasks.c.task_id == task["task_id"])
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error=outcome.message,
                    next_attempt_at=func.now() + timedelta(seconds=self._reconcile_retry_delay()),
                    updated_at=func.now(),
                )
            )
            return UNKNOWN
        raise ValueError(f"unknown outcome {kind}")

    async def _give_up(self, conn: AsyncConnection, task: dict[str, Any], status: str, message: str) -> str:
        return await self._set_final(conn, task, status, message, [task_failure_event("order_failed", task, message)])

    def _reconcile_grace(self) -> float:
        """How long after an ambiguous call before "not in the book" can be trusted."""
        return 2 * self.settings.broker_timeout

    def _reconcile_retry_delay(self) -> float:
        return min(self.settings.poll_interval * 2, 5.0) * (0.5 + self._rng.random())

    async def _set_state(self, conn: AsyncConnection, task: dict[str, Any], status: str, **values: Any) -> str:
        extra = {"retry_in": values.pop("retry_in")} if "retry_in" in values else {}
        await conn.execute(
            update(order_tasks)
            .where(order_tasks.c.task_id == task["task_id"])
            .values(status=status, lease_owner=None, lease_expires_at=None, updated_at=func.now(), **values)
        )
        metrics.TASK_OUTCOMES.labels(operation=task["operation"], status=status).inc()
        event = task_status_event(task, status, error=values.get("last_error"), **extra)
        await append_events(conn, task["account_id"], [event])
        return status

    async def _set_final(
        self,
        conn: AsyncConnection,
        task: dict[str, Any],
        status: str,
        error: str | None,
        events: list[NewEvent],
        *,
        order_id: str | None = None,
        result: dict[str, Any] | None = None,
        status_first: bool = False,
    ) -> str:
        values: dict[str, Any] = {
            "status": status,
            "last_error": error,
            "lease_owner": None,
            "lease_expires_at": None,
            "updated_at": func.now(),
            "unknown_since": None,
        }
        if order_id is not None:
            values["order_id"] = order_id
        if result is not None:
            values["result"] = result
        await conn.execute(update(order_tasks).where(order_tasks.c.task_id == task["task_id"]).values(**values))
        metrics.TASK_OUTCOMES.labels(operation=task["operation"], status=status).inc()
        status_event = task_status_event(
            task, status, order_id=order_id or task.get("order_id"), result=result, error=error
        )
        ordered = [status_event, *events] if status_first else [*events, status_event]
        if status in RESOLVED:
            await notify_task_done(conn, task["task_id"])
        await append_events(conn, task["account_id"], ordered)
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
        async with self.engine.connect() as conn:
            waited = (
                await conn.execute(
                    select(func.extract("epoch", func.now() - order_tasks.c.unknown_since)).where(
                        order_tasks.c.task_id == task["task_id"]
                    )
                )
            ).scalar()
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
