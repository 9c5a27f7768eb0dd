"""Google Calendar events -> our events, through iCalendar.

A Google Event resource (developers.google.com/calendar/api/v3/reference/events) is iCalendar
with JSON field names: `iCalUID` is UID, `sequence` SEQUENCE, `recurrence` holds RRULE / EXRULE /
RDATE / EXDATE lines as RFC 5545 writes them, an exception is a VEVENT with the series' UID and a
RECURRENCE-ID (`originalStartTime`). So each page is written as one VCALENDAR and read with
`ics.parse_calendar`, the importer every `.ics` file goes through: recurrence, overrides, time
zones and the skip reasons are the same as for an import.

Mapping: `start`/`end` `{date}` -> DATE values (end exclusive in both); `{dateTime, timeZone}` ->
the wall-clock time in that IANA zone (TZID), `{dateTime}` alone -> UTC; `status` -> STATUS;
`organizer` -> ORGANIZER; `attendees[]` -> ATTENDEE with PARTSTAT from `responseStatus`
(needsAction, accepted, declined, tentative), ROLE OPT-PARTICIPANT when `optional`; a cancelled
occurrence (`status: cancelled` with `recurringEventId`) -> an override with STATUS:CANCELLED at
its original start. A `recurrence` line that is not one of the four properties, or holds a
control character, is dropped (never spliced into the text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from mailbridge.calendar import ics, times
from mailbridge.calendar.models import EventFields, EventTime, Override
from mailbridge.providers.google_calendar.models import EventDateTime, GoogleEvent

RECURRENCE_LINE = re.compile(r"(?:RRULE|EXRULE|RDATE|EXDATE)[;:][^\x00-\x1f\x7f]{1,2000}", re.IGNORECASE)
PARTSTAT = {
    "needsAction": "NEEDS-ACTION",
    "accepted": "ACCEPTED",
    "declined": "DECLINED",
    "tentative": "TENTATIVE",
}


@dataclass
class Member:
    """A Google event to write into the VCALENDAR, with the UID its series has."""

    event: GoogleEvent
    uid: str


def when(value: EventDateTime) -> date | datetime | None:
    """A Google EventDateTime as iCalendar reads it (None when it has neither field)."""
    if value.date is not None:
        return value.date
    if value.date_time is None:
        return None
    instant = value.date_time.replace(microsecond=0)
    if instant.tzinfo is None:
        return instant  # not produced by Google; read as floating
    if value.time_zone and times.is_zone_name(value.time_zone):
        return instant.astimezone(ZoneInfo(value.time_zone))
    return instant.astimezone(UTC)


def _vevent(member: Member) -> bytes:
    from icalendar import Event as VEvent
    from icalendar import vCalAddress

    event = member.event
    vevent = VEvent()
    vevent.add("UID", member.uid)
    vevent.add("SEQUENCE", event.sequence)
    original = when(event.original_start_time) if event.original_start_time else None
    start = when(event.start) if event.start else original
    if start is not None:
        vevent.add("DTSTART", start)
    end = when(event.end) if event.end else None
    if end is not None:
        vevent.add("DTEND", end)
    if original is not None and event.recurring_event_id:
        vevent.add("RECURRENCE-ID", original)
    vevent.add("STATUS", event.status.upper())
    for name, value in (
        ("SUMMARY", event.summary),
        ("DESCRIPTION", event.description),
        ("LOCATION", event.location),
    ):
        if value:
            vevent.add(name, value)
    if event.organizer is not None and event.organizer.email:
        organizer = vCalAddress(f"mailto:{event.organizer.email}")
        if event.organizer.display_name:
            organizer.params["CN"] = event.organizer.display_name
        vevent.add("ORGANIZER", organizer)
    for attendee in event.attendees:
        if not attendee.email:
            continue
        prop = vCalAddress(f"mailto:{attendee.email}")
        if attendee.display_name:
            prop.params["CN"] = attendee.display_name
        prop.params["PARTSTAT"] = PARTSTAT[attendee.response_status]
        prop.params["ROLE"] = "OPT-PARTICIPANT" if attendee.optional else "REQ-PARTICIPANT"
        vevent.add("ATTENDEE", prop)
    text = bytes(vevent.to_ical())
    lines = [line for line in event.recurrence if RECURRENCE_LINE.fullmatch(line)]
    if lines and not event.recurring_event_id:
        tail = b"END:VEVENT\r\n"
        text = text[: -len(tail)] + "".join(f"{line}\r\n" for line in lines).encode() + tail
    return text


def to_calendar(members: Sequence[Member], masters: Mapping[str, bytes] | None = None) -> bytes:
    """One VCALENDAR of the given events (a series and its exceptions share their UID), after
    the series VEVENTs in `masters` (by UID)."""
    body = b"".join((masters or {}).values()) + b"".join(_vevent(member) for member in members)
    return (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailbridge//google//EN\r\n"
        + body
        + b"END:VCALENDAR\r\n"
    )


def parse(members: Sequence[Member], masters: Mapping[str, bytes] | None = None) -> ics.ParsedFile:
    """The events of `members` as an import reads them (empty when there are none).

    `masters`: the stored series VEVENT (by UID) of exceptions whose series is not among
    `members` (an incremental page lists only the occurrences that changed). An override holds
    what differs from its series (`ics._override`), so an exception is read against its real
    series; the event stays `partial` (only its overrides are news). Without it an exception
    would be read against a series made of itself, and every field of its override would be
    empty."""
    if not members:
        return ics.ParsedFile(method=None, events=[], skipped=[])
    given = {uid: text for uid, text in (masters or {}).items() if any(m.uid == uid for m in members)}
    parsed = ics.parse_calendar(to_calendar(members, given))
    for event in parsed.events:
        if event.uid in given:
            event.partial = True
    return parsed


def series_vevent(uid: str, sequence: int, fields: EventFields, dtstamp: datetime) -> bytes:
    """Our stored series as its VEVENT alone (no overrides), for `parse`'s `masters`."""
    item = ics.Outgoing(uid=uid, sequence=sequence, fields=fields, dtstamp=dtstamp, overrides=False)
    return bytes(ics.vevents(item)[0].to_ical())


