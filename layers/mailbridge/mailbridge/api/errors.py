"""The one place that turns exceptions into HTTP responses.

Typed errors map by class to a status and `{"error": {"code", "message", "details"}}`; request
validation failures become 422 with the offending fields; anything unexpected is logged (without
payloads) and answered 500 with no internals.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from mailbridge.errors import (
    Conflict,
    EventPublishError,
    Forbidden,
    Invalid,
    MailbridgeError,
    NotFound,
    PayloadTooLarge,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnreachable,
    QueueSendError,
    Unauthorized,
)
from mailbridge.observability import logger

# Most specific first: the first isinstance match wins.
_STATUS: list[tuple[type[MailbridgeError], int]] = [
    (Invalid, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
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


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(MailbridgeError)
    def _typed(exc: MailbridgeError) -> Response[str]:
        status = status_for(exc)
        response = error_response(status, exc.code, exc.message, exc.details)
        if isinstance(exc, ProviderRateLimited) and exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
        if status >= 500:
            logger.warning("request failed", extra={"error_code": exc.code, "status": status})
        return response

    @app.exception_handler(RequestValidationError)
    def _validation(exc: RequestValidationError) -> Response[str]:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(400, "invalid_json", "the request body is not valid JSON")
        return error_response(422, "validation_error", "the request is not valid", details)

    @app.exception_handler(ServiceError)
    def _powertools(exc: ServiceError) -> Response[str]:
        # Powertools' own errors (no route matched, method not allowed) keep their status.
        code = "not_found" if exc.status_code == 404 else "request_error"
        return error_response(exc.status_code, code, str(exc.msg))

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error", extra={"error_type": type(exc).__name__})
        return error_response(500, "internal", "internal error")
