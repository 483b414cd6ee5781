"""Whether an error means PostgreSQL cannot be used right now (an outage), not that a statement is wrong.

While the database is down, stopping, starting or out of connections, a request can only be answered
503 with `Retry-After` (it comes back by itself: the pools reconnect, the background loops retry),
and the answer says why in words that reveal nothing of the deployment (no host, no address).
"""

from __future__ import annotations

from types import TracebackType

import asyncpg
from sqlalchemy.exc import DBAPIError

RETRY_AFTER_SECONDS = 5  # what a client is told to wait while the database is unavailable

_OUTAGE = (
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or was lost
    asyncpg.exceptions.CannotConnectNowError,  # starting up or shutting down
    asyncpg.exceptions.AdminShutdownError,  # terminated by a shutdown
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
_DRIVERS = ("asyncpg", "sqlalchemy")


def database_unavailable(exc: BaseException | None) -> bool:
    """True when `exc`, or an error it was raised from, says the database cannot be reached now."""
    return _outage(exc) is not None


def outage_reason(exc: BaseException | None) -> str:
    """Why the database cannot be used, in a few words (never the server's address)."""
    cause = _outage(exc)
    if isinstance(cause, asyncpg.exceptions.CannotConnectNowError | asyncpg.exceptions.AdminShutdownError):
        return "the database is shutting down or starting up"
    if isinstance(cause, asyncpg.exceptions.TooManyConnectionsError):
        return "the database has no connection left for this service"
    if isinstance(cause, TimeoutError):
        return "the database did not answer in time"
    if isinstance(cause, OSError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError):
        return "the database cannot be reached"
    return "the database is unavailable"


def _outage(exc: BaseException | None) -> BaseException | None:
    """The error in `exc`'s chain (itself, its cause or context, a wrapper's original) that is an outage."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _is_outage(exc):
            return exc
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "orig", None)
    return None


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, _OUTAGE):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc)  # "connection is closed": lost under a statement
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    # the socket: refused, gone (a unix socket's file), reset, timed out; from the driver, not a broker
    return isinstance(exc, OSError) and _raised_by_driver(exc.__traceback__)


def _raised_by_driver(tb: TracebackType | None) -> bool:
    """An OSError from the database driver's code, not from a broker's network call."""
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVERS):
            return True
        tb = tb.tb_next
    return False
