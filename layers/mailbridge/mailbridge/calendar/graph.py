"""Microsoft Graph events -> our events, through iCalendar (as `calendar.google` does for Google).

What a calendar view holds (learn.microsoft.com/graph/delta-query-events): single instances,
occurrences and exceptions of recurring series, never the series masters, so no recurrence rule
is ever seen. Each item is therefore mapped as what it is, one dated event: its own UID
(`iCalUId`, which Graph documents as different for each occurrence of a series; resources/event),
no RRULE, and it is stored, updated and pushed back on its own (`PATCH /me/events/{id}` on an
occurrence makes it an exception in Outlook, event-update). Each page is written as one
VCALENDAR and read with `ics.parse_calendar`, so time zones and skip reasons are the import's.

Mapping (resources/event, dateTimeTimeZone, attendee, responseStatus):
- `start`/`end` `{dateTime (no offset), timeZone}`: the wall-clock time in `timeZone` (Graph
  answers in UTC unless asked otherwise); shown in `originalStartTimeZone` when that is an IANA
  name; `isAllDay` -> DATE values (the end exclusive, as both write it);
- `subject` -> SUMMARY, `body.content` (an HTML body without its tags) -> DESCRIPTION,
  `location.displayName` -> LOCATION, `isCancelled` -> STATUS:CANCELLED;
- `organizer` -> ORGANIZER; `attendees[]` -> ATTENDEE with PARTSTAT from `status.response`
  (accepted, declined, tentativelyAccepted -> TENTATIVE, none/notResponded -> NEEDS-ACTION) and
  ROLE OPT-PARTICIPANT for `type: optional`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from mailbridge.calendar import ics, times
from mailbridge.calendar.models import EventFields, EventTime
from mailbridge.providers.graph.calendar import DateTimeTimeZone, GraphEvent

PARTSTAT = {
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentativelyAccepted": "TENTATIVE",
    "organizer": "ACCEPTED",
}
_TAG = re.compile(r"<[^>]{0,2000}>")


@dataclass
class Member:
    """A Graph event to write into the VCALENDAR, with the UID it is stored under."""

    event: GraphEvent
    uid: str


def when(value: DateTimeTimeZone, shown_in: str | None, all_day: bool) -> date | datetime | None:
    """A Graph dateTimeTimeZone as iCalendar reads it (None when it cannot be read)."""
    try:
        wall = datetime.fromisoformat(value.date_time.split(".", 1)[0])
    except ValueError:
        return None
    if all_day:
        return wall.date()
    zone_name = value.time_zone if times.is_zone_name(value.time_zone) else "UTC"
    instant = wall.replace(tzinfo=ZoneInfo(zone_name) if zone_name != "UTC" else UTC)
    if shown_in and times.is_zone_name(shown_in) and shown_in != "UTC":
        return instant.astimezone(ZoneInfo(shown_in))
    return instant.astimezone(UTC)


def _text(event: GraphEvent) -> str | None:
    if event.body is None or not event.body.content:
        return None
    if event.body.content_type.lower() == "html":
        return html.unescape(_TAG.sub(" ", event.body.content)).strip() or None
    return event.body.content


def _vevent(member: Member) -> bytes:
    from icalendar import Event as VEvent
    from icalendar import vCalAddress

    event = member.event
    vevent = VEvent()
    vevent.add("UID", member.uid)
    vevent.add("SEQUENCE", 0)
    shown_in = event.original_start_time_zone
    start = when(event.start, shown_in, event.is_all_day) if event.start else None
    if start is not None:
        vevent.add("DTSTART", start)
    end = when(event.end, shown_in, event.is_all_day) if event.end else None
    if end is not None:
        vevent.add("DTEND", end)
    vevent.add("STATUS", "CANCELLED" if event.is_cancelled else "CONFIRMED")
    location = event.location.display_name if event.location else None
    for name, value in (("SUMMARY", event.subject), ("DESCRIPTION", _text(event)), ("LOCATION", location)):
        if value:
            vevent.add(name, value)
    organizer = event.organizer.email_address if event.organizer else None
    if organizer is not None and organizer.address:
        prop = vCalAddress(f"mailto:{organizer.address}")
        if organizer.name:
            prop.params["CN"] = organizer.name
        vevent.add("ORGANIZER", prop)
    for attendee in event.attendees:
        person = attendee.email_address
        if person is None or not person.address:
            continue
        prop = vCalAddress(f"mailto:{person.address}")
        if person.name:
            prop.params["CN"] = person.name
        prop.params["PARTSTAT"] = PARTSTAT.get(attendee.status.response, "NEEDS-ACTION")
        prop.params["ROLE"] = "OPT-PARTICIPANT" if attendee.type == "optional" else "REQ-PARTICIPANT"
        vevent.add("ATTENDEE", prop)
    return bytes(vevent.to_ical())


def parse(members: Sequence[Member]) -> ics.ParsedFile:
    """The events of `members` as an import reads them (empty when there are none)."""
    if not members:
        return ics.ParsedFile(method=None, events=[], skipped=[])
    body = b"".join(_vevent(member) for member in members)
    return ics.parse_calendar(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailbridge//graph//EN\r\n" + body + b"END:VCALENDAR\r\n"
    )


# ---------------------------------------------------------------------------------- push-back


def _graph_time(value: EventTime) -> dict[str, str]:
    """dateTimeTimeZone: the wall-clock time (no offset) and its IANA zone; all-day: midnight."""
    if value.date is not None:
        return {"dateTime": f"{value.date.isoformat()}T00:00:00", "timeZone": "UTC"}
    assert value.date_time is not None
    moment = value.date_time
    zone = value.time_zone or ("UTC" if moment.tzinfo is not None else None)
    if moment.tzinfo is not None and zone is not None:
        moment = moment.astimezone(ZoneInfo(zone) if zone != "UTC" else UTC)
    return {"dateTime": moment.replace(tzinfo=None).isoformat(), "timeZone": zone or "UTC"}


def to_graph(fields: EventFields) -> dict[str, object]:
    """The event properties `PATCH /me/events/{id}` takes for our event (event-update): subject,
    body (text), start, end, isAllDay, location, isCancelled is not writable (a cancel is a
    DELETE), attendees with their type. Overrides and recurrence are not sent: a calendar view
    event is one occurrence or a single instance."""
    assert fields.end is not None
    return {
        "subject": fields.title,
        "body": {"contentType": "text", "content": fields.description or ""},
        "start": _graph_time(fields.start),
        "end": _graph_time(fields.end),
        "isAllDay": fields.start.date is not None,
        "location": {"displayName": fields.location or ""},
        "attendees": [
            {
                "emailAddress": {"address": a.address, **({"name": a.name} if a.name else {})},
                "type": "optional" if a.role == "opt-participant" else "required",
            }
            for a in fields.attendees
        ],
    }
