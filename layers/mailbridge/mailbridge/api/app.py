"""The resolver: routers loaded on demand, the error mapping, and (when enabled) the OpenAPI
document + Swagger UI.

One api function serves every route, but a cold start should not import the whole API: each
request names its route in `routeKey`, and only the router module serving it is imported and
included (`route_map.py`, generated from the routers and checked by a test). The docs, and any
route the map does not know, load everything.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailbridge import __version__
from mailbridge.api.errors import register_error_handlers
from mailbridge.api.route_map import ROUTE_MODULES
from mailbridge.api.routes import ROUTER_MODULES
from mailbridge.config import Settings

DESCRIPTION = (
    "mailbridge connects Gmail, Microsoft 365 and IMAP mailboxes to the CRM. "
    "Every route except /health and the docs needs a bearer token (JWT) whose `tenant_id` and "
    '`role` claims decide what the caller sees. Errors are `{"error": {"code", "message", '
    '"details"}}` with a stable machine-readable `code`.'
)


class MailbridgeResolver(APIGatewayHttpResolver):
    """An HTTP API resolver that includes router modules the first time a request needs them."""

    def __init__(self) -> None:
        super().__init__(enable_validation=True)
        self._loaded: set[str] = set()

    def load(self, module: str) -> None:
        if module not in self._loaded:
            self.include_router(importlib.import_module(f"mailbridge.api.{module}").router)
            self._loaded.add(module)

    def load_all(self) -> None:
        for module in ROUTER_MODULES:
            self.load(module)

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


def _openapi_ready(app: Any, next_middleware: NextMiddleware) -> Response[Any]:
    app.load_all()
    if app.openapi_config.title != "mailbridge API":
        _configure_openapi(app)
    return next_middleware(app)


def _swagger_html(app: APIGatewayHttpResolver) -> str:
    """Powertools' Swagger UI page (its bundled JS and CSS, so it works offline) for our document."""
    from pathlib import Path

    from aws_lambda_powertools.event_handler.openapi import swagger_ui
    from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

    assets = Path(swagger_ui.__file__).parent
    spec = app.get_openapi_json_schema().replace("</", "<\\/")  # keep "</script>" out of the page
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
            return Response(
                status_code=200, content_type="application/json", body=app.get_openapi_json_schema()
            )

    if load_all:
        app.load_all()
    return app
