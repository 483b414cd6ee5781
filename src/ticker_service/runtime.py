"""Everything a running instance owns: the engine, brokers, relay, listener and background jobs.

Created and torn down by the app's lifespan; controllers reach it through dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

import asyncpg
import structlog

from ticker_service.accounts.service import AccountsService
from ticker_service.accounts.sessions import SESSIONS_CHANNEL, SessionStore
from ticker_service.batches.progress import BatchProgress
from ticker_service.batches.service import BatchService
from ticker_service.brokers.base import Broker, PriceModel, SessionBroker, TickCarrier
from ticker_service.brokers.registry import BrokerContext, build_brokers, check_supported
from ticker_service.db.engine import asyncpg_dsn, create_engine
from ticker_service.db.pool import create_pool
from ticker_service.instruments import load_instruments
from ticker_service.jobs import maintenance
from ticker_service.jobs.singleton import (
    CLEANUP_LOCK,
    RECONCILE_LOCK,
    WEBHOOK_FANOUT_LOCK,
    account_lock,
    check_account_locks,
    hold_singleton,
    run_singleton,
    tick_lock,
)
from ticker_service.marketdata.history.forming import FormingCandles, TickCandles
from ticker_service.marketdata.history.kite import CandleSource
from ticker_service.marketdata.history.service import HistoryService
from ticker_service.marketdata.instruments.catalogue import InstrumentCatalogue
from ticker_service.marketdata.instruments.expiry import Holidays
from ticker_service.marketdata.instruments.paper_list import RollingInstrumentBook
from ticker_service.marketdata.instruments.refresh import (
    JOB_INTERVAL,
    REFRESH_JOB_LOCK,
    DumpSource,
    refresh_stale_dumps,
)
from ticker_service.marketdata.subscriptions.service import SubscriptionService
from ticker_service.marketdata.ticks.channel import TICKS_CHANNEL, WANTS_CHANNEL
from ticker_service.marketdata.ticks.runner import MarketData
from ticker_service.orders.lifecycle.executor import Executor
from ticker_service.orders.mirror import follow_order_updates
from ticker_service.orders.service import OrderService
from ticker_service.orders.waiters import TaskWaiters
from ticker_service.outbox.channels import DELIVERIES_CHANNEL, EVENTS_CHANNEL, TASK_DONE_CHANNEL, TASKS_CHANNEL
from ticker_service.outbox.listener import NotificationListener
from ticker_service.portfolio.quotes import QuoteService
from ticker_service.settings import Settings
from ticker_service.stream.hub import StreamHub
from ticker_service.system.ratelimits import ApiKeyLimits
from ticker_service.timeutil import today_ist
from ticker_service.webhooks.fanout import fan_out
from ticker_service.webhooks.sender import DeliverySender
from ticker_service.webhooks.service import WebhookService
from ticker_service.webhooks.urls import UrlGuard

log = structlog.get_logger("ticker.runtime")


class Runtime:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.dsn = asyncpg_dsn(database_url)
        # SQLAlchemy for the occasional queries (health, task lists, clean-up); the hot paths (intake,
        # executor, paper broker, mirror, outbox) run on the raw asyncpg pool made by start()
        self.engine = create_engine(database_url, pool_size=5, max_overflow=5)
        # the paper list (intake checks and the paper broker read it): the listed instruments plus the
        # day's monthly index contracts, rolled every minute by `_roll_instruments`
        self.instruments = RollingInstrumentBook(
            load_instruments(settings.accounts.instruments_file), today_ist(), Holidays(settings.market.holidays)
        )
        self.waiters = TaskWaiters()
        self.listener = NotificationListener(self.dsn)
        self.listener.subscribe(TASKS_CHANNEL, self._tasks_claimable)
        self.listener.subscribe(TASK_DONE_CHANNEL, self.waiters.resolve)
        # made by start(), once the pool exists
        self.pool: asyncpg.Pool
        self.brokers: dict[str, Broker]
        self.executor: Executor
        self.orders: OrderService
        self.catalogue: InstrumentCatalogue  # every account's instruments (marketdata/)
        self.quotes: QuoteService  # GET /quote: the feeds' fresh ticks, else the broker
        self.history: HistoryService  # candles (marketdata/history)
        # candles from live ticks (the minute candles each account's feed holder keeps in PostgreSQL)
        self.forming_candles: FormingCandles
        check_supported(settings.accounts.brokers)  # refuse unsupported brokers before anything starts
        check_account_locks(settings.accounts.brokers)
        self.stream = StreamHub(settings, self.dsn)  # the WebSocket order stream (stream/)
        self.listener.subscribe(EVENTS_CHANNEL, self.stream.on_notify)
        self.market = MarketData(settings)  # live ticks (marketdata/ticks), beside the order flow
        self.listener.subscribe(TICKS_CHANNEL, self.market.hub.on_ticks)
        self.listener.subscribe(WANTS_CHANNEL, self.market.hub.on_wants)
        self.api_limits: ApiKeyLimits | None = None  # TICKER_RATE_LIMITS, made by start() when set
        self._stop = asyncio.Event()
        self._fanout_wake = asyncio.Event()
        self._background: list[asyncio.Task[Any]] = []

    async def start(self) -> None:
        self._stop.clear()
        self.pool = await create_pool(self.dsn, self.settings.database.pool_size + self.settings.execution.workers)
        if self.settings.accounts.rate_limits:
            self.api_limits = ApiKeyLimits(self.pool, self.settings.accounts.rate_limits)
        context = BrokerContext(self.pool, self.instruments, self.settings)
        self.brokers = build_brokers(self.settings.accounts.brokers, context)
        hooks = [BatchProgress(self.settings.execution.max_attempts, self.settings.execution.default_expires_in)]
        self.executor = Executor(
            self.pool, self.brokers.__getitem__, self.settings, hooks=hooks, on_task_resolved=self.waiters.resolve
        )
        # simulated accounts (their prices are a model): the shipped instrument list, model candles and ticks
        models = {a: b for a, b in self.brokers.items() if isinstance(b, PriceModel)}
        paper_accounts = list(models)
        dump_sources = {a: b for a, b in self.brokers.items() if a not in paper_accounts and isinstance(b, DumpSource)}
        self.catalogue = InstrumentCatalogue(self.pool, self.instruments, paper_accounts, dump_sources)
        self.orders = OrderService(
            self.engine,
            self.pool,
            self.settings,
            self.instruments,
            self.brokers,
            self.waiters,
            on_new_task=self.executor.notify,
            listing=self.catalogue,  # a live broker's orders are checked against its own instrument list
            paper_accounts=frozenset(paper_accounts),
        )
        self.quotes = QuoteService(self.pool, self.catalogue, self.settings.market.quote_tick_max_age)
        self.forming_candles = TickCandles(self.pool)
        self.history = HistoryService(
            self.pool,
            self.catalogue,
            models,
            {a: b for a, b in self.brokers.items() if a not in paper_accounts and isinstance(b, CandleSource)},
            self.forming_candles,
        )
        self.batches = BatchService(self.pool, self.orders, self.waiters)
        self.accounts = AccountsService(
            self.pool, self.settings, self.brokers, SessionStore(self.pool, self.settings.accounts.secret_key)
        )
        self.listener.subscribe(SESSIONS_CHANNEL, self._session_changed)
        guard = UrlGuard(self.settings.webhooks.allow_private)
        self.webhooks = WebhookService(
            self.pool, guard, set(self.settings.accounts.brokers), self.settings.webhooks.max_per_account
        )
        self.webhook_sender = DeliverySender(self.pool, self.settings, guard)
        self.listener.subscribe(DELIVERIES_CHANNEL, self.webhook_sender.notify)
        self.listener.subscribe(EVENTS_CHANNEL, lambda _p: self._fanout_wake.set())
        for broker in self.brokers.values():  # a Kite account without a token shows as not logged in at once
            if isinstance(broker, SessionBroker):
                try:
                    await broker.refresh_session()
                except Exception:
                    log.exception("could not read a broker session at start-up", account_id=broker.account_id)
        await self.stream.start()
        self.market.pool = self.pool
        self.subscriptions = SubscriptionService(
            self.pool, self.catalogue, self.market.limits, self.settings.account_ids
        )
        await self.market.hub.start(self.pool, self._known_tokens)
        for account_id, broker in self.brokers.items():
            if isinstance(broker, TickCarrier):
                broker.carry_ticks(self.market.holder(account_id, self.pool))
        await self.listener.start()
        await self.executor.start()
        await self.webhook_sender.start()
        s = self.settings
        grace = 2 * s.execution.broker_timeout
        schedule = maintenance.CleanupSchedule(s.database.task_cleanup_schedule)

        async def cleanup_step() -> None:
            if schedule.due():
                await maintenance.cleanup(self.engine, s.database.task_retention_days)

        self._background = [
            asyncio.create_task(
                self._every(s.execution.poll_interval, lambda: maintenance.sweep_expired_leases(self.pool, grace)),
                name="lease-sweeper",
            ),
            asyncio.create_task(
                run_singleton(
                    "reconcile",
                    self.dsn,
                    RECONCILE_LOCK,
                    lambda: maintenance.reconcile_orders(self.pool, self.brokers),
                    lambda: s.execution.reconcile_interval,
                    self._stop,
                ),
                name="reconciler",
            ),
            asyncio.create_task(
                run_singleton(
                    "webhook-fanout",
                    self.dsn,
                    WEBHOOK_FANOUT_LOCK,
                    lambda: fan_out(self.pool),
                    lambda: s.execution.poll_interval,
                    self._stop,
                    self._fanout_wake,
                    min_gap=0.01,  # every intake NOTIFYs: one pass per 10 ms at most under load
                ),
                name="webhook-fanout",
            ),
            asyncio.create_task(self._every(60.0, self._roll_instruments), name="instrument-roll"),
            asyncio.create_task(
                run_singleton(
                    "instrument-dumps",
                    self.dsn,
                    REFRESH_JOB_LOCK,
                    lambda: refresh_stale_dumps(self.pool, dump_sources),
                    lambda: JOB_INTERVAL,
                    self._stop,
                ),
                name="instrument-dumps",
            ),
            asyncio.create_task(
                run_singleton("cleanup", self.dsn, CLEANUP_LOCK, cleanup_step, lambda: 30.0, self._stop),
                name="cleanup",
            ),
        ]
        # each account's broker tells of the changes it makes on its own (fills, exchange cancels, orders
        # placed elsewhere): one process per account follows that stream into the order mirror
        for account_id, broker in self.brokers.items():
            self._background.append(
                asyncio.create_task(
                    hold_singleton(
                        f"order-updates-{account_id}",
                        self.dsn,
                        account_lock(account_id),
                        functools.partial(follow_order_updates, self.pool, broker),
                        self._stop,
                    ),
                    name=f"order-updates-{account_id}",
                )
            )
        # a simulated account has no upstream connection: its ticks come from its price model, under a lock
        for account_id, broker in self.brokers.items():
            if isinstance(broker, PriceModel):
                self._background.append(
                    asyncio.create_task(
                        hold_singleton(
                            f"ticks-{account_id}",
                            self.dsn,
                            tick_lock(account_id),
                            functools.partial(self.market.run_paper, account_id, broker, self.instruments),
                            self._stop,
                        ),
                        name=f"ticks-{account_id}",
                    )
                )
        log.info(
            "runtime started",
            instance_id=s.server.instance_id,
            workers=s.execution.workers,
            accounts=sorted(self.brokers),
        )

    async def _known_tokens(self, account_id: str, tokens: list[int]) -> set[int]:
        return set(await self.catalogue.by_tokens(account_id, tokens))

    async def _roll_instruments(self) -> None:
        if self.instruments.roll(today_ist()):
            log.info("paper instruments rolled", day=str(self.instruments.day), instruments=len(self.instruments))

    def _tasks_claimable(self, written_by: str) -> None:
        """A NOTIFY on `ticker_tasks`; a task this instance wrote has woken its workers already."""
        if written_by != self.settings.server.instance_id:
            self.executor.notify()

    def _session_changed(self, account_id: str) -> None:
        """A session was stored (on any instance): the account's broker re-reads it now."""
        targets = [self.brokers[account_id]] if account_id in self.brokers else list(self.brokers.values())
        for broker in targets:  # an empty payload (after a listener reconnect): every account
            if isinstance(broker, SessionBroker):
                broker.session_changed()

    async def _every(self, interval: float, step: Any) -> None:
        while not self._stop.is_set():
            try:
                await step()
            except Exception:
                log.exception("periodic step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)

    async def stop(self) -> None:
        await self.stream.stop()  # sockets closed with 1001 first
        await self.market.hub.stop()
        self._stop.set()
        await self.executor.stop()
        await self.webhook_sender.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.listener.stop()
        for broker in self.brokers.values():
            await broker.close()
        await self.pool.close()
        await self.engine.dispose()
        log.info("runtime stopped")
