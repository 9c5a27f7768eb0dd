"""The one place that turns exceptions into HTTP responses.

Everything the api function answers on its own is `{"error": {"code", "message", "details"}}`:
typed errors map by class to a status; request validation failures become 422 with the offending
fields (location, message, type; never the input); a body that is not JSON is 400 `invalid_json`,
one nested too deeply 400 `json_too_deep`, one of another media type 415 `unsupported_media_type`;
Powertools' own 404 (no route matched) is `not_found`; anything unexpected is 500 `internal`.

Unexpected errors are logged by type and code location only: an exception's message can carry
request values (a pydantic `ValidationError` prints each `input_value`), so it is never logged.
(API Gateway answers some requests itself, before this function runs: see the README.)
"""

from __future__ import annotations

import json
import math
import re
import traceback
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from mailbridge.errors import (
    Conflict,
    EventPublishError,
    Forbidden,
    Invalid,
    MailbridgeError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnreachable,
    QueueSendError,
    RateLimited,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from mailbridge.observability import logger

# Most specific first: the first isinstance match wins.
_STATUS: list[tuple[type[MailbridgeError], int]] = [
    (Invalid, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PreconditionFailed, 412),
    (PayloadTooLarge, 413),
    (UnsupportedMediaType, 415),
    (Unprocessable, 422),
    (PreconditionRequired, 428),
    (RateLimited, 429),
    (ProviderRateLimited, 429),
    # Connecting a mailbox with bad credentials or an unreachable host is the caller's input problem.
    (ProviderAuthError, 422),
    (ProviderUnreachable, 422),
    (ProviderError, 502),
    (EventPublishError, 503),
    (QueueSendError, 503),
]


def status_for(exc: MailbridgeError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(status: int, code: str, message: str, details: Any = None) -> Response[str]:
    body = {"error": {"code": code, "message": message, "details": details}}
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, default=str),
    )


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Keep location, message and type; drop `input`, which may echo secrets back.
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_FRAMES_LOGGED = 12


def _safe_loc(loc: Any) -> list[Any]:
    """A validation error's location without anything that could be a value: list indexes and
    field-like names stay, any other part (a dict key a client chose) becomes "*"."""
    parts = loc if isinstance(loc, list | tuple) else [loc]
    return [
        part if isinstance(part, int) or (isinstance(part, str) and _FIELD_NAME.fullmatch(part)) else "*"
        for part in parts
    ]


def error_summary(exc: BaseException) -> dict[str, Any]:
    """What may be logged about an unexpected error: its type, where it was raised (file, line,
    function), the type of its cause, and for validation errors each error's type and location.
    Never `str(exc)`: messages carry inputs (pydantic's `input_value=...`, a KeyError's key)."""
    frames = traceback.extract_tb(exc.__traceback__)[-_FRAMES_LOGGED:]
    summary: dict[str, Any] = {
        "error_type": type(exc).__name__,
        "error_at": [f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}" for frame in frames],
    }
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        summary["error_cause_type"] = type(cause).__name__
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic ValidationError, Powertools' request/response validation errors
        try:
            listed = errors()
        except Exception:  # noqa: BLE001 - a summary must never fail the error response
            listed = []
        summary["validation_errors"] = [
            {"type": str(err.get("type", "")), "loc": _safe_loc(err.get("loc", ()))}
            for err in listed[:20]
            if isinstance(err, dict)
        ]
    return summary


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(MailbridgeError)
    def _typed(exc: MailbridgeError) -> Response[str]:
        status = status_for(exc)
        response = error_response(status, exc.code, exc.message, exc.details)
        if isinstance(exc, ProviderRateLimited | RateLimited) and exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        if status >= 500:
            logger.warning("request failed", extra={"error_code": exc.code, "status": status})
        return response

    @app.exception_handler(RequestValidationError)
    def _validation(exc: RequestValidationError) -> Response[str]:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(400, "invalid_json", "the request body is not valid JSON")
        return error_response(422, "validation_error", "the request is not valid", details)

    @app.exception_handler(RequestUnsupportedContentType)
    def _media_type(_: RequestUnsupportedContentType) -> Response[str]:
        return error_response(
            415, "unsupported_media_type", "the request body must be JSON (content-type: application/json)"
        )

    @app.exception_handler(ServiceError)
    def _powertools(exc: ServiceError) -> Response[str]:
        # Powertools' own errors (no route matched, method not allowed) keep their status.
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "request_error")
        return error_response(exc.status_code, code, str(exc.msg))

    @app.exception_handler(RecursionError)
    def _too_deep(exc: RecursionError) -> Response[str]:
        # The last line behind the body depth check (mailbridge.api.app): nesting that still got
        # through must not become a 500.
        logger.warning("recursion limit reached", extra=error_summary(exc))
        return error_response(400, "json_too_deep", "the request is nested too deeply")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.error("unhandled error", extra=error_summary(exc))
        return error_response(500, "internal", "internal error")
