"""Request-scoped helpers for routes: the caller's tenant context and route guards.

A guard is a check declared in a route's `middlewares=` that must pass before anything else
about the request is looked at: the tenant's feature switch (404 `feature_disabled`) and the
caller's role (403 `role_required`). The resolver (`mailbridge.api.app`) runs every guard of the
matched route, in declaration order, before Powertools validates the path, query and body, so a
caller without the right gets the same answer whatever it sends. Declared as middlewares, the
guards also run in place on a resolver that did not check them first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from mailbridge.tenancy import Role, TenantContext, tenant_from_claims

_GUARDS_CHECKED = "_mailbridge_guards_checked"

Guards = list[Callable[..., Any]]
"""A route's `middlewares=` list (Powertools' parameter type), e.g. `[CRM, require_role(...)]`."""


def callback_base_url(router: BaseRouter) -> str:
    """Where a provider sends the user back after consent (`{base}/oauth/{provider}/callback`):
    `OAUTH_CALLBACK_BASE_URL` when set, else `https://` + the domain API Gateway answered on.
    Invalid(`invalid_request`) when neither is known."""
    from mailbridge.config import get_settings
    from mailbridge.errors import Invalid

    configured = get_settings().oauth.callback_base_url
    if configured:
        return configured
    event: Any = router.current_event
    domain = event.request_context.domain_name
    if not domain:
        raise Invalid("the request names no domain", code="invalid_request")
    return f"https://{domain}"


def current_tenant(router: BaseRouter) -> TenantContext:
    """The verified caller; raises Forbidden when the token has no usable tenant or role. Its
    mailbox access (mailbridge.access: owners, visibilities, the tenant's privacy policy) is read
    the first time a read path asks for it."""
    event: Any = router.current_event
    ctx = tenant_from_claims(event.request_context.authorizer.jwt_claim)

    def load() -> Any:
        from mailbridge.api import deps

        return deps.access(ctx)

    return ctx.load_access_with(load)


class RouteGuard:
    """A route middleware whose check the resolver runs before request validation.

    `answers`: status -> the error codes the check can answer with (for the OpenAPI document)."""

    def __init__(
        self, name: str, check: Callable[[Any], None], answers: Mapping[int, Sequence[str]] | None = None
    ) -> None:
        self.__name__ = name
        self._check = check
        self.answers: Mapping[int, Sequence[str]] = answers or {}

    def check(self, app: Any) -> None:
        """Raise the typed error that answers the request when the check fails."""
        self._check(app)

    def __call__(self, app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        if not app.context.get(_GUARDS_CHECKED):
            self.check(app)
        return next_middleware(app)

    def __repr__(self) -> str:
        return f"<guard {self.__name__}>"


class RoleGuard(RouteGuard):
    """403 `role_required` unless the caller's role is at least `minimum` (a viewer route never
    answers it: every role is at least viewer, so its document does not list it)."""

    def __init__(self, minimum: Role) -> None:
        super().__init__(
            f"require_{minimum.value}",
            lambda app: current_tenant(app).require(minimum),
            {403: ["role_required"]} if minimum is not Role.VIEWER else {},
        )
        self.minimum = minimum


def require_role(minimum: Role) -> RoleGuard:
    """Route guard: `@router.put(..., middlewares=[require_role(Role.ADMIN)])`."""
    return RoleGuard(minimum)


class PublicRoute(RouteGuard):
    """The declaration of a route that takes no bearer token (so has no role to check): `reason`
    says what proves the caller instead (a single-use state, a signed push, an unguessable token)."""

    def __init__(self, reason: str) -> None:
        super().__init__("public", lambda _app: None)
        self.reason = reason


def public(reason: str) -> PublicRoute:
    """Route declaration: `@router.get(..., security=[], middlewares=[public("the state is the proof")])`."""
    return PublicRoute(reason)


ROLE_EXTENSION = "x-mailbridge-role"
"""The OpenAPI operation extension naming the route's minimum role, or `public`."""
PUBLIC_REASON_EXTENSION = "x-mailbridge-public-reason"


def declared_access(middlewares: Sequence[Any] | None) -> RoleGuard | PublicRoute | None:
    """A route's one access declaration (its role guard, or `public(...)`); None when it has none.
    ValueError when it declares more than one."""
    found = [m for m in middlewares or () if isinstance(m, RoleGuard | PublicRoute)]
    if len(found) > 1:
        raise ValueError(f"a route declares its access {len(found)} times: {found}")
    return found[0] if found else None


def access_extensions(middlewares: Sequence[Any] | None) -> dict[str, str]:
    """The OpenAPI operation extensions that show a route's declared access (empty when none)."""
    declared = declared_access(middlewares)
    if isinstance(declared, RoleGuard):
        return {ROLE_EXTENSION: declared.minimum.value}
    if isinstance(declared, PublicRoute):
        return {ROLE_EXTENSION: "public", PUBLIC_REASON_EXTENSION: declared.reason}
    return {}


def check_guards(app: Any) -> None:
    """Run the matched route's guards in declaration order (the resolver calls this first)."""
    # Powertools puts the matched route in the context before running its middlewares, and a
    # route's `middlewares` is always a list.
    route = app.context["_route"]
    for middleware in route.middlewares:
        if isinstance(middleware, RouteGuard):
            middleware.check(app)
    app.append_context(**{_GUARDS_CHECKED: True})
