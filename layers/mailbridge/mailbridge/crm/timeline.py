"""A CRM record's timeline: its emails, calendar events and CRM activities, newest first, in one
cursor-paged listing.

Everything on a contact's or deal's timeline has a row in one index, the links table's gsi2
(`store.links`, key design beside `LinksTable` in template.yaml), under
`TENANT#{tenant}#TL#{kind}#{record_id}` in the order `{UTC ISO 8601 instant}#{id}`: the email
links (at the email's date), the events' entries (at their first start) and the activities'
entries (when they happened). Each writer keeps its rows: a link is its own row; an event's and
an activity's entries are written in the same transaction as the event or activity. So a page is
one Query of that index, then one BatchGetItem of the page's emails (their current summaries, as
`GET /emails` shows them); events and activities carry what the timeline shows of them.

Items carry `type`: `email` (the fields of `GET /emails` rows), `event` (`CalendarTimelineItem`),
`activity` (`ActivityTimelineItem`: notes, calls, meetings, tasks done) or `engagement`
(`EngagementTimelineItem`: a human open or click of a tracked email, written by
`mailbridge.tracking.service.record_hit` as a `HIT` entry that expires with the hit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from mailbridge.access import Access, Visibility
from mailbridge.calendar.models import CalendarTimelineItem
from mailbridge.crm.models import ActivityTimelineItem
from mailbridge.emails import to_summary
from mailbridge.models.mail import EmailSummary
from mailbridge.store.links import TimelineRow
from mailbridge.tracking.models import EngagementTimelineItem


class TimelineEmail(EmailSummary):
    """An email on a timeline (a `GET /emails` row)."""

    model_config = ConfigDict(populate_by_name=True)

    type: Literal["email"] = "email"


TimelineItem = Annotated[
    TimelineEmail | CalendarTimelineItem | ActivityTimelineItem | EngagementTimelineItem,
    Field(discriminator="type"),
]


def hit_email_id(row: TimelineRow) -> str | None:
    """The email an engagement row (`HIT`) is about."""
    if row.source != "HIT" or row.entry is None:
        return None
    return EngagementTimelineItem.model_validate_json(row.entry).email_id


def timeline_item(
    row: TimelineRow, emails: Mapping[str, dict[str, Any]], access: Access
) -> TimelineEmail | CalendarTimelineItem | ActivityTimelineItem | EngagementTimelineItem | None:
    """What the timeline shows for one index row, as the caller may see it (mailbridge.access);
    None for an email gone from its table or private to the caller (`emails`: the page's email
    items by id, those of its engagement rows too) or a row of a source this code does not know.
    An engagement row shows as its email does: left out when that is private, without the
    clicked URL (a link of the body) below `full`."""
    if row.source == "EMAIL":
        item = emails.get(row.source_id)
        shown = None if item is None else access.visible(item)
        return None if shown is None else TimelineEmail.model_validate(to_summary(shown).model_dump())
    if row.source == "EVENT" and row.entry is not None:
        return CalendarTimelineItem.model_validate_json(row.entry)
    if row.source == "ACTIVITY" and row.entry is not None:
        return ActivityTimelineItem.model_validate_json(row.entry)
    if row.source == "HIT" and row.entry is not None:
        hit = EngagementTimelineItem.model_validate_json(row.entry)
        email = emails.get(hit.email_id)
        level = Visibility.PRIVATE if email is None else access.level(email)
        if level is Visibility.PRIVATE:
            return None
        return hit if level is Visibility.FULL else hit.model_copy(update={"url": None})
    return None
