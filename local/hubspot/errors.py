"""HubSpot's error answers, shaped as HubSpot sends them.

* API errors: ``{"status": "error", "message", "correlationId", "category"}`` plus, for CRM object
  validation, ``"errors"`` / ``"context"`` [D, "Error handling": "the fields ... should all be
  treated as optional"]. Categories used: VALIDATION_ERROR, OBJECT_NOT_FOUND, CONFLICT,
  INVALID_AUTHENTICATION, EXPIRED_AUTHENTICATION, MISSING_SCOPES, RATE_LIMITS [R for the exact
  message texts].
* 429: ``{"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
  "errorType": "RATE_LIMIT", "correlationId", "policyName": "TEN_SECONDLY_ROLLING"}`` (or DAILY)
  [R, the body clients quote].
* OAuth v1 token endpoint: ``{"status": "BAD_AUTH_CODE" | "BAD_REFRESH_TOKEN" | "BAD_CLIENT_ID" |
  "BAD_REDIRECT_URI" | "BAD_GRANT_TYPE" | ..., "message", "correlationId"}`` with status 400 [R:
  BAD_REFRESH_TOKEN "missing or invalid refresh token" as nango.dev quotes it].
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from local.double_server import HttpError, Response


def correlation_id() -> str:
    return str(uuid.uuid4())


@dataclass
class ApiError(HttpError):
    status: int
    message: str
    category: str
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {
            "status": "error",
            "message": self.message,
            "correlationId": correlation_id(),
            "category": self.category,
            **self.extra,
        }

    def response(self) -> Response:
        return Response.json(self.status, self.body(), self.headers)


def validation(message: str, **extra: Any) -> ApiError:
    return ApiError(400, message, "VALIDATION_ERROR", extra)


def not_found(message: str = "resource not found") -> ApiError:
    return ApiError(404, message, "OBJECT_NOT_FOUND")


def unauthenticated() -> ApiError:
    return ApiError(
        401,
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
        "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        "INVALID_AUTHENTICATION",
    )


def expired(minutes: int) -> ApiError:
    return ApiError(
        401,
        f"The OAuth token used to make this call expired {minutes} minute(s) ago.",
        "EXPIRED_AUTHENTICATION",
    )


def missing_scopes(required: list[str]) -> ApiError:
    return ApiError(
        403,
        "This app hasn't been granted all required scopes to make this call. Read more about required scopes "
        "here: https://developers.hubspot.com/scopes.",
        "MISSING_SCOPES",
        {
            "errors": [
                {
                    "message": "One or more of the following scopes are required.",
                    "context": {"requiredScopes": required},
                }
            ]
        },
    )


@dataclass
class RateLimited(HttpError):
    policy: str  # TEN_SECONDLY_ROLLING | DAILY | SECONDLY (search)
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        name = {"TEN_SECONDLY_ROLLING": "ten_secondly_rolling", "DAILY": "daily", "SECONDLY": "secondly"}[
            self.policy
        ]
        return Response.json(
            429,
            {
                "status": "error",
                "message": f"You have reached your {name} limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": correlation_id(),
                "policyName": self.policy,
            },
            self.headers,
        )


@dataclass
class OAuthError(HttpError):
    status_code: str
    message: str
    http_status: int = 400

    def response(self) -> Response:
        return Response.json(
            self.http_status,
            {"status": self.status_code, "message": self.message, "correlationId": correlation_id()},
        )


@dataclass
class PageError(HttpError):
    """An install request HubSpot answers with its own page (no redirect is safe)."""

    message: str

    def response(self) -> Response:
        return Response.text(
            400, f"<!DOCTYPE html><html><body><p>{self.message}</p></body></html>", "text/html"
        )
