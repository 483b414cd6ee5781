"""The executor: workers that claim order tasks and drive the broker.

The rules that keep an order from being lost or placed twice (invariants 1 and 2):

* A claim commits `running`, the attempt number and a short lease *before* the broker call, and no
  transaction is open during the call. The lease is renewed while the call is in flight.
* The finish is fenced (see `finish`) and shielded: once the broker has answered, a worker being
  cancelled (shutdown) still records the answer instead of throwing it away.
* Any ambiguous outcome moves the task to `unknown`, never back to `pending`; an `unknown` task is
  reconciled against the broker's book by its tag before anything is sent again (`reconcile`).
* What each outcome means is the pure table in `outcome`.

The loop (after procrastinate's worker): a stop event; workers wake on NOTIFY (through `notify()`)
or when the next task falls due, chain-wake one another while there is work, and poll as a
fallback. Stopping lets in-flight calls finish within the broker timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import structlog

from ticker_service.brokers.base import Broker, BrokerOrder
from ticker_service.orders.lifecycle import queries
from ticker_service.orders.lifecycle.broker_call import call_broker, modify_params, place_params
from ticker_service.orders.lifecycle.claim import Claimed, Work, claim, next_due_in, renew_lease
from ticker_service.orders.lifecycle.finish import Finished, finish
from ticker_service.orders.lifecycle.hooks import FinishHook
from ticker_service.orders.lifecycle.outcome import Outcome, OutcomeKind, Timing
from ticker_service.orders.lifecycle.reconcile import reconcile
from ticker_service.orders.lifecycle.states import Operation
from ticker_service.orders.mirror import record_orders
from ticker_service.settings import Settings

log = structlog.get_logger("ticker.executor")

K = OutcomeKind

READ_BACK_AFTER = 1.0  # seconds: a placed order the broker's updates have not brought by then is read
_MIRRORED = "SELECT true FROM orders WHERE account_id = $1 AND order_id = $2"


IDLE_BACKSTOP = 60.0  # seconds: how long a worker that does not hold the poll sleeps unwoken


class Executor:
    def __init__(
        self,
        pool: asyncpg.Pool,
        brokers: Callable[[str], Broker],
        settings: Settings,
        *,
        hooks: Sequence[FinishHook] = (),
        on_task_resolved: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.pool = pool
        self.brokers = brokers
        self.settings = settings
        self.hooks = list(hooks)
        self.on_task_resolved = on_task_resolved
        self.instance_id = settings.server.instance_id
        self._stop = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._finishing: set[asyncio.Task[Finished | None]] = set()
        self._reading_back: set[asyncio.Task[None]] = set()
        self._idle: deque[asyncio.Event] = deque()
        self._polling = False  # whether an idle worker holds the poll (see `_idle_wait`)
        self._generation = 0
        self._rng = random.Random()
        self.running = False

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._stop.clear()
        self._workers = [
            asyncio.create_task(self._worker(i), name=f"executor-worker-{i}")
            for i in range(self.settings.execution.workers)
        ]
        self.running = bool(self._workers)

    async def stop(self) -> None:
        """Graceful: no new claims; in-flight broker calls get until their timeout to finish, and
        answers already received are recorded whatever happens to their worker."""
        self._stop.set()
        self.notify_all()
        if self._workers:
            _, pending = await asyncio.wait(self._workers, timeout=self.settings.execution.broker_timeout + 2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._finishing:
            await asyncio.wait(self._finishing, timeout=self.settings.execution.broker_timeout + 2)
        for reading in list(self._reading_back):  # reconciliation brings what these would have
            reading.cancel()
        await asyncio.gather(*self._reading_back, return_exceptions=True)
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
        while not self._stop.is_set():
            generation = self._generation
            try:
                did_work = await self.run_once(owner)
                failures = 0
            except Exception:
                failures += 1
                log.exception("executor step failed", worker=owner)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stop.wait(), min(0.2 * 2**failures, self.settings.execution.poll_interval * 5)
                    )
                continue
            if did_work:
                self.notify()  # there may be more: let an idle colleague look too
                continue
            if self._generation != generation:
                continue  # a notification arrived while we were looking
            await self._idle_wait()

    async def _idle_wait(self) -> None:
        """Until a NOTIFY (through `notify`) or stop; the one idle worker that holds the poll also until
        the next due time or the poll interval, whichever comes first.

        Polling is the safety net for a lost notification and for tasks that become due with no one
        notifying (retries after a backoff, deadlines): one poller per process is enough, since a
        worker that finds work wakes a colleague, and the poller, when woken, hands the poll to an
        idle colleague. Eight workers each polling twice a second were most of an idle instance's
        queries and CPU. The others keep a long backstop of their own, in case of a bug here.
        """
        polls = not self._polling
        if polls:
            self._polling = True
        timeout = self.settings.execution.poll_interval
        if polls:
            with contextlib.suppress(Exception):
                due = await next_due_in(self.pool)
                if due is not None:
                    timeout = max(0.0, min(timeout, due))
        else:
            timeout = max(timeout, IDLE_BACKSTOP)
        event = asyncio.Event()
        self._idle.append(event)
        woken = False
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
                woken = True
        finally:
            with contextlib.suppress(ValueError):
                self._idle.remove(event)
            if polls:
                self._polling = False
                if woken and not self._stop.is_set():
                    self.notify()  # hand the poll to an idle colleague while this one works

    async def run_once(self, owner: str) -> bool:
        """Claim and process at most one task; False when there was nothing to do."""
        claimed = await claim(self.pool, owner, self.settings.execution.lease_seconds)
        if claimed is None:
            return False
        work, task = claimed.work, claimed.task
        with structlog.contextvars.bound_contextvars(task_id=task["task_id"]):
            if work == Work.EXPIRE:
                outcome = Outcome(K.EXPIRED, "deadline passed before the request could be sent; not placed")
            elif work == Work.EXECUTE:
                outcome = await self._execute(task, owner)
            else:
                outcome = await self._reconcile(task)
            await self._finish(claimed, owner, outcome)
            if outcome.kind in (K.PLACED, K.DONE) and outcome.order is None and outcome.order_id:
                self._read_back(task, outcome.order_id)
        return True

    def _read_back(self, task: dict[str, Any], order_id: str) -> None:
        """The broker answered with the order's id only (Kite does): the answer to the client need not
        wait for a second call. The broker's own update stream (Kite's ticker, postbacks) usually
        brings the order within moments, so after `READ_BACK_AFTER` seconds the order is read, and
        recorded in the mirror (which makes its events), only if nothing has brought it yet. Reading
        every order at once would spend Kite's 10-a-second budget for reads on what is already
        coming, and load the database while the next orders are on their way."""

        async def read() -> None:
            await asyncio.sleep(READ_BACK_AFTER)
            if await self.pool.fetchval(_MIRRORED, task["account_id"], order_id):
                return
            order = await self._fetch(self.brokers(task["account_id"]), order_id)
            if order is not None:
                await record_orders(self.pool, task["account_id"], [order])

        reading = asyncio.create_task(read(), name=f"read-back-{order_id}")
        self._reading_back.add(reading)
        reading.add_done_callback(self._reading_back.discard)

    # ---- execute -------------------------------------------------------------------------------

    async def _execute(self, task: dict[str, Any], owner: str) -> Outcome:
        broker = self.brokers(task["account_id"])
        params = task["params"]
        operation = task["operation"]
        lease = self.settings.execution.lease_seconds

        async def call(what: Callable[[], Any]) -> Outcome:
            return await call_broker(
                what,
                operation=operation,
                timeout=self.settings.execution.broker_timeout,
                renew_after=lease / 3,
                renew=lambda: renew_lease(self.pool, task, owner, lease),
                turn=lambda: broker.wait_for_turn(operation, task["deadline_at"]),
            )

        if operation == Operation.PLACE:
            place = place_params(params, task["broker_tag"])
            outcome = await call(lambda: broker.place_order(place))
            if outcome.kind == K.PLACED and outcome.order is None and outcome.order_id and task.get("batch_id"):
                # a batch moves on by its legs' order states: read it now (others are read after the finish)
                placed = await self._fetch(broker, outcome.order_id)
                outcome = Outcome(K.PLACED, order_id=outcome.order_id, order=placed)
        elif operation == Operation.MODIFY:
            modify = modify_params(params, task["order_id"])
            outcome = await call(lambda: broker.modify_order(modify))
        elif operation == Operation.CANCEL:
            outcome = await call(lambda: broker.cancel_order(task["order_id"], params.get("variety") or "regular"))
        else:
            outcome = Outcome(K.REJECTED, f"unknown operation {operation!r}")
        read_now = outcome.kind == K.REJECTED or (outcome.kind == K.DONE and task.get("batch_id"))
        if operation != Operation.PLACE and read_now and outcome.order is None:
            # refused: why matters (a filled order cannot be cancelled: a batch squares it off); done in a
            # batch: its rollback goes by the order's state. Other changes are read after the finish.
            outcome = Outcome(
                outcome.kind,
                outcome.message,
                order_id=outcome.order_id,
                order=await self._fetch(broker, task["order_id"]),
            )
        return outcome

    async def _fetch(self, broker: Broker, order_id: str) -> BrokerOrder | None:
        try:
            return await asyncio.wait_for(broker.get_order(order_id), timeout=self.settings.execution.broker_timeout)
        except Exception:
            log.warning("could not fetch a placed order; updates will fill it in", order_id=order_id)
            return None

    async def _reconcile(self, task: dict[str, Any]) -> Outcome:
        async def seconds_unknown() -> float | None:
            waited = await self.pool.fetchval(queries.SECONDS_UNKNOWN, task["task_id"])
            return None if waited is None else float(waited)

        return await reconcile(
            task,
            self.brokers(task["account_id"]),
            timeout=self.settings.execution.broker_timeout,
            grace=self.grace,
            seconds_unknown=seconds_unknown,
        )

    # ---- finish --------------------------------------------------------------------------------

    @property
    def grace(self) -> float:
        """How long after an ambiguous call before "not in the book" can be trusted."""
        return 2 * self.settings.execution.broker_timeout

    def timing(self, attempts: int) -> Timing:
        jitter = 0.5 + self._rng.random()  # 50 %..150 %
        return Timing(
            backoff=self.settings.execution.retry_base_seconds * 2.0 ** max(attempts - 1, 0) * jitter,
            grace=self.grace,
            recheck=min(self.settings.execution.poll_interval * 2, 5.0) * (0.5 + self._rng.random()),
        )

    async def _finish(self, claimed: Claimed, owner: str, outcome: Outcome) -> None:
        """Record the outcome, shielded: cancelling the worker (shutdown) does not interrupt it."""
        task = claimed.task
        recording = asyncio.create_task(
            finish(
                self.pool,
                task,
                owner,
                outcome,
                self.timing(task["attempts"]),
                self.hooks,
                past_deadline=claimed.past_deadline(),
            )
        )
        self._finishing.add(recording)
        recording.add_done_callback(self._finishing.discard)
        try:
            finished = await asyncio.shield(recording)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait({recording}, timeout=self.settings.execution.broker_timeout + 2)
            raise
        if finished is not None and finished.decision.final and self.on_task_resolved is not None:
            self.on_task_resolved(task["task_id"], finished.row)
