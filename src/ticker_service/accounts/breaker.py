"""A circuit breaker per account: when its broker keeps failing at the network level, stop sending.

Consecutive network failures (unreachable, no answer) are counted in the process that sees them;
at the threshold the account is paused for every instance (`breaker_open`): its tasks wait without
spending attempts. The process that follows the account's broker stream probes it with a cheap
read once the probe is due (half-open); success lifts the pause, failure schedules the next probe.
`circuit_breaker_state{account}` is 0 closed, 1 open, 2 probing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from ticker_service.accounts import pauses
from ticker_service.accounts.states import PauseReason
from ticker_service.system import metrics

log = structlog.get_logger("ticker.breaker")

CLOSED, OPEN, PROBING = 0, 1, 2


class Breaker:
    def __init__(self, pool: asyncpg.Pool, account_id: str, *, threshold: int, probe_after: float) -> None:
        self.pool = pool
        self.account_id = account_id
        self.threshold = threshold
        self.probe_after = probe_after
        self.failures = 0
        self._gauge = metrics.CIRCUIT_BREAKER_STATE.labels(account=account_id)
        self._gauge.set(CLOSED)

    async def failed(self, error: str) -> None:
        self.failures += 1
        if self.failures == self.threshold:
            detail = f"{self.failures} network failures in a row (last: {error}); probing every {self.probe_after:g} s"
            if await pauses.pause(
                self.pool, self.account_id, PauseReason.BREAKER_OPEN, detail, probe_in=self.probe_after
            ):
                log.error("circuit breaker opened", account_id=self.account_id, failures=self.failures)
            self._gauge.set(OPEN)

    def succeeded(self) -> None:
        self.failures = 0

    async def probe_if_due(self, read: Callable[[], Awaitable[object]]) -> None:
        """Try the cheap `read` when the account's breaker is open and its probe is due."""
        due = await pauses.probe_due(self.pool, self.account_id, PauseReason.BREAKER_OPEN)
        if not due:
            self._gauge.set(CLOSED if due is None else OPEN)
            return
        self._gauge.set(PROBING)
        try:
            await read()
        except Exception as exc:
            await pauses.probe_later(self.pool, self.account_id, PauseReason.BREAKER_OPEN, self.probe_after)
            self._gauge.set(OPEN)
            log.warning("circuit breaker probe failed", account_id=self.account_id, error=type(exc).__name__)
            return
        self.failures = 0
        await pauses.resume(self.pool, self.account_id, PauseReason.BREAKER_OPEN)
        self._gauge.set(CLOSED)
        log.info("circuit breaker closed after a successful probe", account_id=self.account_id)
