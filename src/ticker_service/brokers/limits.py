"""Kite's per-API-key rate limits, kept in PostgreSQL so that every instance of the service shares them.

Kite counts requests per API key, whichever process sends them (KITE.md "Limits"); several processes
of the service may send for one key, and PostgreSQL is the only thing they share. Why it is built
the way it is:

* **Reservations, not polling.** `acquire` takes, in one short transaction, the earliest instant
  at which every limit it names allows one more request, writes that instant into each limit's
  ring, commits, and only then sleeps until it (holding no connection and no lock). The
  transaction is one statement, `rate_limit_reserve` (a PL/pgSQL function, migration 0010): it is
  on the path of every order, and as five statements from here it cost five round trips. A waiter's
  place is fixed when it arrives: the rings' row locks serialise arrivals roughly in the order they
  come (PostgreSQL queues waiters on a row lock), and a ring only ever hands out instants no earlier
  than its latest one, so a later arrival never overtakes an earlier one and a steady stream cannot
  starve anybody. Polling limiters ("try, sleep, try again") let the luckiest retry win. Knowing the
  instant up front also answers the deadline at once: a request whose slot lies past its deadline
  is refused without waiting and without taking the slot.
* **A sliding window as a ring.** "At most `count` in any `window` seconds" holds exactly when every
  grant comes at least `window` after the grant `count` places before it (grants in time order). So
  a ring needs the grant `count` places back, one row found by its primary key, not a count of the
  window's rows: an acquisition reads one row and writes one per limit, whatever the limit (5,000 a
  day included). A token bucket would let 2 x `count` through around a refill; a fixed window lets
  2 x `count` straddle its edge.
* **The calendar day** (Kite's 5,000 orders reset at midnight IST) is the same ring with another
  rule: a grant must fall on a later day than the one `count` places back.
* **The margin.** Kite counts requests when they *arrive*; the ring counts them when they are
  granted, on the database's clock. Between the two lie the wake-up, a worker thread, the network,
  and these delays vary: two requests granted exactly a second apart can arrive 0.95 s apart if the
  first one was delayed 50 ms more. Each window is therefore lengthened by `Limit.margin` (100 ms by
  default: more than the spread of those delays on a healthy host). A constant offset between our
  clock and Kite's does not matter to a sliding window, but it does to a calendar day, so the daily
  limit's margin is larger (a minute), which costs nothing at midnight IST, when no market is open.
* **One clock.** Every instant is the database's `clock_timestamp()`, read after the ring locks are
  held; a process converts "sleep until T" into its own monotonic clock from the moment the
  database answered, which can only make it wake late, never early.
* **Cancellation** of a waiter (its task cancelled while it sleeps) gives its slot back: its grant
  is deleted from each ring and the later ones renumbered, so the rings are exactly as if it had
  never asked. Waiters already asleep keep their instants; the next arrival gets the freed room.
* **Clean-up: a ring, not a day of rows.** Each acquisition deletes the grants that can no longer
  bound anything (more than `count` + a few places back and in the past), so a ring holds at most
  `count` + `spare` rows plus the reservations still in the future: 5,000-odd rows for a busy day
  limit, independent of the traffic, and nothing to count. A log kept for a day would have cost a
  count (or a counter to keep right) on each acquisition and a periodic delete. The few spare rows
  let a cancellation renumber the ring without losing the grant a later bound needs; past them the
  ring stands in the newest trimmed instant (`trimmed_at`), which only errs towards waiting longer.
  Rings of keys gone idle are dropped whole by `purge_idle`.

A process that dies between its reservation and its request leaves a grant that was never used:
that errs on the safe side (others wait a little longer) and needs no repair.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import structlog

log = structlog.get_logger("ticker.limits")

DEFAULT_MARGIN = 0.1  # seconds added to every sliding window: the spread of send-to-arrival delays
DAY_MARGIN = 60.0  # for calendar days: the offset between our clock and Kite's matters there
DEFAULT_SPARE = 32  # grants kept beyond `count`, so cancellations can renumber without losing a bound


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """A window that is a calendar day in a time zone: Kite's daily order limit resets at midnight IST."""

    tz: str = "Asia/Kolkata"

    def start(self, at: datetime) -> datetime:
        """The midnight that began the day `at` falls on."""
        zone = ZoneInfo(self.tz)
        return datetime.combine(at.astimezone(zone).date(), time(0), tzinfo=zone)

    def next_start(self, at: datetime) -> datetime:
        """The first midnight after `at`."""
        zone = ZoneInfo(self.tz)
        return datetime.combine(at.astimezone(zone).date() + timedelta(days=1), time(0), tzinfo=zone)


