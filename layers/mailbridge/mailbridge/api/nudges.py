"""Nudges: per-tenant settings, the open nudges, dismiss (issue 15 point 3)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.nudges.models import Nudge, NudgeKind, NudgeSettings, NudgeSettingsRequest
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()


@router.get(
    "/nudges/settings",
    summary="The tenant's nudge settings (until an admin saves some: off, 3 business days, Mon-Fri, UTC)",
    tags=["nudges"],
    security=BEARER,
    responses=errors({}),
    middlewares=[require_role(Role.VIEWER)],
)
def get_nudge_settings() -> NudgeSettings:
    from mailbridge.nudges import service
    from mailbridge.nudges.wiring import nudge_deps

    return service.get_settings(current_tenant(router), nudge_deps())


@router.put(
    "/nudges/settings",
    summary="Replace the tenant's nudge settings (admin or owner)",
    description=(
        "Once a day, sent mail with no reply in its thread after `business_days` business days "
        "becomes an `awaiting_reply` nudge, and mail received from a CRM contact with no answer a "
        "`needs_reply` nudge (not when the AI categorizer found it needs no reply). Business days "
        "are counted in `time_zone` over `working_days` (ISO 8601 weekday numbers), skipping "
        "`holidays`. 400 `invalid_time_zone`."
    ),
    tags=["nudges"],
    security=BEARER,
    middlewares=[require_role(Role.ADMIN)],
    responses=errors({400: ["invalid_time_zone"]}),
)
def put_nudge_settings(body: Annotated[NudgeSettingsRequest, Body()]) -> NudgeSettings:
    from mailbridge.nudges import service
    from mailbridge.nudges.wiring import nudge_deps

    return service.put_settings(current_tenant(router), body, nudge_deps())


@router.get(
    "/nudges",
    summary="Open nudges: awaiting_reply (you sent, no answer) and needs_reply (a contact wrote, no answer)",
    description=(
        "A reply in the thread removes its nudge at once. A page holds `limit` nudges whenever "
        "that many match; follow `next_cursor`."
    ),
    tags=["nudges"],
    security=BEARER,
    responses=errors({400: ["invalid_cursor"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def list_nudges(
    kind: Annotated[
        NudgeKind | None, Query(description="awaiting_reply or needs_reply; both when left out")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page")
    ] = None,
) -> Page[Nudge]:
    from mailbridge.nudges import service
    from mailbridge.nudges.wiring import nudge_deps

    return service.list_nudges(current_tenant(router), kind, nudge_deps(), cursor=cursor, limit=limit)


@router.post(
    "/nudges/<nudge_id>/dismiss",
    summary="Dismiss a nudge (member or above): gone from the list, never created again for that email",
    tags=["nudges"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["nudge_not_found"]}),
)
def dismiss_nudge(nudge_id: str) -> Nudge:
    from mailbridge.nudges import service
    from mailbridge.nudges.wiring import nudge_deps

    return service.dismiss(current_tenant(router), nudge_id, nudge_deps())
