"""Microsoft's error answers, shaped as Microsoft sends them.

* Graph: ``{"error": {"code", "message", "innerError": {"date", "request-id",
  "client-request-id"}}}`` [D: graph/errors "Error resource type" and its example]. Codes are the
  documented ones (`itemNotFound`, `syncStateNotFound`, `resyncRequired`...) or, where Exchange
  answers with its own, the `Error...`/`ApplicationThrottled` codes clients report [R].
* Identity platform token endpoint: ``{"error", "error_description": "AADSTS<n>: ...\\r\\nTrace ID:
  ...\\r\\nCorrelation ID: ...\\r\\nTimestamp: ...", "error_codes": [n], "timestamp", "trace_id",
  "correlation_id", "error_uri"}`` [D: entra identity-platform reference-error-codes, "Handling
  error codes in your application", sample response].
* Identity platform sign-in page: an HTML page naming the AADSTS code, for requests it will not
  redirect (unknown application, unregistered redirect URI) [D: RFC 6749 §4.1.2.1; the page text
  is the double's].
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from local.microsoft.server import HttpError, RequestContext, Response

ERROR_PAGE = "https://login.microsoftonline.com/error?code={code}"


@dataclass
class GraphError(HttpError):
    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    inner: dict[str, Any] | None = None
    with_inner: bool = True

    def body(self, ctx: RequestContext) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.with_inner:
            request_id = ctx.new_id()
            error["innerError"] = {
                **(self.inner or {}),
                "date": ctx.now().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            }
        return {"error": error}

    def response(self, ctx: RequestContext) -> Response:
        return Response.json(self.status, self.body(ctx), self.headers)


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def item_not_found() -> GraphError:
    # Exchange's answer for an id that is not (or no longer) in the mailbox [R].
    return GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")


def access_denied() -> GraphError:
    # A token without a permission the operation needs [R: Exchange answers ErrorAccessDenied].
    return GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def invalid_token(message: str) -> GraphError:
    """401 for a missing, malformed or expired access token [R: body and WWW-Authenticate as Graph
    sends them]."""
    return GraphError(
        401,
        "InvalidAuthenticationToken",
        message,
        headers={
            "WWW-Authenticate": 'Bearer realm="", '
            'authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
            'client_id="00000003-0000-0000-c000-000000000000"'
        },
    )


def service_unavailable(status: int) -> GraphError:
    """An injected 5xx: 503 serviceNotAvailable with Retry-After [D: graph/errors], 504 as a
    gateway timeout [R]."""
    if status == 503:
        return GraphError(503, "serviceNotAvailable", "Service Unavailable", headers={"Retry-After": "3"})
    if status == 504:
        return GraphError(504, "UnknownError", "", with_inner=True)
    return GraphError(status, "generalException", "General exception while processing")


@dataclass
class IdentityError(HttpError):
    """A token-endpoint error (RFC 6749 §5.2 plus Microsoft's diagnostic members)."""

    status: int
    error: str
    aadsts: int
    description: str
    suberror: str | None = None

    def body(self, ctx: RequestContext) -> dict[str, Any]:
        trace, correlation = ctx.new_id(), ctx.new_id()
        stamp = ctx.now().strftime("%Y-%m-%d %H:%M:%SZ")
        body: dict[str, Any] = {
            "error": self.error,
            "error_description": f"AADSTS{self.aadsts}: {self.description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [self.aadsts],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": ERROR_PAGE.format(code=self.aadsts),
        }
        if self.suberror:
            body["suberror"] = self.suberror
        return body

    def response(self, ctx: RequestContext) -> Response:
        return Response(
            self.status,
            json.dumps(self.body(ctx)).encode(),
            {
                "Content-Type": "application/json; charset=utf-8",
                "Cache-Control": "no-store, no-cache",
                "Pragma": "no-cache",
            },
        )


@dataclass
class SignInPageError(HttpError):
    """What login.microsoftonline.com shows instead of redirecting: a page naming the AADSTS code."""

    status: int
    aadsts: int
    description: str

    def response(self, ctx: RequestContext) -> Response:
        page = (
            "<!DOCTYPE html><html><head><title>Sign in to your account</title></head><body>"
            "<h1>Sorry, but we're having trouble signing you in.</h1>"
            f"<p>AADSTS{self.aadsts}: {html.escape(self.description)}</p>"
            f"<p>Timestamp: {ctx.now().strftime('%Y-%m-%dT%H:%M:%SZ')}</p></body></html>"
        ).encode()
        return Response(self.status, page, {"Content-Type": "text/html; charset=utf-8"})
