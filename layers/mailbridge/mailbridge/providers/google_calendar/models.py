"""Google Calendar API v3 Event resource, as `events.list/get/insert/patch` return it.

Field names as in developers.google.com/calendar/api/v3/reference/events (snake_case here). Only
what the sync reads is modelled; the rest is ignored. A cancelled (deleted) event carries only
`id` and `status` (and, for a cancelled occurrence of a recurring event, `recurringEventId` and
`originalStartTime`): every other field is optional.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import ConfigDict, Field

from mailbridge.models.base import Model

ResponseStatus = Literal["needsAction", "declined", "tentative", "accepted"]


class _Google(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class EventDateTime(_Google):
    """`{date}` (all-day) or `{dateTime (RFC 3339, with offset), timeZone (IANA, optional)}`."""

    date: dt.date | None = None
    date_time: dt.datetime | None = Field(default=None, alias="dateTime")
    time_zone: str | None = Field(default=None, alias="timeZone")


class EventPerson(_Google):
    email: str | None = None
    display_name: str | None = Field(default=None, alias="displayName")


class EventAttendee(EventPerson):
    response_status: ResponseStatus = Field(default="needsAction", alias="responseStatus")
    optional: bool = False
    organizer: bool = False


class GoogleEvent(_Google):
    id: str
    status: Literal["confirmed", "tentative", "cancelled"] = "confirmed"
    etag: str | None = None
    updated: dt.datetime | None = None
    ical_uid: str | None = Field(default=None, alias="iCalUID")
    sequence: int = 0
    summary: str | None = None
    description: str | None = None
    location: str | None = None
    organizer: EventPerson | None = None
    start: EventDateTime | None = None
    end: EventDateTime | None = None
    recurrence: list[str] = Field(default_factory=list)
    recurring_event_id: str | None = Field(default=None, alias="recurringEventId")
    original_start_time: EventDateTime | None = Field(default=None, alias="originalStartTime")
    attendees: list[EventAttendee] = Field(default_factory=list)


class EventsPage(_Google):
    """One page of `events.list`: `next_page_token` while pages follow, `next_sync_token` on the
    last page only."""

    items: list[GoogleEvent] = Field(default_factory=list)
    next_page_token: str | None = Field(default=None, alias="nextPageToken")
    next_sync_token: str | None = Field(default=None, alias="nextSyncToken")
