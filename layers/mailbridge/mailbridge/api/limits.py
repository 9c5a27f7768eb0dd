"""Rate limits per route class: the count the api entry makes on every request
(`count_request`), and `GET`/`PUT /settings/rate-limits` (a tenant's overrides). Classes,
defaults and their reasons: `mailbridge.ratelimits`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from mailbridge import ratelimits
from mailbridge.api import deps
from mailbridge.api.context import RoleGuard, current_tenant, declared_access, require_role
from mailbridge.api.schemas import BEARER, ERROR_CODES, errors
from mailbridge.store.ratelimit import use_overrides
from mailbridge.tenancy import Role

router = Router()

clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731  (tests fix the clock)

DECLARED = "_mailbridge_declared_responses"
"""Where the resolver keeps a route's own responses when it completes them for the document."""


def route_class(route: Any) -> str | None:
    """`reads` or `writes` for a route the api entry counts; None for a route whose service
    counts its own class (it declares 429 `rate_limited` among its own responses)."""
    declared = getattr(route, DECLARED, route.responses) or {}
    if "rate_limited" in (declared.get(429) or {}).get(ERROR_CODES, ()):
        return None
    return "reads" if route.method in {"GET", "HEAD"} else "writes"


def count_request(app: Any) -> None:
    """After the route's guards, before the body is read: hold the tenant's overrides for this
    request and count it against its class. RateLimited (429 `rate_limited`, Retry-After) past
    the limit. Public routes (no tenant) are neither counted nor given overrides here."""
    route = app.context["_route"]
    if not isinstance(declared_access(route.middlewares), RoleGuard):
        use_overrides(None, {})
        return
    tenant_id = current_tenant(app).tenant_id
    use_overrides(tenant_id, deps.rate_limit_store().cached_overrides(tenant_id))
    bucket = route_class(route)
    if bucket is not None:
        deps.rate_limiter().take(
            tenant_id, bucket, ratelimits.DEFAULTS[bucket], clock(), what=f"{bucket} calls"
        )


@router.get(
    "/settings/rate-limits",
    summary="The tenant's rate limits by route class: defaults, overrides and what applies",
    tags=["settings"],
    security=BEARER,
    middlewares=[require_role(Role.ADMIN)],
    responses=errors({}),
)
def get_rate_limits() -> ratelimits.RateLimitSettings:
    return ratelimits.get_rate_limits(current_tenant(router), deps.rate_limit_store())


@router.put(
    "/settings/rate-limits",
    summary="Replace the tenant's rate-limit overrides (admin or owner)",
    description=(
        "Uses a minute per tenant, by class (1 to 100,000); a class left out returns to its "
        "default. Applies at once on the function instance that served the change and within "
        "30 seconds on every other."
    ),
    tags=["settings"],
    security=BEARER,
    middlewares=[require_role(Role.ADMIN)],
    responses=errors({}),
)
def put_rate_limits(
    figures: Annotated[ratelimits.RateLimitFigures, Body()],
) -> ratelimits.RateLimitSettings:
    return ratelimits.put_rate_limits(current_tenant(router), figures, deps.rate_limit_store(), clock())
