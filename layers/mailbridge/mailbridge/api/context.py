"""Request-scoped helpers for routes: the caller's tenant context and a role check middleware."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from mailbridge.tenancy import Role, TenantContext, tenant_from_claims


def current_tenant(router: BaseRouter) -> TenantContext:
    """The verified caller; raises Forbidden when the token has no usable tenant or role."""
    event: Any = router.current_event
    return tenant_from_claims(event.request_context.authorizer.jwt_claim)


def require_role(minimum: Role) -> Callable[[Any, NextMiddleware], Response[Any]]:
    """Route middleware: `@router.put(..., middlewares=[require_role(Role.ADMIN)])`."""

    def middleware(app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        current_tenant(app).require(minimum)
        return next_middleware(app)

    middleware.__name__ = f"require_{minimum.value}"
    return middleware
