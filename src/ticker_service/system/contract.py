"""What each operation can answer, written into the OpenAPI document when the app is built.

The error answers do not come from the handlers but from the layers in front of them (the input
guard, the access guard, the per-key rate limits, the database's outage handler), so they are
derived here from what a route declares, by one set of rules, instead of being listed by hand on
every handler (where they would drift):

* 422 on every route: a NUL character in any query value is refused by the input guard before the
  route looks at its parameters; 400 where the route takes parameters or a body (validation);
* 413 and 415 where the route takes a JSON body (its size, its media type);
* 401 and 403 where a key is needed (`TICKER_API_KEYS` set, a route neither public nor signed); a
  signed route (Kite's postback, the login's callback) answers 401 for a request without its proof;
* 404 where the path names something (an id, an account, a segment);
* 409 where the route takes an `Idempotency-Key` (the same key with another request);
* 429 where the per-key limits count the route (`TICKER_RATE_LIMITS` set, neither public nor signed);
* 503 with Retry-After on every route that is not public: the guard, the handler or the broker
  behind it may find PostgreSQL (or the broker) unavailable.

A handler adds what only it answers (a task's 202/422/503, a 501 of a broker without holdings, a
409 of its own) with `answers(...)` in its `opt`. When a status is both an error of the layers and
an answer of the handler, its schema is either body. Build-time only: nothing here runs per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Schema
from litestar.routes import HTTPRoute

from ticker_service.settings import Settings
from ticker_service.system.access import Source, declared
from ticker_service.system.inputs import JSON_MEDIA_TYPE, json_body_type

ANSWERS = "answers"  # the key of a handler's own answers in its `opt`
_NOT_PARAMETERS = {"self", "request", "state", "scope", "socket", "headers", "cookies", "query", "body", "data"}


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every error answer of the service (`system/errors.py`): the status, what is wrong, and for a
    field error the field (and each field's problem)."""

    status_code: int
    detail: str
    field: str | msgspec.UnsetType = msgspec.UNSET
    errors: list[FieldProblem] | msgspec.UnsetType = msgspec.UNSET


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed: the body is not JSON (or a key is given twice), or a parameter cannot be read",
    401: "No API key, an unknown one, or a request without its proof (signed routes)",
    403: "This API key may not use that account",
    404: "No such id, or one this API key may not see (answered alike)",
    409: "Conflicts with the current state (e.g. the same Idempotency-Key with another request)",
    413: "The body is larger than TICKER_MAX_BODY_BYTES",
    415: "The body is not application/json",
    422: "A field is invalid: `field` names it",
    429: "This API key has used its requests (TICKER_RATE_LIMITS); see Retry-After",
    501: "This account's broker does not offer it",
    503: "PostgreSQL or the broker cannot be used now; see Retry-After",
}


def answer(container: Any, description: str, media_type: str = JSON_MEDIA_TYPE) -> ResponseSpec:
    """One of a handler's own answers (a status it answers besides its declared one)."""
    return ResponseSpec(container, description=description, media_type=media_type, generate_examples=False)


BROKER_WITHOUT_IT = {501: answer(ErrorBody, ERROR_DESCRIPTIONS[501])}


def answers(specs: Mapping[int, ResponseSpec]) -> dict[str, dict[int, ResponseSpec]]:
    """A handler's own answers beside its declared status, for its `opt` (merged with `Access`)."""
    return {ANSWERS: dict(specs)}


def takes_parameters(handler: HTTPRouteHandler) -> bool:
    """Whether the handler reads path, query or header parameters (those its dependencies do not)."""
    dependencies = set(handler.resolve_dependencies())
    names = set(handler.parsed_fn_signature.parameters) - _NOT_PARAMETERS - dependencies
    return bool(names) or json_body_type(handler) is not None