IST_DAY = CalendarDay("Asia/Kolkata")


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` requests in any `window` seconds, or per calendar day when `window` is one.

    The name identifies the limit's ring in the database: one name, one meaning, for every process.
    """

    name: str
    count: int
    window: float | CalendarDay
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a limit needs a name")
        if self.count < 1:
            raise ValueError(f"limit {self.name}: count must be at least 1")
        if not isinstance(self.window, CalendarDay) and self.window <= 0:
            raise ValueError(f"limit {self.name}: window must be positive")
        if self.margin < 0:
            raise ValueError(f"limit {self.name}: margin must not be negative")

    def sql_rule(self) -> tuple[float | None, float, str | None]:
        """The limit as `rate_limit_reserve` takes it: (window seconds or None for a calendar day,
        margin, time zone of the day)."""
        if isinstance(self.window, CalendarDay):
            return None, self.margin, self.window.tz
        return self.window, self.margin, None

    def describe(self) -> str:
        if isinstance(self.window, CalendarDay):
            return f"{self.count} per day ({self.window.tz})"
        return f"{self.count} per {self.window:g} s"


# Kite's limits per API key (KITE.md "Limits"); an order endpoint takes all three order limits at once.
KITE_ORDER_LIMITS = (
    Limit("orders_per_second", 10, 1.0),
    Limit("orders_per_minute", 400, 60.0),
    Limit("orders_per_day", 5000, IST_DAY, margin=DAY_MARGIN),
)
KITE_QUOTE_LIMITS = (Limit("quote", 1, 1.0),)
KITE_HISTORICAL_LIMITS = (Limit("historical", 3, 1.0),)
KITE_OTHER_LIMITS = (Limit("other_endpoints", 10, 1.0),)


@dataclass(frozen=True, slots=True)
class Granted:
    """One slot in every limit asked for; `acquire` returns it at `at` (the database's clock) or later."""

    at: datetime
    waited: float  # seconds between the reservation and `at`


@dataclass(frozen=True, slots=True)
class Refused:
    """No slot before the deadline; nothing was taken. `limit` is the one that set the earliest slot
    (None when the deadline had passed before any limit was consulted)."""

    key: str
    limit: Limit | None
    needed: float  # seconds from the reservation attempt until the earliest slot
    allowed: float  # seconds the deadline left (negative: already past)

    @property
    def message(self) -> str:
        if self.limit is None:
            return f"deadline passed {-self.allowed:.3f} s before a rate limit slot was asked for"
        return (
            f"rate limit {self.limit.name} ({self.limit.describe()}): the next slot is {self.needed:.3f} s away, "
            f"past the deadline ({self.allowed:.3f} s away)"
        )


# ---- statements ----

_LOCK_RINGS = """
SELECT limit_name, seq, last_at, trimmed_at FROM rate_limit_rings
WHERE api_key = $1 AND limit_name = ANY($2::text[])
ORDER BY limit_name
FOR UPDATE
"""

_ENSURE_RINGS = """
INSERT INTO rate_limit_rings (api_key, limit_name)
SELECT $1, name FROM unnest($2::text[]) AS name ORDER BY name
ON CONFLICT DO NOTHING
"""

# One round trip: lock the rings, read their bounds, record the grant (migration 0010 holds the rules)
_RESERVE = "SELECT * FROM rate_limit_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"

_DELETE_GRANT = """
DELETE FROM rate_limit_grants WHERE ctid = (
    SELECT ctid FROM rate_limit_grants WHERE api_key = $1 AND limit_name = $2 AND at = $3
    ORDER BY seq DESC LIMIT 1
)
RETURNING seq
"""

# Close the gap a deleted grant left, in two steps: the primary key is checked row by row, so a
# one-step `seq - 1` could collide with a row not yet moved.
_RENUMBER_AWAY = "UPDATE rate_limit_grants SET seq = -(seq - 1) WHERE api_key = $1 AND limit_name = $2 AND seq > $3"
_RENUMBER_BACK = "UPDATE rate_limit_grants SET seq = -seq WHERE api_key = $1 AND limit_name = $2 AND seq < 0"

_RING_BACK = """
UPDATE rate_limit_rings AS r
SET seq = r.seq - 1,
    last_at = coalesce(
        (SELECT g.at FROM rate_limit_grants AS g
         WHERE g.api_key = r.api_key AND g.limit_name = r.limit_name AND g.seq = r.seq - 1),
        r.trimmed_at)
WHERE r.api_key = $1 AND r.limit_name = $2
"""

# SKIP LOCKED: a ring in use is not idle, and waiting for it in another order than `acquire` locks
# rings could deadlock with it.
_PURGE_IDLE = """
DELETE FROM rate_limit_rings WHERE (api_key, limit_name) IN (
    SELECT api_key, limit_name FROM rate_limit_rings
    WHERE idle_after < clock_timestamp() + make_interval(secs => $1)
    ORDER BY api_key, limit_name
    FOR UPDATE SKIP LOCKED
)
"""

# Grants granted so far (reservations still in the future are not counted) since `lo`: the ring's
# seq numbers are consecutive in time order, so two index probes give the count.
_USED = """
WITH now AS MATERIALIZED (SELECT clock_timestamp() + make_interval(secs => $3) AS t)
SELECT
    (SELECT g.seq FROM rate_limit_grants AS g
     WHERE g.api_key = $1 AND g.limit_name = $2 AND g.at <= (SELECT t FROM now)
     ORDER BY g.at DESC, g.seq DESC LIMIT 1) AS last_seq,
    (SELECT g.seq FROM rate_limit_grants AS g
     WHERE g.api_key = $1 AND g.limit_name = $2 AND g.at {op} (SELECT {lo} FROM now)
     ORDER BY g.at, g.seq LIMIT 1) AS first_seq
"""
_USED_SLIDING = _USED.format(lo="t - make_interval(secs => $4)", op=">")
_USED_DAY = _USED.format(lo="date_trunc('day', t, $4)", op=">=")


@dataclass(frozen=True, slots=True)
class _Reservation:
    at: datetime
    waited: float
    wake: float  # the event loop's clock at which `at` has passed on the database's clock


class RateLimiter:
    """Rate limits per key shared through PostgreSQL; see the module's docstring for the design.

    `clock_shift` (seconds) is added to the database's clock everywhere the limiter reads it. It is
    0 in the service; tests use it to stand just before an IST midnight.
    """

    def __init__(self, pool: asyncpg.Pool, *, spare: int = DEFAULT_SPARE, clock_shift: float = 0.0) -> None:
        if spare < 0:
            raise ValueError("spare must not be negative")
        self._pool = pool
        self._spare = spare
        self._shift = clock_shift
        self._settling: set[asyncio.Task[None]] = set()

    async def acquire(self, key: str, limits: Sequence[Limit], *, deadline: datetime | float) -> Granted | Refused:
        """Take one slot in every limit at once and return when all of them allow the request.

        `deadline` is an instant (compared on the database's clock) or seconds from the reservation;
        a slot past it is refused at once, taking nothing. Cancelled while waiting, the slot is
        given back before the cancellation propagates.
        """
        ordered = sorted(limits, key=lambda limit: limit.name)
        names = [limit.name for limit in ordered]
        if not names:
            raise ValueError("acquire needs at least one limit")
        if len(set(names)) != len(names):
            raise ValueError(f"limits named twice: {names}")
        reserving = asyncio.ensure_future(self._reserve(key, ordered, deadline))
        try:
            outcome = await asyncio.shield(reserving)
        except asyncio.CancelledError:
            await self._settle(self._release_when_reserved(key, ordered, reserving))
            raise
        if isinstance(outcome, Refused):
            return outcome
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(max(0.0, outcome.wake - loop.time()))
        except asyncio.CancelledError:
            await self._settle(self._release(key, ordered, outcome.at))
            raise
        return Granted(at=outcome.at, waited=outcome.waited)

    async def used(self, key: str, limit: Limit) -> int:
        """Grants of `limit` already due (not those still waiting) within its current window: the last
        `window` seconds, or the calendar day so far."""
        if isinstance(limit.window, CalendarDay):
            row = await self._pool.fetchrow(_USED_DAY, key, limit.name, self._shift, limit.window.tz)
        else:
            row = await self._pool.fetchrow(_USED_SLIDING, key, limit.name, self._shift, float(limit.window))
        last, first = row["last_seq"], row["first_seq"]
        if last is None or first is None or last < first:
            return 0
        return int(last - first + 1)

    async def purge_idle(self) -> int:
        """Drop the rings whose grants can no longer bound anything (keys gone quiet); returns how many."""
        status: str = await self._pool.execute(_PURGE_IDLE, self._shift)
        return int(status.rsplit(" ", 1)[-1])

    async def aclose(self) -> None:
        """Wait for slots being given back by cancelled waiters (the pool must still be open)."""
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    # ---- reservation ----

    async def _reserve(self, key: str, limits: list[Limit], deadline: datetime | float) -> _Reservation | Refused:
        names = [limit.name for limit in limits]
        rules = [limit.sql_rule() for limit in limits]
        at_deadline, in_seconds = (deadline, None) if isinstance(deadline, datetime) else (None, float(deadline))
        for _ in range(5):
            row = await self._pool.fetchrow(
                _RESERVE,
                key,
                names,
                [limit.count for limit in limits],
                [window for window, _, _ in rules],
                [margin for _, margin, _ in rules],
                [tz for _, _, tz in rules],
                at_deadline,
                in_seconds,
                self._shift,
                self._spare,
            )
            loop_now = asyncio.get_running_loop().time()
            if row["o_outcome"] != "missing":
                return self._outcome(key, limits, row, deadline, loop_now)
            # First use of a ring (or purged meanwhile): create it outside the locking transaction,
            # so that transaction only ever locks rows in one order.
            await self._pool.execute(_ENSURE_RINGS, key, names)
        raise RuntimeError(f"rate limit rings of {key!r} kept disappearing")

    @staticmethod
    def _outcome(
        key: str, limits: list[Limit], row: asyncpg.Record, deadline: datetime | float, loop_now: float
    ) -> _Reservation | Refused:
        now: datetime = row["o_now"]
        at: datetime = row["o_at"]
        needed = (at - now).total_seconds()
        if row["o_outcome"] == "refused":
            limit_at = deadline if isinstance(deadline, datetime) else now + timedelta(seconds=deadline)
            binding = next((limit for limit in limits if limit.name == row["o_binding"]), None)
            return Refused(key=key, limit=binding, needed=needed, allowed=(limit_at - now).total_seconds())
        # the database's `now` was read before `loop_now`: waking at loop_now + needed can only be late
        return _Reservation(at=at, waited=needed, wake=loop_now + needed)

    # ---- giving a slot back ----

    async def _settle(self, work: Coroutine[Any, Any, None]) -> None:
        """Run the give-back to its end even if the caller is cancelled again meanwhile."""
        task = asyncio.ensure_future(work)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        await asyncio.shield(task)

    async def _release_when_reserved(
        self, key: str, limits: list[Limit], reserving: asyncio.Future[_Reservation | Refused]
    ) -> None:
        with contextlib.suppress(Exception):
            outcome = await reserving
            if isinstance(outcome, _Reservation):
                await self._release(key, limits, outcome.at)

    async def _release(self, key: str, limits: list[Limit], at: datetime) -> None:
        """Delete one grant at `at` from each ring and close the gaps. Grants of one ring at the same
        instant are interchangeable, so which one goes does not matter."""
        names = [limit.name for limit in limits]
        try:
            async with self._pool.acquire() as conn, conn.transaction(isolation="read_committed"):
                await conn.fetch(_LOCK_RINGS, key, names)
                for name in names:
                    seq = await conn.fetchval(_DELETE_GRANT, key, name, at)
                    if seq is None:  # trimmed or purged already: nothing left to give back
                        continue
                    await conn.execute(_RENUMBER_AWAY, key, name, seq)
                    await conn.execute(_RENUMBER_BACK, key, name)
                    await conn.execute(_RING_BACK, key, name)
        except Exception:
            # The grant stays: others wait a little longer than needed, never less.
            log.warning(
                "could not give back a rate limit slot", key=key, limits=names, at=at.isoformat(), exc_info=True
            )
