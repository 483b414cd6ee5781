"""Who may act for which account, decided before anything is written or sent (invariant 7).

Every route declares in its `opt` how the account it acts for is found (`Access`): a field of the
JSON body, a query parameter, a path parameter, the row that an id in the path names, every account
the key may see (lists), or none (health, metrics). One guard, `account_guard`, registered on the
whole application, enforces the declaration before the handler runs: before the body is even
validated, so before anything can be written or sent. It leaves its answer (`Authorized`) for the
handler, which takes the account from there and nowhere else. A route without a declaration is
refused, and a test walks the route table so that one cannot be added unnoticed.

An id that the caller may not see answers exactly as an id that does not exist: 404, naming the id
but never its account, so neither ids nor account names can be probed. A refusal never names the
account either.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import asyncpg
import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from ticker_service.system.auth import Caller, resolve_caller
from ticker_service.system.errors import ApiError

ACCESS = "access"  # the key of a route's declaration in its `opt`
_SCOPE_KEY = "ticker.authorized"  # where the guard leaves its answer in the ASGI scope
DEFAULT_ACCOUNT = "primary"
NOBODY = Caller(key_id=None, accounts=frozenset())  # the caller of a public route: may use no account

# The accounts that hold a row with this id (usually one; none when there is no such row)
RowLookup = Callable[[asyncpg.Pool, str], Awaitable[Sequence[str]]]


class Source(StrEnum):
    BODY = "body"  # a field of the JSON body
    QUERY = "query"  # a query parameter
    PATH = "path"  # a path parameter
    ROW = "row"  # the row named by a path parameter (its account column)
    VISIBLE = "visible"  # a listing: every account the key may see, or the one a query parameter names
    SIGNED = "signed"  # the path's account, proven by the request itself (a checksum, a one-time nonce), no key
    PUBLIC = "public"  # no account: health, metrics, documentation


@dataclass(frozen=True, slots=True)
class Access:
    """How a route finds its account; built with the class methods, put in the route's `opt`."""

    source: Source
    name: str = "account_id"  # the field or parameter
    default: str | None = None  # when the field or parameter is absent
    lookup: RowLookup | None = None  # ROW: which accounts hold the id
    what: str = ""  # ROW: the kind of row, for the 404 ("no task 'x'")
    fallback: str | None = None  # ROW: a query parameter naming the account when no row is found
    deferred: bool = False  # the handler calls `authorize` itself (a WebSocket, after accepting it)
    browser: bool = False  # a page a browser opens: the key may also come as `?api_key=`

    @classmethod
    def body(cls, name: str = "account_id", default: str | None = DEFAULT_ACCOUNT) -> dict[str, Access]:
        return {ACCESS: cls(Source.BODY, name, default)}

    @classmethod
    def query(cls, name: str = "account_id", default: str | None = DEFAULT_ACCOUNT) -> dict[str, Access]:
        return {ACCESS: cls(Source.QUERY, name, default)}

    @classmethod
    def path(cls, name: str = "account_id", *, deferred: bool = False, browser: bool = False) -> dict[str, Access]:
        return {ACCESS: cls(Source.PATH, name, deferred=deferred, browser=browser)}

    @classmethod
    def row(
        cls, name: str, lookup: RowLookup, what: str, *, fallback: str | None = None, default: str | None = None
    ) -> dict[str, Access]:
        return {ACCESS: cls(Source.ROW, name, default, lookup=lookup, what=what, fallback=fallback)}

    @classmethod
    def visible(cls, name: str = "account_id") -> dict[str, Access]:
        return {ACCESS: cls(Source.VISIBLE, name, None)}

    @classmethod
    def signed(cls, name: str = "account_id") -> dict[str, Access]:
        """A request that proves itself (Kite's postback checksum, the login's one-time nonce): no API
        key; the handler checks the proof before anything is written, and refuses with 401."""
        return {ACCESS: cls(Source.SIGNED, name)}

    @classmethod
    def public(cls) -> dict[str, Access]:
        return {ACCESS: cls(Source.PUBLIC)}


@dataclass(frozen=True, slots=True)
class Authorized:
    """The guard's answer: who is calling, and the account (or, for a listing, accounts) it acts for."""

    caller: Caller
    account_id: str | None = None
    accounts: list[str] = field(default_factory=list)

    @property
    def account(self) -> str:
        """The one account the route acts for (routes that declare one)."""
        if self.account_id is None:
            raise ApiError(500, "the route's account was not resolved")
        return self.account_id

    def same(self, account_id: str) -> str:
        """The account a handler read from its validated input, checked against the guard's."""
        if account_id != self.account_id:
            raise ApiError(403, "account_id: this API key may not use that account")
        return account_id


class _AccountField(msgspec.Struct):
    """The body's account, decoded as the handler will decode it (same library, same rules for
    duplicate keys), so the account checked is the account used."""

    account_id: str | None = None


_decode_account = msgspec.json.Decoder(_AccountField)


def declared(handler: BaseRouteHandler) -> Access | None:
    access = handler.opt.get(ACCESS)
    return access if isinstance(access, Access) else None


def _forbidden() -> ApiError:
    return ApiError(403, "account_id: this API key may not use that account")


def _not_found(access: Access, ident: str) -> ApiError:
    return ApiError(404, f"{access.name}: no {access.what} {ident[:100]!r}")


