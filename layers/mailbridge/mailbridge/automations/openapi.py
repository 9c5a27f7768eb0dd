"""`http.openapi`: resolve an operation of a registered OpenAPI 3 document and build its request.

OpenAPI 3.0/3.1 (spec.openapis.org/oas/v3.1.0): an operation is found by its `operationId` under
`paths.{path}.{method}`; its base URL is the operation's, else the path item's, else the
document's first `servers` entry (server variables take their `default`). Parameters declared
with `in: path | query | header` (on the path item and the operation; the operation's win) take
the action's rendered `parameters` by name: path values are percent-encoded (RFC 3986 section
3.3), query values form-encoded, headers sent as given. A required parameter the action does not
give is `missing_parameter`; a name the operation does not declare is `unknown_parameter`. The
body, when the action has one, is sent as JSON.

Errors: ActionError `openapi_not_found`, `operation_not_found`, `missing_parameter`,
`unknown_parameter`, `invalid_openapi` (a document without `openapi: 3.x`, `servers` or `paths`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from mailbridge.automations.errors import ActionError

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_DOCUMENT_CHARS = 300_000


@dataclass(frozen=True)
class OperationRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def check_document(document: dict[str, Any]) -> list[str]:
    """The document's operationIds; ActionError `invalid_openapi` when it cannot be used."""
    version = document.get("openapi")
    servers = document.get("servers")
    paths = document.get("paths")
    if (
        not (isinstance(version, str) and version.startswith("3."))
        or not (isinstance(servers, list) and servers and isinstance(servers[0], dict))
        or not isinstance(paths, dict)
        or len(json.dumps(document)) > MAX_DOCUMENT_CHARS
    ):
        raise ActionError("the document is not a usable OpenAPI 3 document", code="invalid_openapi")
    return [
        op["operationId"] for _, _, op, _ in _operations(document) if isinstance(op.get("operationId"), str)
    ]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    found = []
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        for method in METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                found.append((path, method, operation, item))
    return found


def _server(*candidates: Any) -> str:
    for servers in candidates:
        if isinstance(servers, list) and servers and isinstance(servers[0], dict):
            url = str(servers[0].get("url", ""))
            for name, variable in (servers[0].get("variables") or {}).items():
                url = url.replace("{" + name + "}", str(variable.get("default", "")))
            return url.rstrip("/")
    raise ActionError("the document names no server", code="invalid_openapi")


def build_operation(
    document: dict[str, Any], operation_id: str, parameters: dict[str, str], body: Any
) -> OperationRequest:
    """The request of `operation_id` with the action's rendered parameters and body."""
    match = next((o for o in _operations(document) if o[2].get("operationId") == operation_id), None)
    if match is None:
        raise ActionError("the document has no such operation", code="operation_not_found")
    path, method, operation, item = match
    declared: dict[str, dict[str, Any]] = {}
    for param in [*(item.get("parameters") or []), *(operation.get("parameters") or [])]:
        if isinstance(param, dict) and param.get("in") in ("path", "query", "header") and "name" in param:
            declared[str(param["name"])] = param
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ActionError(
            "a parameter is not declared by the operation", code="unknown_parameter", details=unknown
        )
    missing = sorted(
        name
        for name, param in declared.items()
        if (param.get("required") or param.get("in") == "path") and name not in parameters
    )
    if missing:
        raise ActionError("a required parameter has no value", code="missing_parameter", details=missing)
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    for name, value in parameters.items():
        where = declared[name]["in"]
        if where == "path":
            path = path.replace("{" + name + "}", quote(value, safe=""))
        elif where == "query":
            query.append((name, value))
        else:
            headers[name] = value
    url = _server(operation.get("servers"), item.get("servers"), document.get("servers")) + path
    if query:
        url += "?" + urlencode(query)
    content = None
    if body is not None:
        content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers["Content-Type"] = "application/json"
    return OperationRequest(method=method.upper(), url=url, headers=headers, body=content)