def error_statuses(handler: HTTPRouteHandler, path_parameters: bool, settings: Settings) -> set[int]:
    """The error statuses the layers in front of `handler` can answer (the rules of the docstring)."""
    access = declared(handler)
    source = access.source if access is not None else Source.PUBLIC
    keyed = source not in (Source.PUBLIC, Source.SIGNED)
    statuses = {422}
    if takes_parameters(handler):
        statuses.add(400)
    if json_body_type(handler) is not None:
        statuses |= {413, 415}
    if (keyed and settings.api_keys) or source == Source.SIGNED:
        statuses.add(401)
    if keyed and settings.api_keys:
        statuses.add(403)
    if path_parameters:
        statuses.add(404)
    if "idempotency_key" in handler.parsed_fn_signature.parameters:
        statuses.add(409)
    if keyed and settings.accounts.rate_limits:
        statuses.add(429)
    if source != Source.PUBLIC:
        statuses.add(503)
    return statuses


def _merged(status: int, own: ResponseSpec | None) -> ResponseSpec:
    error = ResponseSpec(ErrorBody, description=ERROR_DESCRIPTIONS.get(status, "Error"), generate_examples=False)
    if own is None:
        return error
    if own.media_type != JSON_MEDIA_TYPE or own.data_container is None:
        return own
    either: Any = Union[own.data_container, ErrorBody]  # noqa: UP007  # a runtime union of two types
    return ResponseSpec(either, description=f"{own.description}; or {error.description}", generate_examples=False)


# JSON Schema's constraint keywords, as msgspec writes them and as Litestar's `Schema` holds them
_CONSTRAINTS = {
    "minimum": "minimum",
    "exclusiveMinimum": "exclusive_minimum",
    "maximum": "maximum",
    "exclusiveMaximum": "exclusive_maximum",
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minItems": "min_items",
    "maxItems": "max_items",
}


def _body_structs(kind: msgspec.inspect.Type, found: dict[str, type[msgspec.Struct]]) -> None:
    """The structs of a request body type, by name (Litestar's name of their component schema)."""
    if isinstance(kind, msgspec.inspect.StructType):
        found[kind.cls.__name__] = kind.cls
        for field in kind.fields:
            _body_structs(field.type, found)
    elif isinstance(kind, msgspec.inspect.UnionType):
        for member in kind.types:
            _body_structs(member, found)
    elif isinstance(kind, (msgspec.inspect.ListType, msgspec.inspect.SetType, msgspec.inspect.FrozenSetType)):
        _body_structs(kind.item_type, found)
    elif isinstance(kind, msgspec.inspect.DictType):
        _body_structs(kind.value_type, found)


def _constraints(schema: dict[str, Any]) -> dict[str, Any]:
    """The constraints of a field's msgspec schema, also those inside an optional's `anyOf`."""
    found = {key: value for key, value in schema.items() if key in _CONSTRAINTS}
    for member in schema.get("anyOf", []):
        found |= {key: value for key, value in member.items() if key in _CONSTRAINTS}
    return found


def describe_request_bodies(app: Litestar) -> None:
    """Request bodies described as the input guard checks them (msgspec, strict), where Litestar's
    document said less: a struct that refuses unknown fields says `additionalProperties: false`, and
    an optional field keeps its bounds (Litestar drops a `Meta(gt=0)` under `| None`, so `quantity: 0`
    looked valid for a modification). Generates the document now, once, as the app is built."""
    structs: dict[str, type[msgspec.Struct]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                body = json_body_type(handler)
                if body is not None:
                    _body_structs(msgspec.inspect.type_info(body), structs)
    components = app.openapi_schema.components.schemas or {}
    for name, cls in structs.items():
        schema = components.get(name)
        if not isinstance(schema, Schema):
            continue
        if cls.__struct_config__.forbid_unknown_fields:
            schema.additional_properties = False
        _, definitions = msgspec.json.schema_components([cls])
        for field_name, field_schema in definitions[name].get("properties", {}).items():
            described = (schema.properties or {}).get(field_name)
            if isinstance(described, Schema):
                for key, value in _constraints(field_schema).items():
                    setattr(described, _CONSTRAINTS[key], value)


def document_answers(app: Litestar, settings: Settings) -> None:
    """Give every HTTP route handler of `app` its full `responses`: its own answers and the layers'."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.include_in_schema or declared(handler) is None:
                continue
            own: dict[int, ResponseSpec] = dict(handler.opt.get(ANSWERS, {}))
            responses = dict(handler.responses or {})
            for status in error_statuses(handler, bool(route.path_parameters), settings):
                responses[status] = _merged(status, own.pop(status, None))
            responses.update(own)
            handler.responses = responses
