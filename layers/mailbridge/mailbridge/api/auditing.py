"""Which routes are audited, declared beside the route, and the hook that writes their entries.

A route is audited when it changes state or reads something sensitive (issue 19 point 4):
- every POST, PUT, PATCH and DELETE is a `write`, derived from the method;
- a GET that reads message bodies or credential-bearing resources declares
  `middlewares=[..., audit_read("the message body")]` (`read`);
- a GET that changes state (a public RSVP link) declares `audit_write("...")`;
- a write that must not be audited would declare `not_audited("reason")` (none does today).
Other GETs (lists, metadata, tracking hits) are not audited: no write at all for them.

The resolver (`mailbridge.api.app`) calls `audit_request` once per matched route after the
answer is built, whatever it is (success, a guard's 403, a validation 422, a 500), and the
document shows each route's declaration as `x-mailbridge-audit` (`write` / `read` / `none`).

The entry holds ids and codes only: the route's path parameters that are ids (names ending in
`_id`, `version`, `provider`; values of an id's shape), never a body, query, address or token.
Public routes (no bearer token) are filed under the tenant the route names with `audit_as`
once it verified its proof; a public request that never got that far has no tenant and is not
recorded. A public route whose proof names a user (the OAuth callback: the single-use state holds
the `sub` who started the flow) gives `audit_as` that actor, and one whose answer does not tell
the outcome (the callback always redirects) gives the outcome and its error code.

Other functions serving routes of the same API (the oauth function) build their resolver with
`AuditingResolver`, so the same hook writes their entries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from mailbridge.observability import logger

if TYPE_CHECKING:
    from mailbridge.audit.models import AuditEntry

Outcome = Literal["success", "failure"]

AuditKind = Literal["write", "read"]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUDIT_EXTENSION = "x-mailbridge-audit"
"""The OpenAPI operation extension: `write`, `read` or `none`."""

_AUDIT_AS = "_mailbridge_audit_as"
# Path parameters kept in an entry: ids by name, and values of an id's shape only (a client can
# put anything in a path segment; an address or free text is never stored).
_ID_PARAMETERS = frozenset({"version", "provider"})
_ID_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_NOT_AN_ID = "-"


class AuditMark:
    """A route's audit declaration: a middleware that does nothing but be found in `middlewares=`."""

    def __init__(self, kind: AuditKind | None, reason: str) -> None:
        self.__name__ = f"audit_{kind or 'none'}"
        self.kind = kind
        self.reason = reason

    def __call__(self, app: Any, next_middleware: NextMiddleware) -> Response[Any]:
        return next_middleware(app)

    def __repr__(self) -> str:
        return f"<{self.__name__}: {self.reason}>"


def audit_read(what: str) -> AuditMark:
    """A GET that reads message bodies or credential-bearing data: `audit_read("the raw message")`."""
    return AuditMark("read", what)


def audit_write(what: str) -> AuditMark:
    """A GET (or HEAD) that changes state: `audit_write("sets the attendee's answer")`."""
    return AuditMark("write", what)


def not_audited(reason: str) -> AuditMark:
    """A write that is deliberately not audited (say why)."""
    return AuditMark(None, reason)


def audit_kind(method: str, middlewares: Sequence[Any] | None) -> AuditKind | None:
    """The route's audit kind: its declaration, else `write` for POST/PUT/PATCH/DELETE, else None.
    ValueError when a route declares it more than once."""
    marks = [m for m in middlewares or () if isinstance(m, AuditMark)]
    if len(marks) > 1:
        raise ValueError(f"a route declares its audit {len(marks)} times: {marks}")
    if marks:
        return marks[0].kind
    return "write" if method.upper() in WRITE_METHODS else None


def audit_extensions(method: str, middlewares: Sequence[Any] | None) -> dict[str, str]:
    return {AUDIT_EXTENSION: audit_kind(method, middlewares) or "none"}


@dataclass(frozen=True)
class _Named:
    """What a public route's proof told `audit_as`."""

    tenant_id: str
    resource_ids: dict[str, str]
    actor: str | None = None
    outcome: Outcome | None = None
    error_code: str | None = None


def audit_as(
    router: BaseRouter,
    tenant_id: str,
    resource_ids: Mapping[str, str] | None = None,
    *,
    actor: str | None = None,
    outcome: Outcome | None = None,
    error_code: str | None = None,
) -> None:
    """For a public route, once its proof is verified: file the audit entry under `tenant_id`,
    with `resource_ids` (ids the proof names) added to the path's; `actor` the user the proof
    names (`public` otherwise); `outcome` and `error_code` when the HTTP status does not tell
    them (a redirect that reports a failure). The error code is kept only when it has an id's
    shape, like every value of an entry."""
    code = error_code if error_code is not None and _ID_VALUE.fullmatch(error_code) else None
    named = _Named(tenant_id, dict(resource_ids or {}), actor, outcome, code)
    router.append_context(**{_AUDIT_AS: named})


