"""The activity log of contacts and deals: notes, calls and meetings users write, and `task_done`
items written when a task is completed (`mailbridge.crm.tasks`).

Sent and received mail is on the same timelines through email links (the timeline's email
source), never copied in as activity items.

An activity is immutable and listed under each contact and deal it names, newest first under the
sort key `{occurred_at as UTC ISO 8601}#{activity_id}`; it is on their timelines through its
entries in the timeline index (`crm/timeline.py`), written in the same transaction.

Events: `note.created` {activity} for notes.
"""

from __future__ import annotations

from typing import Literal

from mailbridge.bus import EventPublisher
from mailbridge.crm.models import (
    ACTIVITY_PREFIX,
    Activity,
    ActivityCreate,
    new_id,
)
from mailbridge.crm.service import (
    Clock,
    _event,
    _publish,
    _utcnow,
    get_contact,
    get_deal,
)
from mailbridge.crm.tasks import check_related
from mailbridge.store.crm import CrmStore
from mailbridge.store.pagination import Page
from mailbridge.tenancy import Role, TenantContext


def create_activity(
    ctx: TenantContext,
    body: ActivityCreate,
    store: CrmStore,
    publisher: EventPublisher | None = None,
    now: Clock = _utcnow,
) -> Activity:
    """A note, call or meeting on the logs of the contact and/or deal it names (400
    `unknown_contact` / `unknown_deal` / `unknown_company` for ids the tenant lacks);
    `note.created` for a note."""
    ctx.require(Role.MEMBER)
    check_related(ctx, store, body.model_dump(include={"contact_id", "deal_id", "company_id"}), None)
    at = now()
    activity = Activity(
        activity_id=new_id(ACTIVITY_PREFIX),
        kind=body.kind,
        body=body.body,
        occurred_at=body.occurred_at or at,
        contact_id=body.contact_id,
        deal_id=body.deal_id,
        company_id=body.company_id,
        created_at=at,
        created_by=ctx.subject,
    )
    store.create_activity(ctx.tenant_id, activity)
    if activity.kind == "note":
        _publish(
            publisher,
            [
                _event(
                    ctx,
                    "note.created",
                    f"note.created:{activity.activity_id}",
                    {"activity": activity.model_dump(mode="json")},
                )
            ],
        )
    return activity


def list_activities(
    ctx: TenantContext,
    kind: Literal["contact", "deal"],
    record_id: str,
    store: CrmStore,
    *,
    cursor: str | None,
    limit: int,
) -> Page[Activity]:
    """The record's activities, newest first (404 `contact_not_found` / `deal_not_found`)."""
    if kind == "contact":
        get_contact(ctx, record_id, store)
    else:
        get_deal(ctx, record_id, store)
    rows, next_cursor = store.activities_page(ctx.tenant_id, record_id, cursor=cursor, limit=limit)
    return Page[Activity](items=[activity for _, activity in rows], next_cursor=next_cursor)
