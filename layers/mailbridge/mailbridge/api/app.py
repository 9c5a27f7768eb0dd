"""The resolver: routers loaded on demand, the order of checks, the error mapping, and (when
enabled) the OpenAPI document + Swagger UI.

One api function serves every route, but a cold start should not import the whole API: each
request names its route in `routeKey`, and only the router module serving it is imported and
included (`route_map.py`, generated from the routers and checked by a test). The docs, and any
route the map does not know, load everything.

After the answer is built, an audited route's request is written to the audit log
(`mailbridge.api.auditing`).

Order of checks on every route: the route's guards (`RouteGuard`s in its `middlewares=`: the
feature switch, then the caller's role) run before Powertools validates the request, so a caller
without the right learns nothing from validation errors (DESIGN: "Role checks come before body
validation"); then the request counts against its tenant's rate limit (`api/limits.py`, 429
`rate_limited`); then the body is parsed by `parse_json_body` (bounded nesting, standard JSON only)
and validated; then the remaining middlewares and the handler.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import re
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailbridge import __version__
from mailbridge.api.auditing import AuditingResolver, audit_extensions
from mailbridge.api.context import access_extensions, check_guards
from mailbridge.api.errors import register_error_handlers
from mailbridge.api.limits import DECLARED, count_request
from mailbridge.api.route_map import ROUTE_MODULES
from mailbridge.api.routes import DOCUMENTED_ELSEWHERE, ROUTER_MODULES
from mailbridge.config import Settings
from mailbridge.errors import Invalid

DESCRIPTION = (
    "mailbridge connects Gmail, Microsoft 365 and IMAP mailboxes to the CRM. "
    "Every route except /health and the docs needs a bearer token (JWT) whose `tenant_id` and "
    '`role` claims decide what the caller sees. Errors are `{"error": {"code", "message", '
    '"details"}}` with a stable machine-readable `code`.'
)


MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have (ours need fewer than 10)."""

# A JSON string (to its closing quote, or to the end when unterminated), or a run of brackets.
# Written as an unrolled loop (no alternation inside the repeat), so matching is linear.
_STRING_OR_BRACKETS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]+', re.DOTALL)


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `text` opens more than `limit` arrays/objects inside each other.

    Brackets inside JSON strings are text (RFC 8259 section 7) and do not count. Linear in the
    body's length with no recursion, so it runs before (and instead of) a recursive parser on
    hostile input: Python's `json` recurses once per level and fails with `RecursionError` near
    1,000 levels. The brackets are walked in slices of `limit`: a slice whose opening brackets
    cannot take the depth past the limit is counted in C, only the others char by char.
    Unbalanced input is judged as if every bracket counted; it is not JSON anyway.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = "".join(t for t in _STRING_OR_BRACKETS.findall(text) if t[0] != '"')
    brackets = brackets.replace("{", "[").replace("}", "]")
    depth = 0
    for start in range(0, len(brackets), limit):
        chunk = brackets[start : start + limit]
        opens = chunk.count("[")
        if depth + opens <= limit:
            depth += 2 * opens - len(chunk)
            continue
        for char in chunk:
            depth += 1 if char == "[" else -1
            if depth > limit:
                return True
    return False


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json_body(text: str) -> Any:
    """The request body parser Powertools uses for every route (`json_body_deserializer`).

    Strict RFC 8259: `NaN`, `Infinity` and `-Infinity` (which Python's `json` accepts) are
    refused, as are integers longer than Python's 4,300-digit conversion limit. Errors:
    `Invalid` 400 `json_too_deep` (more than MAX_JSON_DEPTH levels; `details.max_depth`),
    400 `invalid_json` (anything else that is not JSON).
    """
    if json_too_deep(text):
        raise Invalid(
            f"the request body nests deeper than {MAX_JSON_DEPTH} levels",
            code="json_too_deep",
            details={"max_depth": MAX_JSON_DEPTH},
        )
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError, the constants above, the int digit limit
        raise Invalid("the request body is not valid JSON", code="invalid_json") from exc