async def authorize(
    connection: ASGIConnection[Any, Any, Any, Any],
    access: Access,
    *,
    caller: Caller,
    accounts: Sequence[str],
    pool: asyncpg.Pool | None,
) -> Authorized:
    """Enforce `access` for this connection; raise 401/403/404 (ApiError) or return the answer."""
    source = access.source
    if source == Source.PUBLIC:
        return Authorized(caller)
    if source == Source.VISIBLE:
        named = connection.query_params.get(access.name)
        if named is not None:
            if not caller.may(named):
                raise _forbidden()
            return Authorized(caller, named, [named])
        return Authorized(caller, None, caller.visible(list(accounts)))
    if source == Source.ROW:
        return await _authorize_row(connection, access, caller, pool)
    account: str | None
    if source == Source.BODY:
        account = await _body_account(connection, access)
    elif source == Source.QUERY:
        account = connection.query_params.get(access.name, access.default)
    else:
        account = connection.path_params.get(access.name)
    if account is None:
        return Authorized(caller)  # absent without a default: the handler's validation names the field
    if not caller.may(account):
        raise _forbidden()
    return Authorized(caller, account)


async def _body_account(connection: ASGIConnection[Any, Any, Any, Any], access: Access) -> str | None:
    body = await connection.body()  # type: ignore[attr-defined]  # HTTP routes get a Request
    try:
        decoded = _decode_account.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None  # not an object with a string account: the handler refuses the body (400/422)
    return decoded.account_id if decoded.account_id is not None else access.default


async def _authorize_row(
    connection: ASGIConnection[Any, Any, Any, Any], access: Access, caller: Caller, pool: asyncpg.Pool | None
) -> Authorized:
    ident = str(connection.path_params.get(access.name, ""))
    assert access.lookup is not None and pool is not None
    if access.fallback is not None and (named := connection.query_params.get(access.fallback)) is not None:
        # the caller says which account holds it: that account, and only that one, is asked
        if not caller.may(named):
            raise _forbidden()
        return Authorized(caller, named)
    holders = [a for a in await access.lookup(pool, ident) if caller.may(a)]
    if holders:
        return Authorized(caller, holders[0])
    if access.fallback is not None and access.default is not None and caller.may(access.default):
        # a row the service has not seen (an order placed elsewhere): the default account is asked
        return Authorized(caller, access.default)
    raise _not_found(access, ident)


async def account_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The application's one guard: every route's declared account is checked here."""
    access = declared(handler)
    if access is None:
        if _is_documentation(connection) or _is_preflight(handler):
            return
        raise ApiError(500, "this route declares no account access; refusing it")
    if access.deferred:
        return
    if access.source == Source.PUBLIC:  # no key needed, and none looked at: it acts for no account
        connection.scope[_SCOPE_KEY] = Authorized(NOBODY)  # type: ignore[literal-required]
        return
    if access.source == Source.SIGNED:  # no key: the handler verifies the request's own proof
        account = connection.path_params.get(access.name)
        connection.scope[_SCOPE_KEY] = Authorized(NOBODY, account)  # type: ignore[literal-required]
        return
    runtime = connection.app.state.runtime
    settings = runtime.settings
    query_key = connection.query_params.get("api_key") if access.browser else None
    caller = resolve_caller(connection, settings.api_keys, query_key)
    limits = getattr(runtime, "api_limits", None)  # TICKER_RATE_LIMITS: the caller's budget, before anything
    if limits is not None:
        await limits.spend(caller)
    answer = await authorize(
        connection, access, caller=caller, accounts=settings.account_ids, pool=getattr(runtime, "pool", None)
    )
    connection.scope[_SCOPE_KEY] = answer  # type: ignore[literal-required]


def access_guard(app: ASGIApp) -> ASGIApp:
    """`account_guard` for every route of the application, as its first middleware.

    Not a Litestar guard: Litestar copies the route handler for every guard call, which cost about
    6 % of an order's CPU. The body read here is kept in the scope, so the handler reads it again
    for free. A WebSocket route checks after accepting (its declaration says `deferred`).
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            await account_guard(Request(scope, receive, send), scope["route_handler"])
        elif scope["type"] == ScopeType.WEBSOCKET:
            access = declared(scope["route_handler"])
            if access is None or not access.deferred:
                raise ApiError(500, "this WebSocket route does not check its account itself; refusing it")
        await app(scope, receive, send)

    return middleware


def _is_documentation(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """Litestar's own OpenAPI routes (the schema and its viewers) take no declaration."""
    config = connection.app.openapi_config
    return config is not None and config.path is not None and connection.scope["path"].startswith(config.path)


def _is_preflight(handler: BaseRouteHandler) -> bool:
    """The OPTIONS handler Litestar adds to every path: it answers `Allow` and acts for nobody."""
    return set(getattr(handler, "http_methods", ())) == {"OPTIONS"}


def authorized(connection: ASGIConnection[Any, Any, Any, Any]) -> Authorized:
    """The guard's answer for this request (the `authorized` dependency of every handler)."""
    answer = connection.scope.get(_SCOPE_KEY)
    if not isinstance(answer, Authorized):
        raise ApiError(500, "the route was not authorized")
    return answer
