"""Salesforce's error answers, shaped as Salesforce sends them.

* REST API (and Bulk API 2.0) errors: a JSON array of ``{"message", "errorCode"}`` objects, with
  ``"fields"`` when a field is at fault [D, REST API Developer Guide "Status Codes and Error
  Responses"]. 401 INVALID_SESSION_ID "Session expired or invalid" [R, the text clients quote],
  403 REQUEST_LIMIT_EXCEEDED "TotalRequests Limit exceeded." [R], 404 NOT_FOUND "The requested
  resource does not exist" [R].
* Save results inside composite answers name the code `statusCode`, not `errorCode` [R, SaveResult
  as the REST composite sObject collections examples show it].
* OAuth token/revoke endpoint errors: ``{"error", "error_description"}`` with status 400 [R; the
  codes and descriptions are the ones Salesforce's OAuth endpoints are reported to send].
* Authorization page errors Salesforce cannot redirect (unknown client, unregistered callback):
  an HTML page naming the error [R].
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from local.double_server import HttpError, Response


@dataclass
class RestError(HttpError):
    status: int
    code: str
    message: str
    fields: list[str] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def item(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            out["fields"] = self.fields
        return out

    def response(self) -> Response:
        return Response.json(self.status, [self.item()], self.headers)


FIELD_HINT = (
    "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. "
    "Please reference your WSDL or the describe call for the appropriate names."
)
OBJECT_HINT = (
    "If you are attempting to use a custom object, be sure to append the '__c' after the entity name. "
    "Please reference your WSDL or the describe call for the appropriate names."
)


def no_such_column(name: str, entity: str) -> str:
    return f"No such column '{name}' on entity '{entity}'. {FIELD_HINT}"


def invalid_session() -> RestError:
    return RestError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def not_found(message: str = "The requested resource does not exist") -> RestError:
    return RestError(404, "NOT_FOUND", message)


def request_limit_exceeded() -> RestError:
    return RestError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def json_parser_error(detail: str = "Unexpected character") -> RestError:
    return RestError(400, "JSON_PARSER_ERROR", f"{detail} at [line:1, column:1]")


def malformed_query(message: str) -> RestError:
    return RestError(400, "MALFORMED_QUERY", message)


@dataclass
class SaveError(Exception):
    """One record's failure to save: the same (code, message, fields) in REST and composite answers."""

    code: str
    message: str
    fields: list[str] = field(default_factory=list)

    def rest(self, status: int = 400) -> RestError:
        return RestError(status, self.code, self.message, self.fields)

    def save_result(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def bulk(self) -> str:
        """The `sf__Error` cell of a Bulk API 2.0 failed result: `CODE:message:fields --` [R]."""
        return f"{self.code}:{self.message}:{','.join(self.fields)} --"


@dataclass
class OAuthError(HttpError):
    error: str
    description: str
    status: int = 400

    def response(self) -> Response:
        return Response.json(
            self.status,
            {"error": self.error, "error_description": self.description},
            {"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"},
        )


@dataclass
class PageError(HttpError):
    """An authorization request Salesforce answers with its own error page, not a redirect."""

    error: str
    description: str
    status: int = 400

    def response(self) -> Response:
        page = (
            "<!DOCTYPE html><html><head><title>Error</title></head><body>"
            f"<p>error={html.escape(self.error)}&amp;error_description={html.escape(self.description)}</p>"
            "</body></html>"
        )
        return Response.text(self.status, page, "text/html")
