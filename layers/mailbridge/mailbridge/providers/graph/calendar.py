"""Microsoft Graph v1.0 calendar of an account (`/me`, the default calendar), over the Graph
mail adapter's transport (token refresh on 401, request budget, 429 with Retry-After, 5xx).

Sources: learn.microsoft.com/graph/api/event-delta and /graph/delta-query-events ("Get
incremental changes to events in a calendar view"); /graph/api/event-update, event-delete;
/graph/api/resources/event; notes.md (Graph, delta and its resets).

- `calendar_delta(window, link)`: `GET /me/calendarView/delta?startDateTime=&endDateTime=` (ISO
  8601 UTC) with `Prefer: odata.maxpagesize=N`, following `@odata.nextLink` to the
  `@odata.deltaLink`; the links are opaque state tokens that carry the window, so a saved link is
  requested as it is. A calendar view holds single instances, occurrences and exceptions of
  series, never the series masters (delta-query-events). A removed event comes back as
  `{"id", "@removed": {"reason"}}`. 410 Gone, or the codes `syncStateNotFound` / `resyncRequired`
  (any case), on a delta or next link -> DeltaReset: restart with a full round.
- `update_event` (`PATCH /me/events/{id}`) and `delete_event` (`DELETE`) send `If-Match:
  <@odata.etag>` when one is known: 412 (ErrorIrresolvableConflict: the change key no longer
  matches) -> EtagMismatch; 404 (ErrorItemNotFound) -> ProviderEventGone. `get_event` reads one
  event (`lastModifiedDateTime` decides a conflict).

The base URL is the `GRAPH_API_URL` setting, as for mail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ConfigDict, Field, ValidationError

from mailbridge.errors import ProviderError
from mailbridge.models.base import Model
from mailbridge.providers.calendar_errors import EtagMismatch, ProviderEventGone
from mailbridge.providers.graph.client import IMMUTABLE, GraphClient
from mailbridge.providers.graph.errors import DeltaReset

CALENDAR_PAGE_SIZE = 100
WINDOW_PAST = dt.timedelta(days=90)
WINDOW_FUTURE = dt.timedelta(days=365)
"""The calendar view pulled: 90 days back to 365 days ahead of the first pull (the window is
fixed inside the delta link; a full resync, after a 410, moves it to the day of the resync)."""


class _Graph(Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class DateTimeTimeZone(_Graph):
    """`{dateTime: "2026-10-05T07:00:00.0000000" (no offset), timeZone: "UTC" or a zone name}`."""

    date_time: str = Field(alias="dateTime")
    time_zone: str = Field(default="UTC", alias="timeZone")


class EmailAddress(_Graph):
    name: str | None = None
    address: str | None = None


class Recipient(_Graph):
    email_address: EmailAddress | None = Field(default=None, alias="emailAddress")


class ResponseStatus(_Graph):
    response: str = "none"  # none, organizer, tentativelyAccepted, accepted, declined, notResponded


class Attendee(Recipient):
    type: str = "required"  # required, optional, resource
    status: ResponseStatus = Field(default_factory=ResponseStatus)


class ItemBody(_Graph):
    content_type: str = Field(default="text", alias="contentType")
    content: str = ""


class Location(_Graph):
    display_name: str | None = Field(default=None, alias="displayName")


class Removed(_Graph):
    reason: str = "deleted"


class GraphEvent(_Graph):
    """An event resource as calendarView/delta returns it (or `@removed` with only the id)."""

    id: str
    etag: str | None = Field(default=None, alias="@odata.etag")
    removed: Removed | None = Field(default=None, alias="@removed")
    ical_uid: str | None = Field(default=None, alias="iCalUId")
    type: str = "singleInstance"  # singleInstance, occurrence, exception, seriesMaster
    series_master_id: str | None = Field(default=None, alias="seriesMasterId")
    subject: str | None = None
    body: ItemBody | None = None
    start: DateTimeTimeZone | None = None
    end: DateTimeTimeZone | None = None
    original_start_time_zone: str | None = Field(default=None, alias="originalStartTimeZone")
    is_all_day: bool = Field(default=False, alias="isAllDay")
    is_cancelled: bool = Field(default=False, alias="isCancelled")
    location: Location | None = None
    organizer: Recipient | None = None
    attendees: list[Attendee] = Field(default_factory=list)
    last_modified: dt.datetime | None = Field(default=None, alias="lastModifiedDateTime")


@dataclass(frozen=True)
class CalendarPage:
    """One calendarView/delta page: `next_link` while the round goes on, `delta_link` on its last page."""

    events: list[GraphEvent]
    next_link: str | None
    delta_link: str | None
    skipped: int = 0


def window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The calendar view a full round asks for: WINDOW_PAST before `now` to WINDOW_FUTURE after."""
    return now - WINDOW_PAST, now + WINDOW_FUTURE


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphCalendarClient(GraphClient):
    """The calendar endpoints of one Outlook account (see the module doc)."""

    name = "graph"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("page_size", CALENDAR_PAGE_SIZE)
        super().__init__(*args, **kwargs)

    def _error(
        self, response: httpx.Response, not_found: Callable[[], ProviderError] | None, delta: bool
    ) -> ProviderError:
        if response.status_code == 412:
            return EtagMismatch("the event changed in Outlook since it was read", details={"status": 412})
        return super()._error(response, not_found, delta)

    def calendar_delta(
        self, window: tuple[dt.datetime, dt.datetime], link: str | None = None
    ) -> Iterator[CalendarPage]:
        """The pages of one calendarView delta round, from `link` (a saved deltaLink) or a full
        round of `window` (start, end). Raises DeltaReset (see the module doc)."""
        headers = {"Prefer": f"odata.maxpagesize={self.page_size}, {IMMUTABLE}"}
        url = link
        params: dict[str, str] | None = None
        if url is None:
            url = "/me/calendarView/delta"
            params = {"startDateTime": _iso(window[0]), "endDateTime": _iso(window[1])}
        while True:
            body = self._json("GET", url, headers=headers, params=params, delta=True)
            events: list[GraphEvent] = []
            skipped = 0
            for entry in body.get("value") or []:
                try:
                    events.append(GraphEvent.model_validate(entry))
                except ValidationError:
                    skipped += 1
            next_link = body.get("@odata.nextLink")
            delta_link = body.get("@odata.deltaLink")
            if not next_link and not delta_link:
                raise ProviderError("Graph sent a delta page without a link", code="protocol_error")
            yield CalendarPage(
                events,
                str(next_link) if next_link else None,
                str(delta_link) if delta_link else None,
                skipped,
            )
            if not next_link:
                return
            url, params = str(next_link), None

    def create_event(self, body: dict[str, Any]) -> GraphEvent:
        """`POST /me/events` in the default calendar (api/user-post-events): 201 with the event,
        whose `id` and `iCalUId` Graph assigns (an `iCalUId` sent is not kept)."""
        return GraphEvent.model_validate(self._json("POST", "/me/events", json=body))

    def get_event(self, event_id: str) -> GraphEvent:
        return GraphEvent.model_validate(
            self._json("GET", f"/me/events/{quote(event_id, safe='')}", not_found=_gone)
        )

    def update_event(self, event_id: str, body: dict[str, Any], etag: str | None) -> GraphEvent:
        headers = {"If-Match": etag} if etag else {}
        return GraphEvent.model_validate(
            self._json(
                "PATCH", f"/me/events/{quote(event_id, safe='')}", headers=headers, json=body, not_found=_gone
            )
        )

    def delete_event(self, event_id: str, etag: str | None) -> None:
        headers = {"If-Match": etag} if etag else {}
        self._call("DELETE", f"/me/events/{quote(event_id, safe='')}", headers=headers, not_found=_gone)


def _gone() -> ProviderError:
    return ProviderEventGone("the event no longer exists in Outlook")


__all__ = ["DeltaReset", "GraphCalendarClient", "GraphEvent"]
