"""The audit log: `GET /audit` for owners and admins (issue 19 point 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.audit.models import AuditPage, Outcome
from mailbridge.models.fields import SingleLine
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from mailbridge.tenancy import Role

router = Router()

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


@router.get(
    "/audit",
    summary="The tenant's audit log, newest first, filtered; follow `next_cursor`",
    description=(
        "One entry per write (every POST, PUT, PATCH, DELETE) and per read of message bodies or "
        "credential-bearing data (each operation's `x-mailbridge-audit` says which): who "
        "(`actor` = JWT `sub`, `role`), what (`action` = the operationId, `resource_ids` = the "
        "path's ids), when (`at`, UTC ms), from where (`network`: the source IP's /24 or /48, "
        "`user_agent_family`) and the outcome (`status`, `error_code`). Never bodies, addresses, "
        "subjects or tokens. Filters: `actor`, `action`, `resource_id` (any of the entry's ids), "
        "`outcome` (`success` < 400 <= `failure`), `since` / `until` (ISO 8601, inclusive; no "
        "offset: UTC). Every page but the last holds `limit` when that many match. "
        "400 `invalid_time_range` (`since` after `until`), 400 `invalid_cursor`."
    ),
    tags=["audit"],
    security=BEARER,
    responses=errors({400: ["invalid_time_range", "invalid_cursor"]}),
    middlewares=[require_role(Role.ADMIN)],
)
def list_audit(
    actor: Annotated[SingleLine | None, Query(min_length=1, max_length=256, description="JWT `sub`")] = None,
    action: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_]{1,200}$", description="operationId")] = None,
    resource_id: Annotated[str | None, Query(pattern=_ID, description="An id the entry names")] = None,
    outcome: Annotated[Outcome | None, Query(description="`success` or `failure`")] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; entries at or after")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; entries at or before")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page")
    ] = None,
) -> AuditPage:
    from mailbridge.audit import service
    from mailbridge.audit.wiring import audit_deps

    return service.list_entries(
        current_tenant(router),
        audit_deps(),
        since=since,
        until=until,
        actor=actor,
        action=action,
        resource_id=resource_id,
        outcome=outcome,
        cursor=cursor,
        limit=limit,
    )
