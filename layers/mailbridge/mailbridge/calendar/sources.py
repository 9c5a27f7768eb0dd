"""The seam for provider calendars (issue 16 point 6). Google Calendar and Microsoft Graph are
built without this protocol: `providers/google_calendar` and `providers/graph/calendar.py` (the
adapters) and `calendar/provider_sync.py` (pull and push-back). The plan as first written:

A provider calendar is pulled incrementally into the same events as imports: Google's
`events.list` with `syncToken` (https://developers.google.com/calendar/api/guides/sync), Graph's
`calendarView/delta` (https://learn.microsoft.com/graph/delta-query-events). An adapter in
`providers/` (the only place that touches the network) implements `CalendarSource`; a puller then
writes each changed event with `service.upsert(ctx, parsed, current, deps, source=...)` (matched
by iCalendar UID, SEQUENCE not lower, idempotent like an import) and deletes the removed ones.
`EventSource` (models) gains the provider's name then; pushing changes back goes through the same
adapter. Behind the per-account `calendar` feature flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from mailbridge.calendar.ics import ParsedEvent


@dataclass
class CalendarChanges:
    """One page of changes since a sync token.

    `events`: new or changed events, as `ics.parse_calendar` gives them (providers' iCalUID as
    `uid`, their sequence, the fields mapped to `EventFields`); `removed`: UIDs of deleted or
    cancelled-and-removed events; `next_token`: where the next pull starts (Google's
    `nextSyncToken`, Graph's `@odata.deltaLink`), None while `more` pages follow in this pull."""

    events: list[ParsedEvent] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    next_token: str | None = None
    more: bool = False


class CalendarSource(Protocol):
    """A connected account's provider calendar, read incrementally.

    `changes(token)`: the changes since `token` (None: a full listing, the provider's initial
    sync), one page per call. A provider refusing an expired token (Google 410 `fullSyncRequired`,
    Graph `syncStateNotFound`) raises `mailbridge.errors.Conflict` code `sync_token_expired`; the
    puller then starts over with None."""

    name: str

    def changes(self, token: str | None) -> CalendarChanges: ...
