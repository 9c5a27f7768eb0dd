"""Who am I: the tenant, role and subject the verified token carries."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.tenancy import Role, TenantContext

router = Router()


@router.get(
    "/me",
    summary="The caller's tenant, role and subject",
    tags=["meta"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.VIEWER)],
)
def me() -> TenantContext:
    return current_tenant(router)
