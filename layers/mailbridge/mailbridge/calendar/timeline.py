"""Events on CRM timelines: the calendar's source for `mailbridge.crm.timeline.merged_page`.

An event linked to contacts, a company or a deal is listed under each of them (the calendar
table's `REL` items, written with the event), at its start: a recurring event once, at its first
occurrence. Sort keys are `{start as UTC ISO 8601}#{event_id}`, comparable with mail's
`{date}#{email_id}`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbridge.calendar.models import CalendarTimelineItem, EventTime
from mailbridge.crm.timeline import Entry, SourceFactory, TimelineSource
from mailbridge.store.calendar import CalendarStore


@dataclass
class CalendarTimeline:
    store: CalendarStore
    tenant_id: str
    record_id: str
    name: str = "calendar"

    def page(self, cursor: str | None, limit: int) -> tuple[list[Entry], str | None]:
        rows, next_cursor = self.store.timeline_page(
            self.tenant_id, self.record_id, cursor=cursor, limit=limit
        )
        entries = []
        for row in rows:
            start = EventTime.model_validate(row.summary["start"])
            item = CalendarTimelineItem.model_validate({**row.summary, "date": start.instant})
            entries.append(Entry(row.order_key, item))
        return entries, next_cursor


def source_factory(store: CalendarStore) -> SourceFactory:
    """`(tenant_id, kind, record_id) -> source` for `LinkDeps.timeline_sources`."""

    def make(tenant_id: str, _kind: str, record_id: str) -> TimelineSource:
        return CalendarTimeline(store, tenant_id, record_id)

    return make
