"""Outlook calendar (the user's default calendar) for `calendarView/delta` and event writes.

What Graph documents and this follows [D: graph/delta-query-events, api/event-delta,
api/event-update, api/event-delete, resources/event, resources/datetimetimezone]:
* a calendar view is the events between `startDateTime` and `endDateTime` of the first delta
  request (both encoded in the state tokens, not repeated later); it holds single instances,
  occurrences and exceptions of recurring series, never the series master itself;
* each event has `id`, `iCalUId` (different for each occurrence of a series), `type`
  (singleInstance, occurrence, exception, seriesMaster), `seriesMasterId`, `start`/`end` as
  dateTimeTimeZone (returned in UTC: no `Prefer: outlook.timezone` here), `originalStartTimeZone`,
  `isAllDay`, `isCancelled`, `subject`, `body`, `location`, `organizer`, `attendees` with
  `status.response`, `lastModifiedDateTime`, `changeKey` and `@odata.etag` (`W/"<changeKey>"`);
* `POST /me/events` creates a single event organized by the mailbox owner, with an `id` and
  `iCalUId` Graph assigns [D: api/user-post-events];
* `PATCH /me/events/{id}` and `DELETE` take `If-Match`; a stale one answers 412
  ErrorIrresolvableConflict [R: Exchange's answer when the change key does not match]; editing
  an occurrence makes it an `exception`; an unknown id answers 404 ErrorItemNotFound.

Series here are given as their occurrences (`put_series`): the master is kept (so the
occurrences name it) but is never part of a calendar view.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from local.microsoft.delta import Books, BookSource
from local.microsoft.errors import GraphError, item_not_found
from local.microsoft.ids import Ids
from local.microsoft.render import iso

COLLECTION_PREFIX = "calendarView|"
WRITABLE = (
    "subject",
    "body",
    "start",
    "end",
    "isAllDay",
    "location",
    "attendees",
    "originalStartTimeZone",
    "isCancelled",
)


def stale_etag() -> GraphError:
    return GraphError(
        412,
        "ErrorIrresolvableConflict",
        "The send or update operation could not be performed because the change key passed in the "
        "request does not match the current change key for the item.",
    )


@dataclass
class CalendarEvent:
    id: str
    ical_uid: str
    type: str
    series_master_id: str | None
    fields: dict[str, Any]
    start: datetime  # UTC
    end: datetime  # UTC
    created: datetime
    modified: datetime
    change_key: str
    seq: int
    entered_seq: int


@dataclass
class CalendarBook:
    events: dict[str, CalendarEvent] = field(default_factory=dict)
    masters: dict[str, CalendarEvent] = field(default_factory=dict)
    removals: list[tuple[int, str]] = field(default_factory=list)


def graph_time(value: datetime) -> dict[str, str]:
    """dateTimeTimeZone in UTC, seven fractional digits as Graph writes them."""
    return {"dateTime": value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def read_time(value: Any) -> datetime:
    """A dateTimeTimeZone body value (`timeZone` UTC or an IANA name) as an aware datetime."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise GraphError(400, "ErrorInvalidRequest", "Invalid dateTimeTimeZone.")
    try:
        wall = datetime.fromisoformat(value["dateTime"].split(".", 1)[0])
        zone_name = str(value.get("timeZone") or "UTC")
        zone = UTC if zone_name == "UTC" else ZoneInfo(zone_name)
    except (ValueError, ZoneInfoNotFoundError):
        raise GraphError(400, "ErrorInvalidRequest", "Invalid dateTimeTimeZone.") from None
    return wall.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC)


class CalendarSource(BookSource[CalendarBook]):
    """The delta Source of one user's calendar view [start, end)."""

    def __init__(self, calendars: Calendars, book: CalendarBook, start: datetime, end: datetime) -> None:
        super().__init__(calendars, book)
        self.start, self.end = start, end

    def current(self) -> dict[str, tuple[int, int]]:
        return {
            e.id: (e.seq, e.entered_seq)
            for e in self.book.events.values()
            if e.start < self.end and e.end > self.start
        }


def collection(start: datetime, end: datetime) -> str:
    return f"{COLLECTION_PREFIX}{iso(start)}|{iso(end)}"


def window_of(name: str) -> tuple[datetime, datetime]:
    start, end = name.removeprefix(COLLECTION_PREFIX).split("|")
    return datetime.fromisoformat(start), datetime.fromisoformat(end)