# ---------------------------------------------------------------------------------- push-back

RESPONSE_STATUS = {value: key for key, value in PARTSTAT.items()}


def _event_time(value: EventTime) -> dict[str, str]:
    """`{date}` or `{dateTime, timeZone}` (Event resource); a floating time is sent in UTC."""
    if value.date is not None:
        return {"date": value.date.isoformat()}
    assert value.date_time is not None
    return {"dateTime": value.date_time.isoformat(), "timeZone": value.time_zone or "UTC"}


def _date_line(name: str, value: date | datetime) -> str:
    """An RDATE / EXDATE line as RFC 5545 section 3.8.5 writes one value."""
    if not isinstance(value, datetime):
        return f"{name};VALUE=DATE:{value.strftime('%Y%m%d')}"
    if value.tzinfo is None:
        return f"{name}:{value.strftime('%Y%m%dT%H%M%S')}"
    zone = times.zone_name(value)
    if zone in (None, "UTC"):
        return f"{name}:{value.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    return f"{name};TZID={zone}:{value.strftime('%Y%m%dT%H%M%S')}"


def to_google(fields: EventFields) -> dict[str, object]:
    """The Event resource fields `events.patch` takes for our event's series (summary,
    description, location, status, start, end, recurrence lines, attendees with responseStatus).
    Overrides are not sent (Google keeps them as separate exception events)."""
    assert fields.end is not None
    body: dict[str, object] = {
        "summary": fields.title,
        "description": fields.description or "",
        "location": fields.location or "",
        "status": fields.status,
        "start": _event_time(fields.start),
        "end": _event_time(fields.end),
        "attendees": [
            {
                "email": a.address,
                **({"displayName": a.name} if a.name else {}),
                "responseStatus": RESPONSE_STATUS.get(a.partstat.upper(), "needsAction"),
                "optional": a.role == "opt-participant",
            }
            for a in fields.attendees
        ],
    }
    if fields.recurrence is not None:
        lines = [f"RRULE:{rule}" for rule in fields.recurrence.rrule]
        lines += [_date_line("RDATE", d) for d in fields.recurrence.rdate]
        lines += [_date_line("EXDATE", d) for d in fields.recurrence.exdate]
        body["recurrence"] = lines
    return body


def occurrence_start(fields: EventFields, override: Override) -> EventTime:
    """Where an overridden occurrence starts: the override's start, else its original start
    (RECURRENCE-ID) in the series' zone."""
    if override.start is not None:
        return override.start
    return EventTime.of(fields.in_start_form(override.recurrence_id))


def to_google_occurrence(fields: EventFields, override: Override) -> dict[str, object]:
    """The Event resource fields `events.patch` takes for one occurrence (an instance id) of
    our series: the occurrence as the override makes it, every field resolved (a field the
    override leaves null takes the series' value; a missing end is the start plus the series'
    duration), since Google stores the patched instance as an exception that keeps its own
    values from then on, as the pull reads them back (RFC 5545 section 3.8.4.4: an override
    VEVENT holds the occurrence's properties)."""
    assert fields.end is not None
    start = occurrence_start(fields, override)
    end = override.end
    if end is None:
        if start.date is not None:
            duration_days = (fields.end.instant - fields.start.instant).days
            end = EventTime(date=start.date + timedelta(days=max(duration_days, 1)))
        else:
            assert start.date_time is not None
            end = EventTime.of(times.add_exact(start.date_time, fields.duration))
    occurrence = fields.model_copy(
        update={
            "title": override.title if override.title is not None else fields.title,
            "description": override.description if override.description is not None else fields.description,
            "location": override.location if override.location is not None else fields.location,
            "status": override.status or fields.status,
            "attendees": override.attendees if override.attendees is not None else fields.attendees,
            "start": start,
            "end": end,
            "recurrence": None,
            "overrides": [],
        }
    )
    return to_google(occurrence)
