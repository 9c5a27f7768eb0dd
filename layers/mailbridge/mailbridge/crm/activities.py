"""The activity log of contacts and deals: notes, calls and meetings users write, and `task_done`
items written when a task is completed (`mailbridge.crm.tasks`).

Sent and received mail is on the same timelines through email links (the timeline's email
source), never copied in as activity items.

An activity is immutable and listed under each contact and deal it names, newest first under the
sort key `{occurred_at as UTC ISO 8601}#{activity_id}`: the same key shape as the mail and calendar
sources of the merged timeline (`crm/timeline.py`), so `ActivityTimeline` plugs
into `merged_page` as one more source, with its own cursor.

Events: `note.created` {activity} for notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mailbridge.bus import EventPublisher
from mailbridge.crm.models import (
    ACTIVITY_PREFIX,
    Activity,
    ActivityCreate,
    ActivityTimelineItem,
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
from mailbridge.crm.timeline import Entry
from mailbridge.store.crm import CrmStore
from mailbridge.store.pagination import Page
from mailbridge.tenancy import Role, TenantContext


def timeline_item(activity: Activity) -> ActivityTimelineItem:
    return ActivityTimelineItem(
        activity_id=activity.activity_id,
        kind=activity.kind,
        body=activity.body,
        date=activity.occurred_at,
        contact_id=activity.contact_id,
        deal_id=activity.deal_id,
        company_id=activity.company_id,
        task_id=activity.task_id,
        created_by=activity.created_by,
    )


ActivitySourceFactory = Callable[[str, str, str], "ActivityTimeline"]
"""(tenant_id, kind, record_id) -> the record's activity source."""


@dataclass
class ActivityTimeline:
    """A record's activities as a timeline source (`crm.timeline.TimelineSource`): newest first,
    sort key `{ISO date}#{activity_id}`, its own signed cursor."""

    store: CrmStore
    tenant_id: str
    record_id: str
    name: str = "activity"

    def page(self, cursor: str | None, limit: int) -> tuple[list[Entry], str | None]:
        rows, next_cursor = self.store.activities_page(
            self.tenant_id, self.record_id, cursor=cursor, limit=limit
        )
        return [Entry(key, timeline_item(activity)) for key, activity in rows], next_cursor


def source_factory(store: CrmStore) -> ActivitySourceFactory:
    """`(tenant_id, kind, record_id) -> source`, for the timeline's list of extra sources."""

    def make(tenant_id: str, _kind: str, record_id: str) -> ActivityTimeline:
        return ActivityTimeline(store, tenant_id, record_id)

    return make


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
