"""The resolver: every router, the error mapping and (when enabled) the OpenAPI document + Swagger UI."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from mailbridge import __version__
from mailbridge.api import accounts, crm, emails, features, health, links, me, outbox, threads
from mailbridge.api.errors import register_error_handlers
from mailbridge.config import Settings

ROUTERS = (
    health.router,
    me.router,
    features.router,
    accounts.router,
    emails.router,
    threads.router,
    outbox.router,
    crm.router,
    links.router,
)

DESCRIPTION = (
    "mailbridge connects Gmail, Microsoft 365 and IMAP mailboxes to the CRM. "
    "Every route except /health and the docs needs a bearer token (JWT) whose `tenant_id` and "
    '`role` claims decide what the caller sees. Errors are `{"error": {"code", "message", '
    '"details"}}` with a stable machine-readable `code`.'
)


def _configure_openapi(app: APIGatewayHttpResolver) -> None:
    # Powertools' OpenAPI models cost ~200 ms to import: load them when the docs are asked for,
    # not on every cold start.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    app.configure_openapi(
        title="mailbridge API",
        version=__version__,
        description=DESCRIPTION,
        security_schemes={"bearerAuth": HTTPBearer(bearerFormat="JWT")},
    )


def _openapi_configured(app: Any, next_middleware: NextMiddleware) -> Response[Any]:
    if app.openapi_config.title != "mailbridge API":
        _configure_openapi(app)
    return next_middleware(app)


def create_app(settings: Settings) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    for router in ROUTERS:
        app.include_router(router)
    register_error_handlers(app)
    if settings.docs_enabled:
        app.enable_swagger(path="/docs", persist_authorization=True, middlewares=[_openapi_configured])

        @app.get("/openapi.json", include_in_schema=False, middlewares=[_openapi_configured])
        def openapi_document() -> Response[str]:
            return Response(
                status_code=200, content_type="application/json", body=app.get_openapi_json_schema()
            )

    return app