class Calendars(Books[CalendarBook]):
    def __init__(
        self, ids: Ids, now: Callable[[], datetime], seq: Callable[[], int], next_seq: Callable[[], int]
    ) -> None:
        super().__init__(ids, now, seq, next_seq)
        self.calls: list[tuple[str, str, str | None]] = []  # (method, event id, If-Match) of writes

    def new_book(self) -> CalendarBook:
        return CalendarBook()

    # ------------------------------------------------------------------ control

    def put(
        self,
        address: str,
        fields: dict[str, Any],
        event_id: str | None = None,
        *,
        type_: str = "singleInstance",
        series_master_id: str | None = None,
    ) -> CalendarEvent:
        """Create an event (or replace the writable fields of `event_id`)."""
        book = self.book(address)
        if event_id is not None:
            event = book.events.get(event_id)
            if event is None:
                raise item_not_found()
            self._change(event, fields)
            return event
        now, seq = self.now(), self.next_seq()
        event = CalendarEvent(
            id=self.ids.immutable_id(),
            ical_uid="040000008200E00074C5B7101A82E008" + self.ids.digits(24),
            type=type_,
            series_master_id=series_master_id,
            fields={k: v for k, v in fields.items() if k in (*WRITABLE, "organizer")},
            start=read_time(fields["start"]),
            end=read_time(fields["end"]),
            created=now,
            modified=now,
            change_key=self.ids.change_key(),
            seq=seq,
            entered_seq=seq,
        )
        book.events[event.id] = event
        return event

    def put_series(
        self, address: str, fields: dict[str, Any], count: int, every: timedelta
    ) -> tuple[str, list[CalendarEvent]]:
        """A recurring series as Outlook expands it: the master's id and `count` occurrences,
        `every` apart from `fields`' start."""
        book = self.book(address)
        master = self.put(address, fields, type_="seriesMaster")
        del book.events[master.id]
        book.masters[master.id] = master
        occurrences = []
        for n in range(count):
            shifted = dict(fields)
            for name in ("start", "end"):
                moment = read_time(fields[name]) + every * n
                shifted[name] = graph_time(moment)
            occurrences.append(self.put(address, shifted, type_="occurrence", series_master_id=master.id))
        return master.id, occurrences

    def delete(self, address: str, event_id: str) -> None:
        book = self.book(address)
        if book.events.pop(event_id, None) is None:
            raise item_not_found()
        self.record_removal(book, event_id)

    # ------------------------------------------------------------------ Graph operations

    def find(self, address: str, event_id: str) -> CalendarEvent:
        event = self.book(address).events.get(event_id)
        if event is None:
            raise item_not_found()
        return event

    def create(self, address: str, body: dict[str, Any]) -> CalendarEvent:
        """`POST /me/events`: a single event in the default calendar, organized by its owner;
        Graph assigns `id` and `iCalUId` (one sent is ignored). No start or end: 400."""
        if not isinstance(body.get("start"), dict) or not isinstance(body.get("end"), dict):
            raise GraphError(400, "ErrorInvalidRequest", "Start and end are required.")
        organizer = {"emailAddress": {"address": address}}
        event = self.put(address, {**body, "organizer": organizer})
        self.calls.append(("POST", event.id, None))
        return event

    def update(
        self, address: str, event_id: str, changes: dict[str, Any], if_match: str | None
    ) -> CalendarEvent:
        event = self.find(address, event_id)
        self.calls.append(("PATCH", event_id, if_match))
        if if_match is not None and if_match != self.etag(event):
            raise stale_etag()
        self._change(event, changes)
        if event.type == "occurrence":
            event.type = "exception"
        return event

    def remove(self, address: str, event_id: str, if_match: str | None) -> None:
        event = self.find(address, event_id)
        self.calls.append(("DELETE", event_id, if_match))
        if if_match is not None and if_match != self.etag(event):
            raise stale_etag()
        self.delete(address, event_id)

    def _change(self, event: CalendarEvent, changes: dict[str, Any]) -> None:
        event.fields.update({k: v for k, v in changes.items() if k in WRITABLE})
        if "start" in changes:
            event.start = read_time(changes["start"])
        if "end" in changes:
            event.end = read_time(changes["end"])
        event.modified, event.change_key, event.seq = self.now(), self.ids.change_key(), self.next_seq()

    @staticmethod
    def etag(event: CalendarEvent) -> str:
        return f'W/"{event.change_key}"'

    def render(self, event: CalendarEvent, delta: bool = False) -> dict[str, Any]:
        fields = event.fields
        out: dict[str, Any] = {}
        if delta:
            out["@odata.type"] = "#microsoft.graph.event"
        out["@odata.etag"] = self.etag(event)
        out.update(
            {
                "id": event.id,
                "createdDateTime": iso(event.created),
                "lastModifiedDateTime": iso(event.modified),
                "changeKey": event.change_key,
                "iCalUId": event.ical_uid,
                "type": event.type,
                "seriesMasterId": event.series_master_id,
                "subject": fields.get("subject"),
                "body": fields.get("body") or {"contentType": "text", "content": ""},
                "start": graph_time(event.start),
                "end": graph_time(event.end),
                "originalStartTimeZone": fields.get("originalStartTimeZone") or "UTC",
                "isAllDay": bool(fields.get("isAllDay")),
                "isCancelled": bool(fields.get("isCancelled")),
                "location": fields.get("location") or {"displayName": ""},
                "organizer": fields.get("organizer"),
                "attendees": fields.get("attendees") or [],
            }
        )
        return out
