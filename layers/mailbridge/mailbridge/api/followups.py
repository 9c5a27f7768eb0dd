"""Follow-up flags: set one on an email, list by state, complete, remove."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from mailbridge.api.context import current_tenant, require_role
from mailbridge.api.schemas import BEARER, errors
from mailbridge.followups.models import FollowUp, FollowUpRequest, ListState
from mailbridge.models.base import Model
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page
from mailbridge.tenancy import Role

router = Router()


class FollowUpRemoved(Model):
    email_id: str
    removed: bool = True


@router.put(
    "/emails/<email_id>/follow-up",
    summary="Set (or move) the email's follow-up: due time, priority, note (member or above)",
    description=(
        "Flags the email (IMAP `\\Flagged`, Gmail `STARRED`, Graph `flag`, written to every mailbox); "
        "at `due_at` a reminder announces `follow_up.due` (automations can trigger on it). "
        "422 `follow_up_in_past` (less than a minute ahead), `follow_up_too_far` (more than a year)."
    ),
    tags=["follow-ups"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["not_found"], 422: ["follow_up_in_past", "follow_up_too_far"]}),
)
def put_follow_up(email_id: str, body: Annotated[FollowUpRequest, Body()]) -> FollowUp:
    from mailbridge.followups import service
    from mailbridge.followups.wiring import follow_up_deps

    return service.put_follow_up(current_tenant(router), email_id, body, follow_up_deps())


@router.get(
    "/follow-ups",
    summary="Follow-ups by state: due (open, due later), overdue (open, due now or before), done",
    description="A page holds `limit` follow-ups whenever that many match; follow `next_cursor`.",
    tags=["follow-ups"],
    security=BEARER,
    responses=errors({400: ["invalid_cursor"]}),
    middlewares=[require_role(Role.VIEWER)],
)
def list_follow_ups(
    state: Annotated[ListState, Query(description="due, overdue or done")] = "due",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size")] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=4096, description="`next_cursor` of the previous page")
    ] = None,
) -> Page[FollowUp]:
    from mailbridge.followups import service
    from mailbridge.followups.wiring import follow_up_deps

    return service.list_follow_ups(
        current_tenant(router), state, follow_up_deps(), cursor=cursor, limit=limit
    )


@router.post(
    "/follow-ups/<email_id>/complete",
    summary="Complete a follow-up: done, reminder cancelled, the email's flag cleared (member or above)",
    tags=["follow-ups"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["follow_up_not_found"]}),
)
def complete_follow_up(email_id: str) -> FollowUp:
    from mailbridge.followups import service
    from mailbridge.followups.wiring import follow_up_deps

    return service.complete(current_tenant(router), email_id, follow_up_deps())


@router.delete(
    "/follow-ups/<email_id>",
    summary="Remove a follow-up: reminder cancelled, the email's flag cleared (member or above)",
    tags=["follow-ups"],
    security=BEARER,
    middlewares=[require_role(Role.MEMBER)],
    responses=errors({404: ["follow_up_not_found"]}),
)
def delete_follow_up(email_id: str) -> FollowUpRemoved:
    from mailbridge.followups import service
    from mailbridge.followups.wiring import follow_up_deps

    service.remove(current_tenant(router), email_id, follow_up_deps())
    return FollowUpRemoved(email_id=email_id)
