"""Response shapes shared by every route, and how routes document them in OpenAPI.

A route declares the answers that are its own in `responses=errors({status: [code, ...]})` (an
unknown company, a version conflict ...). When the document is built, `complete_responses` adds
what follows from the route itself, so no route can forget it:

- the success status (`status_code=`) with the return annotation's schema;
- 401 (API Gateway's JWT authorizer, `{"message": "Unauthorized"}`) and 403 `no_tenant` /
  `no_role` / `no_subject` on routes with a bearer token;
- what its guards answer (403 `role_required`, 404 `feature_disabled`) and 429 `rate_limited`
  (the tenant's rate limit, `mailbridge.api.limits`) on routes with a bearer token;
- on routes with a body: 400 `invalid_json` / `json_too_deep`, 413 (API Gateway, `{"message":
  ...}`), 415 `unsupported_media_type`; on paged routes 400 `invalid_cursor`;
- 422 `validation_error` and 500 `internal` everywhere.

Each error response lists its `code` values in its description and in `x-error-codes`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import Field

from mailbridge.api.context import RouteGuard
from mailbridge.models.base import Model


class ErrorDetail(Model):
    code: str = Field(description="Machine-readable reason, stable across releases", examples=["not_found"])
    message: str = Field(description="Human-readable explanation")
    details: Any = Field(default=None, description="Extra structured information, e.g. invalid fields")


class ErrorResponse(Model):
    """Every error the api function answers itself."""

    error: ErrorDetail


class GatewayMessage(Model):
    """What API Gateway answers on its own, before the api function runs."""

    message: str = Field(examples=["Unauthorized"])


ERROR_CODES = "x-error-codes"

_DESCRIPTIONS = {
    400: "Invalid input (a body that is not JSON, a bad cursor, a rule the schema cannot express)",
    401: "Missing, invalid or expired bearer token. Answered by API Gateway's JWT authorizer, "
    'before this API runs: `{"message": "Unauthorized"}`',
    403: "The token carries no usable tenant, role or subject, or the caller's role does not allow this",
    404: "Not found, not visible to this tenant, or a feature the tenant switched off",
    409: "Conflict with the current state (duplicate, concurrent change)",
    412: "The `If-Match` version is no longer current: read the resource again and merge",
    413: "The request is larger than API Gateway or Lambda accept. Answered by API Gateway, "
    'before this API runs: `{"message": "Request Entity Too Large"}`',
    415: "The body is not JSON (content-type)",
    422: "Request validation failed: `details` lists each field (`loc`), message and `type`",
    428: "The route writes only conditionally: send `If-Match` with the version you read",
    429: "Rate limited (the tenant's limit for this route class, or a provider's); retry after the "
    "Retry-After header",
    500: "Unexpected error (nothing about it is echoed)",
    502: "An upstream provider failed",
    503: "Temporarily unavailable; retry",
    504: "An upstream provider did not answer in time",
}
_SUCCESS = {200: "OK", 201: "Created", 202: "Accepted"}
_GATEWAY = frozenset({401, 413})  # answered by API Gateway in its own shape

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
AUTHED_ERRORS = (401, 403, 422)
_TOKEN_CODES = ("no_tenant", "no_role", "no_subject")


def _entry(status: int, codes: Sequence[str], *, gateway: bool = True) -> dict[str, Any]:
    """`gateway`: API Gateway may answer this status itself (401 from the JWT authorizer only on
    routes with a bearer token; 413 always)."""
    description = _DESCRIPTIONS.get(status, "Error")
    if codes:
        description += ". Codes: " + ", ".join(f"`{code}`" for code in codes)
    model = GatewayMessage if status in _GATEWAY and (gateway or status != 401) else ErrorResponse
    return {
        "description": description,
        "content": {"application/json": {"model": model}},
        ERROR_CODES: list(codes),
    }


def errors(codes: Mapping[int, Iterable[str]], *, bearer: bool = True) -> dict[int, Any]:
    """A route's own error answers: status -> the `code` values it can return with it.
    `bearer=False` for a route without a JWT, whose 401 is its own (ours, with a code)."""
    return {status: _entry(status, list(values), gateway=bearer) for status, values in sorted(codes.items())}


def error_responses(*statuses: int) -> dict[int, Any]:
    """Statuses without their codes (the earlier style; `errors` says more)."""
    return {status: _entry(status, []) for status in statuses}


def complete_responses(route: Any) -> dict[int, Any]:
    """The route's responses for the OpenAPI document: its own, plus what follows from the route
    (see the module docstring). `route` is a Powertools `Route`."""
    declared: Mapping[int, Any] = route.responses or {}
    codes: dict[int, list[str]] = {}

    def add(status: int, *new: str) -> None:
        listed = codes.setdefault(status, [])
        listed.extend(code for code in new if code not in listed)

    for status, entry in declared.items():
        if status >= 400:
            add(status, *entry.get(ERROR_CODES, ()))
    if route.security:
        add(401)
        add(403, *_TOKEN_CODES)
        add(429, "rate_limited")  # every route with a tenant counts against a rate limit
    for guard in route.middlewares or ():
        if isinstance(guard, RouteGuard):
            for status, guard_codes in guard.answers.items():
                add(status, *guard_codes)
    dependant = route.dependant
    if dependant.body_params:
        add(400, "invalid_json", "json_too_deep")
        add(413)
        add(415, "unsupported_media_type")
    if any(param.alias == "cursor" for param in dependant.query_params):
        add(400, "invalid_cursor")
    # Powertools documents a 422 on every validated route; ours has our shape and code.
    add(422, "validation_error")
    add(500, "internal")

    success = {status: entry for status, entry in declared.items() if status < 400}
    if not any(200 <= status < 400 for status in success):  # a declared redirect is the success
        # No `content`: Powertools documents the return annotation's schema here.
        success[route.status_code] = {"description": _SUCCESS.get(route.status_code, "Success")}
    gateway = bool(route.security)
    failures = {status: _entry(status, codes[status], gateway=gateway) for status in sorted(codes)}
    for status, entry in declared.items():  # a route answering its errors in another media type
        content = entry.get("content") or {} if status >= 400 else {}
        if content and "application/json" not in content:  # (a SOAP fault in text/xml) keeps it
            failures[status] = {**failures[status], "content": content}
    return {**success, **failures}
