"""Response shapes shared by every route, and helpers that document them in OpenAPI."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import Field

from mailbridge.models.base import Model


class ErrorDetail(Model):
    code: str = Field(description="Machine-readable reason, stable across releases", examples=["not_found"])
    message: str = Field(description="Human-readable explanation")
    details: Any = Field(default=None, description="Extra structured information, e.g. invalid fields")


class ErrorResponse(Model):
    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Invalid input (bad cursor, rule violation)",
    401: "Missing, invalid or expired bearer token (answered by the API Gateway authorizer)",
    403: "The caller's role does not allow this, or the token carries no tenant",
    404: "Not found, or not visible to this tenant",
    409: "Conflict with the current state (duplicate, concurrent change)",
    413: "Payload too large",
    422: "Request validation failed",
    429: "Rate limited by a provider; retry after the Retry-After header",
    502: "An upstream provider failed",
    503: "Temporarily unavailable; retry",
}

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def error_responses(*statuses: int) -> dict[int, OpenAPIResponse]:
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "content": {"application/json": {"model": ErrorResponse}},
        }
        for status in statuses
    }


AUTHED_ERRORS = (401, 403, 422)
