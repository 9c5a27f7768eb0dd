"""CRM tasks and activities under /crm: `/crm/tasks`, `/crm/activities` and each contact's and
deal's activity log.

Like the rest of /crm: 404 `feature_disabled` while the tenant's `crm` flag is off; viewers read,
members write.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import AwareDatetime

from mailbridge.api import deps
from mailbridge.api.context import current_tenant
from mailbridge.api.crm import READ, WRITE, Cursor, Limit
from mailbridge.api.schemas import BEARER, errors
from mailbridge.crm import activities, tasks
from mailbridge.crm.models import (
    CONTACT_ID,
    DEAL_ID,
    Activity,
    ActivityCreate,
    Deleted,
    Task,
    TaskCreate,
    TaskPatch,
)
from mailbridge.store.pagination import DEFAULT_PAGE_SIZE, Page

router = Router()

RELATED = ["unknown_contact", "unknown_company", "unknown_deal", "unknown_email"]
IDEMPOTENCY_HEADER = "idempotency-key"


def _email_exists(tenant_id: str, email_id: str) -> bool:
    """The email exists and is not private to the caller (mailbridge.access)."""
    from mailbridge.access import access_of

    return access_of(current_tenant(router)).visible_id(deps.email_store().get_email(tenant_id, email_id))


# ---------------------------------------------------------------------------------- tasks


@router.post(
    "/crm/tasks",
    summary="Create a task (assignee defaults to the caller)",
    description="Related ids must name records of the tenant: 400 `unknown_contact`, "
    "`unknown_company`, `unknown_deal`, `unknown_email`. With an `Idempotency-Key` header "
    "(1-512 characters) a repeated request returns the task created the first time and "
    "publishes nothing again. Publishes `task.created`.",
    tags=["crm"],
    security=BEARER,
    status_code=201,
    middlewares=WRITE,
    responses=errors({400: [*RELATED, "invalid_idempotency_key"], 503: ["event_publish_failed"]}),
)
def create_task(body: Annotated[TaskCreate, Body()]) -> Task:
    key = router.current_event.headers.get(IDEMPOTENCY_HEADER)
    return tasks.create_task(
        current_tenant(router),
        body,
        deps.crm_store(),
        deps.publisher(),
        idempotency_key=key,
        email_exists=_email_exists,
    )


@router.get(
    "/crm/tasks",
    summary="Tasks, soonest due first (undated last), with filters (pages may be short: follow "
    "`next_cursor`)",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({}),
)
def list_tasks(
    status: Annotated[Literal["open", "done"] | None, Query(description="Only tasks in this status")] = None,
    assignee: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Only tasks assigned to this subject")
    ] = None,
    due_before: Annotated[
        AwareDatetime | None,
        Query(description="Only tasks due before this RFC 3339 date-time (with an offset)"),
    ] = None,
    contact_id: Annotated[
        str | None, Query(pattern=CONTACT_ID.pattern, description="Only tasks about this contact")
    ] = None,
    deal_id: Annotated[
        str | None, Query(pattern=DEAL_ID.pattern, description="Only tasks about this deal")
    ] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> Page[Task]:
    return tasks.list_tasks(
        current_tenant(router),
        deps.crm_store(),
        status=status,
        assignee=assignee,
        due_before=due_before,
        contact_id=contact_id,
        deal_id=deal_id,
        cursor=cursor,
        limit=limit,
    )


@router.get(
    "/crm/tasks/<task_id>",
    summary="One task",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["task_not_found"]}),
)
def get_task(task_id: str) -> Task:
    return tasks.get_task(current_tenant(router), task_id, deps.crm_store())


@router.patch(
    "/crm/tasks/<task_id>",
    summary="Change a task; `status: done` completes it (`task.completed`, once)",
    description="Send only the fields to change; `null` clears an optional field. With `version` "
    "the change applies only to that version (409 `version_conflict` otherwise). Completing a "
    "task about a contact or deal adds a `task_done` activity to their logs.",
    tags=["crm"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors(
        {
            400: ["empty_patch", "invalid_record", *RELATED],
            404: ["task_not_found"],
            409: ["version_conflict", "conflict"],
            503: ["event_publish_failed"],
        }
    ),
)
def update_task(task_id: str, patch: Annotated[TaskPatch, Body()]) -> Task:
    return tasks.update_task(
        current_tenant(router),
        task_id,
        patch,
        deps.crm_store(),
        deps.publisher(),
        email_exists=_email_exists,
    )


@router.delete(
    "/crm/tasks/<task_id>",
    summary="Delete a task (its `task_done` activities stay on the logs)",
    tags=["crm"],
    security=BEARER,
    middlewares=WRITE,
    responses=errors({404: ["task_not_found"], 409: ["version_conflict"]}),
)
def delete_task(task_id: str) -> Deleted:
    tasks.delete_task(current_tenant(router), task_id, deps.crm_store())
    return Deleted(id=task_id)


# ---------------------------------------------------------------------------------- activities


@router.post(
    "/crm/activities",
    summary="Log a note, call or meeting on a contact and/or deal",
    description="400 `unknown_contact`, `unknown_deal` or `unknown_company` for ids the tenant "
    "lacks. A note publishes `note.created`.",
    tags=["crm"],
    security=BEARER,
    status_code=201,
    middlewares=WRITE,
    responses=errors(
        {400: ["unknown_contact", "unknown_company", "unknown_deal"], 503: ["event_publish_failed"]}
    ),
)
def create_activity(body: Annotated[ActivityCreate, Body()]) -> Activity:
    return activities.create_activity(current_tenant(router), body, deps.crm_store(), deps.publisher())


@router.get(
    "/crm/contacts/<contact_id>/activities",
    summary="A contact's activity log, newest first",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["contact_not_found"]}),
)
def contact_activities(
    contact_id: str, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> Page[Activity]:
    return activities.list_activities(
        current_tenant(router), "contact", contact_id, deps.crm_store(), cursor=cursor, limit=limit
    )


@router.get(
    "/crm/deals/<deal_id>/activities",
    summary="A deal's activity log, newest first",
    tags=["crm"],
    security=BEARER,
    middlewares=READ,
    responses=errors({404: ["deal_not_found"]}),
)
def deal_activities(deal_id: str, limit: Limit = DEFAULT_PAGE_SIZE, cursor: Cursor = None) -> Page[Activity]:
    return activities.list_activities(
        current_tenant(router), "deal", deal_id, deps.crm_store(), cursor=cursor, limit=limit
    )
