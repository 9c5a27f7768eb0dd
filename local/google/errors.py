"""Google's error answers, shaped as Google sends them.

Three families:

* Google API errors (Gmail, People): ``{"error": {"code", "message", "errors": [{"message",
  "domain", "reason", ...}], "status"}}``. The `errors` entries and their reasons are those of
  the Gmail "Resolve errors" guide (developers.google.com/workspace/gmail/api/guides/handle-errors);
  `status` is the google.rpc code name that current Google APIs add (as in the stored
  `history_list_404_stale_startHistoryId.shape.json`).
* OAuth 2.0 token/revoke errors: ``{"error": "<code>", "error_description": "..."}`` (RFC 6749 §5.2,
  with Google's descriptions as reported by its clients: [R]).
* OAuth authorization-page errors: an HTML page saying ``Error 400: <code>`` (Google shows a page,
  never a redirect, for a request it cannot trust: RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    410: "GONE",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}

# WWW-Authenticate as Google's APIs send it with a 401/403 on a bearer token [R].
REALM = 'Bearer realm="https://accounts.google.com/"'


@dataclass
class ApiError(Exception):
    """A Google API error (Gmail v1 error format, with the google.rpc `status`)."""

    code: int
    message: str
    reason: str
    domain: str = "global"
    status: str | None = None
    location: str | None = None
    location_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    details: list[dict[str, Any]] | None = None
    legacy_errors: bool = True
    item_message: str | None = None

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.legacy_errors:
            entry: dict[str, Any] = {
                "message": self.item_message or self.message,
                "domain": self.domain,
                "reason": self.reason,
            }
            if self.location:
                entry["location"] = self.location
                entry["locationType"] = self.location_type or "parameter"
            error["errors"] = [entry]
        error["status"] = self.status or STATUS_NAMES.get(self.code, "UNKNOWN")
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str, reason: str = "invalidArgument", location: str | None = None) -> ApiError:
    return ApiError(400, message, reason, location=location, location_type="parameter" if location else None)


def not_found() -> ApiError:
    # Body as stored in providers/gmail/history_list_404_stale_startHistoryId.shape.json [D].
    return ApiError(404, "Requested entity was not found.", "notFound")


def unauthenticated(missing: bool) -> ApiError:
    """401 for a missing, unknown, expired or revoked access token.

    Gmail "Resolve errors" [D]: errors[0] = {domain global, reason authError, message "Invalid
    Credentials", locationType header, location Authorization}; the top-level message and the
    `required`/"Login Required." variant for a missing header are as Google answers today [R].
    """
    if missing:
        return ApiError(
            401,
            "Request is missing required authentication credential. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            "required",
            item_message="Login Required.",
            location="Authorization",
            location_type="header",
            headers={"WWW-Authenticate": REALM},
        )
    return ApiError(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
        "or other valid authentication credential.",
        "authError",
        item_message="Invalid Credentials",
        location="Authorization",
        location_type="header",
        headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
    )


def insufficient_scope(required: list[str]) -> ApiError:
    """403 insufficientPermissions for a token holding no scope the method accepts [R body]."""
    return ApiError(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        item_message="Insufficient Permission",
        headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{" ".join(required)}"'},
    )


def user_rate_limited(status: int = 403) -> ApiError:
    """The per-user quota answer.

    Gmail "Resolve errors", "403: User rate limit exceeded" [D]: domain usageLimits, reason
    userRateLimitExceeded, message "User Rate Limit Exceeded". Google documents no Retry-After
    header for it, so none is sent. `status=429` gives the 429 variant the same guide describes
    for per-user concurrent/bandwidth limits (reason rateLimitExceeded).
    """
    if status == 429:
        return ApiError(429, "Rate Limit Exceeded", "rateLimitExceeded", domain="usageLimits")
    return ApiError(403, "User Rate Limit Exceeded", "userRateLimitExceeded", domain="usageLimits")


def backend_error(status: int = 500) -> ApiError:
    """Gmail "Resolve errors", "500: Backend error" [D]: reason backendError, domain global."""
    if status == 503:
        return ApiError(503, "The service is currently unavailable.", "backendError")
    return ApiError(status, "Backend Error", "backendError")


@dataclass
class OAuthError(Exception):
    """An OAuth 2.0 token-endpoint error: ``{"error", "error_description"}`` (RFC 6749 §5.2)."""

    status: int
    error: str
    description: str

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass
class ConsentPageError(Exception):
    """An error Google shows on its own page instead of redirecting (RFC 6749 §4.1.2.1)."""

    status: int
    error: str
    description: str

    def page(self) -> bytes:
        return (
            "<!DOCTYPE html><html><head><title>Error</title></head><body>"
            "<h1>Access blocked: authorization error</h1>"
            f"<p>Error {self.status}: {html.escape(self.error)}</p>"
            f"<p>{html.escape(self.description)}</p></body></html>"
        ).encode()