class AuditingResolver(APIGatewayHttpResolver):
    """An HTTP API resolver that writes the audit entry of each audited route's answer
    (`audit_request`) after Powertools' call (middlewares, handler, exception handlers): one
    PutItem, after the work. Every function serving routes of the API builds on it."""

    def _call_route(self, route: Any, route_arguments: dict[str, str]) -> Any:
        built = super()._call_route(route, route_arguments)
        # Not for the route Powertools makes up when no route matched (it is none of ours).
        if any(registered is route for registered in self._static_routes + self._dynamic_routes):
            audit_request(self, route, route_arguments, built.response)
        return built


def resource_ids(parameters: Mapping[str, Any]) -> dict[str, str]:
    """The path parameters that are ids, each value kept only when it has an id's shape."""
    kept = {}
    for name, value in parameters.items():
        if name.endswith("_id") or name in _ID_PARAMETERS:
            text = str(value)
            kept[name] = text if _ID_VALUE.fullmatch(text) else _NOT_AN_ID
    return kept


def _error_code(response: Any) -> str | None:
    """The `error.code` of one of our error answers (mailbridge.api.errors), else None."""
    body = getattr(response, "body", None)
    if getattr(response, "status_code", 200) < 400 or not isinstance(body, str | bytes):
        return None
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) and _ID_VALUE.fullmatch(code) else None


def audit_request(app: Any, route: Any, route_arguments: Mapping[str, Any], response: Any) -> None:
    """Write the entry of an audited route's request (nothing for the others). Never raises."""
    try:
        kind = audit_kind(route.method, route.middlewares)
        if kind is None:
            return
        entry = _entry(app, route, kind, route_arguments, response)
        if entry is None:
            return
        from mailbridge.audit.service import record
        from mailbridge.audit.wiring import audit_deps

        record(audit_deps(), entry)
    except Exception as exc:  # noqa: BLE001 - the answer is built; auditing must not replace it
        from aws_lambda_powertools.metrics import MetricUnit

        from mailbridge.audit.service import WRITE_FAILED_METRIC
        from mailbridge.observability import metrics

        logger.error("audit entry not built", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name=WRITE_FAILED_METRIC, unit=MetricUnit.Count, value=1)


def _entry(
    app: Any, route: Any, kind: AuditKind, route_arguments: Mapping[str, Any], response: Any
) -> AuditEntry | None:
    from mailbridge.audit import models
    from mailbridge.audit.agents import agent_family
    from mailbridge.tracking.service import network_of

    context = app.current_event.raw_event.get("requestContext") or {}
    http = context.get("http") or {}
    claims = ((context.get("authorizer") or {}).get("jwt") or {}).get("claims")
    ids = resource_ids(route_arguments)
    tenant_id, actor, role = _caller(claims)
    named: _Named | None = app.context.get(_AUDIT_AS)
    error_code = _error_code(response)
    outcome: Outcome | None = None
    if named is not None:
        if tenant_id is None:
            tenant_id = named.tenant_id
            actor = named.actor or actor
        ids.update(resource_ids(named.resource_ids))
        outcome = named.outcome
        error_code = named.error_code or error_code
    if tenant_id is None:
        logger.debug("audited request without a tenant not recorded", extra={"route": route.path})
        return None
    return models.AuditEntry(
        tenant_id=tenant_id,
        actor=actor,
        role=role,
        action=route.operation_id,
        kind=kind,
        resource_ids=ids,
        at=datetime.now(UTC),
        network=network_of(http.get("sourceIp")),
        user_agent_family=agent_family(http.get("userAgent")),
        status=int(response.status_code),
        result=outcome,
        error_code=error_code,
        request_id=str(context.get("requestId") or "-"),
    )


def _caller(claims: Mapping[str, Any] | None) -> tuple[str | None, str, str | None]:
    """(tenant, actor, role) from the verified claims; (None, "public", None) when they give no
    usable caller (a public route, or a token refused with 403 `no_tenant` / `no_role` ...)."""
    from mailbridge.errors import Forbidden
    from mailbridge.tenancy import tenant_from_claims

    if not claims:
        return None, "public", None
    try:
        ctx = tenant_from_claims(claims)
    except Forbidden:
        return None, "public", None
    return ctx.tenant_id, ctx.subject, ctx.role.value