class _StrictBodyEvent(APIGatewayProxyEventV2):
    """The HTTP API event, whose body must decode (base64 when flagged, then UTF-8, RFC 8259
    section 8.1) or the request is 400 `invalid_json` (it was a 500)."""

    @cached_property
    def decoded_body(self) -> str | None:
        body: str | None = self.body
        if not (self.is_base64_encoded and body):
            return body
        try:
            return base64.b64decode(body.encode(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            raise Invalid("the request body is not valid UTF-8 JSON", code="invalid_json") from exc


class _GuardsFirst(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, preceded by the matched route's guards and the count of
    the request against its tenant's rate limit (`mailbridge.api.limits.count_request`)."""

    def handler(self, app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        check_guards(app)
        count_request(app)
        return super().handler(app, next_middleware)


class MailbridgeResolver(AuditingResolver):
    """An HTTP API resolver that includes router modules the first time a request needs them,
    checks each route's guards before validating the request, parses bodies strictly, and writes
    the audit entry of each audited route's answer (`AuditingResolver`)."""

    def __init__(self) -> None:
        super().__init__(enable_validation=True, json_body_deserializer=parse_json_body)
        # Powertools puts request validation first in every route's chain; the guards go before it.
        self._request_validation_middleware = _GuardsFirst()
        self._loaded: set[str] = set()

    def _to_proxy_event(self, event: dict[str, Any]) -> _StrictBodyEvent:
        return _StrictBodyEvent(event, self._json_body_deserializer)

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = r"^{}\Z") -> re.Pattern[str]:
        # Powertools anchors routes with `$`, which also matches before a trailing newline: a
        # request for `/crm/contacts/{id}` + LF would be served as the contact. `\Z` is the end.
        return APIGatewayHttpResolver._compile_regex(rule, base_regex)  # type: ignore[no-any-return]

    def load(self, module: str) -> None:
        if module not in self._loaded:
            self.include_router(importlib.import_module(f"mailbridge.api.{module}").router)
            self._loaded.add(module)

    def load_all(self) -> None:
        for module in ROUTER_MODULES:
            self.load(module)

    def load_documented_elsewhere(self) -> None:
        """Include the routers other functions serve, for the document (API Gateway never sends
        their routes here)."""
        for module in DOCUMENTED_ELSEWHERE:
            if module not in self._loaded:
                self.include_router(importlib.import_module(module).router)
                self._loaded.add(module)

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        module = ROUTE_MODULES.get(str(event.get("routeKey", "")))
        if module is None:
            self.load_all()  # the docs, or a route the map does not know: let the resolver decide
        else:
            self.load(module)
        return super().resolve(event, context)


def _configure_openapi(app: APIGatewayHttpResolver) -> None:
    # Powertools' OpenAPI models cost ~200 ms to import: load them when the docs are asked for.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    app.configure_openapi(
        title="mailbridge API",
        version=__version__,
        description=DESCRIPTION,
        security_schemes={"bearerAuth": HTTPBearer(bearerFormat="JWT")},
    )


def _document_routes(app: MailbridgeResolver) -> None:
    """Complete every route's responses for the document (mailbridge.api.schemas) and show its
    declared access (`x-mailbridge-role`: owner/admin/member/viewer or `public`, with
    `x-mailbridge-public-reason`) and audit (`x-mailbridge-audit`: write/read/none), once."""
    from mailbridge.api.schemas import complete_responses

    for route in app._static_routes + app._dynamic_routes:
        if route.include_in_schema and not getattr(route, "_mailbridge_documented", False):
            setattr(route, DECLARED, route.responses)  # the route's own (its rate class reads them)
            route.responses = complete_responses(route)
            route.openapi_extensions = {
                **(route.openapi_extensions or {}),
                **access_extensions(route.middlewares),
                **audit_extensions(route.method, route.middlewares),
            }
            route._dependant = None  # rebuilt from the new responses (it lists their models)
            route._mailbridge_documented = True  # type: ignore[attr-defined]


def _openapi_ready(app: Any, next_middleware: NextMiddleware) -> Response[Any]:
    app.load_all()
    app.load_documented_elsewhere()
    _document_routes(app)
    if app.openapi_config.title != "mailbridge API":
        _configure_openapi(app)
    return next_middleware(app)


def openapi_json(app: Any) -> str:
    """The API document as JSON, built once per container: the routes cannot change while it
    runs, and building it (every router's models to JSON schema) takes a second of CPU."""
    document: str | None = getattr(app, "_mailbridge_openapi_json", None)
    if document is None:
        document = app.get_openapi_json_schema()
        app._mailbridge_openapi_json = document
    return document


def _swagger_html(app: APIGatewayHttpResolver) -> str:
    """Powertools' Swagger UI page (its bundled JS and CSS, so it works offline) for our document."""
    from pathlib import Path

    from aws_lambda_powertools.event_handler.openapi import swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

    assets = Path(swagger_ui.__file__).parent
    spec = openapi_json(app).replace("</", "<\\/")  # keep "</script>" out of the page
    return generate_swagger_html(
        spec,
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        "",
        None,
        persist_authorization=True,
    )


def create_app(settings: Settings, *, load_all: bool = False) -> MailbridgeResolver:
    app = MailbridgeResolver()
    register_error_handlers(app)
    if settings.docs_enabled:
        # Not app.enable_swagger(): it imports Powertools' OpenAPI models (~70 ms) when called,
        # i.e. on every cold start; this route does the same work only when the docs are asked for.
        @app.get("/docs", include_in_schema=False, middlewares=[_openapi_ready])
        def swagger_ui() -> Response[str]:
            return Response(status_code=200, content_type="text/html", body=_swagger_html(app))

        @app.get("/openapi.json", include_in_schema=False, middlewares=[_openapi_ready])
        def openapi_document() -> Response[str]:
            return Response(status_code=200, content_type="application/json", body=openapi_json(app))

    if load_all:
        app.load_all()
    return app
