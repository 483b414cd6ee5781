"""What a request's input must be before the access guard or a handler sees it: bad input is a 4xx
naming the field, never a 500 from deeper down.

* No NUL character in a path parameter, a query value or anywhere in a JSON body (422 naming it):
  PostgreSQL's text cannot hold one, so it would fail as a 500 at the first statement.
* A route that takes a JSON body (its handler has a `data` parameter) takes only `application/json`
  (415), and the body is decoded here, once, strictly:
  - malformed or nested too deeply for the decoder: 400;
  - the same key twice in one object: 400 naming it (decoders keep one of the two silently, and
    which one differs between them; msgspec has no option to refuse them, msgspec/msgspec#648);
  - checked against the handler's schema in msgspec's strict mode: a quantity is a JSON integer, a
    price a JSON number, and no string is read as a number (Litestar's own conversion is lax, so
    `"quantity": "1e1"` was 10): 422 naming the field.
  The decoded value is left where Litestar looks for the request's JSON, so the handler gets it as
  it is (msgspec passes a value of the right type through) and the body is not decoded twice.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from ticker_service.system.errors import ApiError, FieldError

JSON_MEDIA_TYPE = "application/json"
NUL_MESSAGE = "must not contain NUL characters"
_json = msgspec.json.Decoder()
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"field `([^`]+)`")


@functools.cache
def json_body_type(handler: BaseRouteHandler) -> Any:
    """The type of a handler's JSON body (its `data` parameter), or None when it takes none."""
    signature = getattr(handler, "parsed_fn_signature", None)
    data = signature.parameters.get("data") if signature is not None else None
    return None if data is None else data.annotation


def input_guard(app: ASGIApp) -> ASGIApp:
    """The checks above for every HTTP request, as a middleware in front of the access guard."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            _check_path(scope["path_params"])
            if b"%00" in scope["query_string"]:
                _check_query(scope["query_string"])
            body_type = json_body_type(scope["route_handler"])
            if body_type is not None:
                await _decode_body(Request(scope, receive, send), body_type)
        await app(scope, receive, send)

    return middleware


def _check_path(params: dict[str, Any]) -> None:
    for name, value in params.items():
        if isinstance(value, str) and "\x00" in value:
            raise FieldError(name, NUL_MESSAGE)


def _check_query(query_string: bytes) -> None:
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            raise FieldError(name.replace("\x00", "\\x00")[:100], NUL_MESSAGE)


async def _decode_body(request: Request[Any, Any, Any], body_type: Any) -> None:
    body = await request.body()
    if not body:
        return  # the handler's own validation says what is missing
    media_type = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise ApiError(415, f"Content-Type: the body must be {JSON_MEDIA_TYPE}")
    try:
        decoded = _json.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"malformed request body: {exc}") from None
    except RecursionError:
        raise ApiError(400, "malformed request body: nested too deeply") from None
    try:
        value = msgspec.convert(decoded, body_type, strict=True)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from None
    except RecursionError:
        raise ApiError(400, "malformed request body: nested too deeply") from None
    if not _surely_without_duplicates(body, decoded):
        duplicate = _duplicate_key(body)
        if duplicate is not None:
            raise FieldError(duplicate, "the same key appears twice in one object", 400)
    if b"\\u0000" in body:
        where = _nul_path(decoded, "")
        if where is not None:
            raise FieldError(where, NUL_MESSAGE)
    ScopeState.from_scope(request.scope).json = value


def _validation_error(text: str) -> Exception:
    """A msgspec validation error as the answer Litestar's own validation would give."""
    match = _AT.match(text)
    message = match.group("message") if match else text
    path = (match.group("path") if match else "") or ""
    path = path.removeprefix(".")
    named = _NAMED_FIELD.search(message)
    if named is not None and message.startswith("Object"):  # missing or unknown field of the object at path
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    if not path:
        return ApiError(400, f"malformed request body: {message}")
    return FieldError(path, message)


def _surely_without_duplicates(body: bytes, decoded: Any) -> bool:
    """A cheap proof that no object repeats a key: when no closing quote is followed by whitespace,
    every key is a `"` directly followed by `:`, so the count of `":` is at least the count of keys
    written; it equals the keys decoded (duplicates collapse) only when none repeats. A string
    holding `\\":` or whitespace after a quote only sends the body to the exact check."""
    if b'" ' in body or b'"\n' in body or b'"\r' in body or b'"\t' in body:
        return False
    return body.count(b'":') == _keys(decoded)


def _keys(value: Any) -> int:
    count = 0
    if type(value) is dict:
        count = len(value)
        for item in value.values():
            if type(item) is dict or type(item) is list:
                count += _keys(item)
    elif type(value) is list:
        for item in value:
            if type(item) is dict or type(item) is list:
                count += _keys(item)
    return count


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _duplicate_key(body: bytes) -> str | None:
    """The first key that one object of the body holds twice (the exact, slower check)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, item in items:
            if key in seen:
                raise _Duplicate(key)
            seen[key] = item
        return seen

    try:
        json.loads(body, object_pairs_hook=pairs)
    except _Duplicate as found:
        return found.key.replace("\x00", "\\x00")[:100]
    except (ValueError, RecursionError):
        return None
    return None


def _nul_path(value: Any, path: str) -> str | None:
    """Where in the decoded body a NUL character is (a key or a string), as a field path."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return here.replace("\x00", "\\x00")[:100]
            found = _nul_path(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
