"""Client errors: every one is a 4xx whose message names the offending field.

Litestar reports body and parameter validation as 400 with the details in `extra`; we answer 422
for a field that fails validation (naming it) and keep 400 for a body that is not a JSON object at
all, as the design's table says.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)

from ticker_service.brokers.base import BrokerError
from ticker_service.db.availability import RETRY_AFTER_SECONDS, database_unavailable, outage_reason
from ticker_service.orders.lifecycle.tasks import IdempotencyConflict, NotRetryable

log = structlog.get_logger("ticker.http")

_NAMED = re.compile(r"field `([^`]+)`")


class FieldError(Exception):
    """A field failed validation against the domain (instrument, account, order state)."""

    def __init__(self, field: str, message: str, status_code: int = HTTP_422_UNPROCESSABLE_ENTITY) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.status_code = status_code


class ApiError(Exception):
    """Any other client error with a status code and a message (404, 409, 403 ...)."""

    def __init__(self, status_code: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers
        self.extra = extra


def _body(
    status: int, detail: str, field: str | None = None, errors: list[dict[str, str]] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def validation_handler(_request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors: list[dict[str, str]] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key", ""))
        message = str(item.get("message", "invalid value"))
        if key in ("", "data"):
            named = _NAMED.search(message)
            if named is None:
                continue  # the body as a whole is wrong: not a field error
            key = named.group(1)
        errors.append({"field": key, "message": message})
    if not errors:
        detail = exc.detail if "malformed" in exc.detail.lower() else f"malformed request body: {exc.detail}"
        for item in extra:
            if isinstance(item, dict) and item.get("message"):
                detail = f"malformed request body: {item['message']}"
        return Response(_body(HTTP_400_BAD_REQUEST, detail), status_code=HTTP_400_BAD_REQUEST)
    first = errors[0]
    detail = f"{first['field']}: {first['message']}"
    return Response(
        _body(HTTP_422_UNPROCESSABLE_ENTITY, detail, first["field"], errors),
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
    )


def field_error_handler(_request: Request[Any, Any, Any], exc: FieldError) -> Response[Any]:
    return Response(
        _body(
            exc.status_code, f"{exc.field}: {exc.message}", exc.field, [{"field": exc.field, "message": exc.message}]
        ),
        status_code=exc.status_code,
    )


def api_error_handler(_request: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return Response(_body(exc.status_code, exc.message, **exc.extra), status_code=exc.status_code, headers=exc.headers)


def conflict_handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return Response(_body(409, str(exc)), status_code=409)


def database_unavailable_response(exc: BaseException) -> Response[Any]:
    """503 with Retry-After: PostgreSQL cannot be used now; the request changed nothing (or, for an
    answer lost after a commit, the same `Idempotency-Key` finds it when retried)."""
    return Response(
        _body(HTTP_503_SERVICE_UNAVAILABLE, f"{outage_reason(exc)}; retry later"),
        status_code=HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def broker_error_handler(_request: Request[Any, Any, Any], exc: BrokerError) -> Response[Any]:
    if database_unavailable(exc):  # a paper account's exchange lives in the database
        return database_unavailable_response(exc)
    return Response(
        _body(503, f"the broker is unavailable: {exc}"),
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def http_exception_handler(_request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return Response(_body(exc.status_code, exc.detail), status_code=exc.status_code, headers=exc.headers)


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if database_unavailable(exc):
        log.warning("database unavailable", path=request.url.path, reason=outage_reason(exc))
        return database_unavailable_response(exc)
    log.exception("unhandled error", path=request.url.path, error_type=type(exc).__name__)
    return Response(
        _body(HTTP_500_INTERNAL_SERVER_ERROR, "internal error; see the service log for the request id"),
        status_code=HTTP_500_INTERNAL_SERVER_ERROR,
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ValidationException: validation_handler,
    FieldError: field_error_handler,
    ApiError: api_error_handler,
    IdempotencyConflict: conflict_handler,
    NotRetryable: conflict_handler,
    BrokerError: broker_error_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}


def answer_status(exc: Exception) -> int:
    """The status the handlers above answer `exc` with, for the metrics and logs of a request whose
    exception is turned into the answer outside the middleware that counts it (one raised by the
    input or access guard, which run as middleware)."""
    for kind in type(exc).__mro__:
        handler = EXCEPTION_HANDLERS.get(kind)
        if handler is not None:
            if handler is internal_error_handler:
                return HTTP_503_SERVICE_UNAVAILABLE if database_unavailable(exc) else HTTP_500_INTERNAL_SERVER_ERROR
            return int(handler(None, exc).status_code)
    return HTTP_500_INTERNAL_SERVER_ERROR
