"""Calendar events as the API takes and gives them, and the results of imports, invitations and RSVPs.

The fields follow RFC 5545 (iCalendar) section 3.6.1 VEVENT, with Google Calendar's shape for
times: `start`/`end` are `{date_time, time_zone}` (a timed event; `time_zone` an IANA name) or
`{date}` (all-day). A `date_time` without `time_zone` is floating (section 3.3.5, form #1) when it
has no offset, or UTC when it has one. Recurrence is RRULE / RDATE / EXDATE (sections 3.8.5.1-3);
their dates and an override's `recurrence_id` (section 3.8.4.4) are in the start's form: dates
for an all-day event, times in the start's zone otherwise (an offset given is converted to it).
An override changes one occurrence; a field left out (null) keeps the series' value.

Text is `SingleLine` / `MultiLine` (mailbridge.models.fields): control characters are refused
(422 `control_characters`). Addresses are stored lower-cased. Limits: `MAX_*` below.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    model_serializer,
    model_validator,
)
from typing_extensions import TypedDict

from mailbridge.calendar import times
from mailbridge.crm.models import COMPANY_ID, CONTACT_ID, DEAL_ID, Versioned, new_id
from mailbridge.models.base import Model
from mailbridge.models.fields import MultiLine, SingleLine, has_control
from mailbridge.models.numbers import DynamoInt

EVENT_PREFIX = "ev_"
EVENT_ID = re.compile(r"ev_[0-9a-f]{26}")
ACCOUNT_ID = r"^acc_[0-9a-f]{20}$"

MAX_TITLE = 500
MAX_LOCATION = 500
MAX_DESCRIPTION = 20_000
MAX_ATTENDEES = 300
MAX_OVERRIDES = 500
MAX_RRULES = 3
MAX_RECURRENCE_DATES = 1000
MAX_LINKED_CONTACTS = 20
MAX_UID = 500
MAX_RRULE = 500
UNSUPPORTED_FREQUENCIES = frozenset({"SECONDLY", "MINUTELY"})

PartStat = Literal["needs-action", "accepted", "declined", "tentative", "delegated"]
Reply = Literal["accepted", "declined", "tentative"]
AttendeeRole = Literal["chair", "req-participant", "opt-participant", "non-participant"]
EventStatus = Literal["confirmed", "tentative", "cancelled"]
EventSource = Literal["api", "import", "invitation", "google", "microsoft"]
InvitationStatus = Literal["pending", "accepted", "declined", "tentative", "cancelled"]

Title = Annotated[SingleLine, Field(max_length=MAX_TITLE)]
Location = Annotated[SingleLine, Field(max_length=MAX_LOCATION)]
Description = Annotated[MultiLine, Field(max_length=MAX_DESCRIPTION)]
Name = Annotated[SingleLine, Field(max_length=200)]


def new_event_id() -> str:
    return new_id(EVENT_PREFIX)


def _lower(value: str) -> str:
    return value.strip().lower()


Address = Annotated[EmailStr, AfterValidator(_lower)]


# ---------------------------------------------------------------------------------- times


def _parse_when(value: Any) -> Any:
    """ISO 8601 text: `YYYY-MM-DD` is a date, anything longer a date-time."""
    if isinstance(value, str):
        text = value.strip()
        return dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
    return value


When = Annotated[dt.datetime | dt.date, BeforeValidator(_parse_when)]
"""A date, or a date-time (with or without an offset), normalized by the event it belongs to."""


def _check_zone(value: str | None) -> str | None:
    if value is not None:
        times.zone(value)
    return value


class EventTimeOut(TypedDict, total=False):
    """How an EventTime is written: only the fields that apply."""

    date_time: dt.datetime
    date: dt.date
    time_zone: str


class EventTime(Model):
    """`{date_time, time_zone}` for a timed event or `{date}` for an all-day one.

    `date_time` with `time_zone`: read as a wall-clock time there (an offset given is converted
    to the zone). With an offset and no `time_zone`: that instant, in UTC. With neither: floating
    (RFC 5545 section 3.3.5). Seconds precision."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"date_time": "2026-10-14T09:00:00+02:00", "time_zone": "Europe/Berlin"}]
        },
    )

    date_time: dt.datetime | None = None
    date: dt.date | None = None
    time_zone: Annotated[str | None, AfterValidator(_check_zone)] = Field(
        default=None, description="IANA time zone name, e.g. Europe/Berlin", examples=["Europe/Berlin"]
    )

    @model_validator(mode="after")
    def _normalize(self) -> EventTime:
        if (self.date_time is None) == (self.date is None):
            raise ValueError("give exactly one of date_time (a timed event) and date (all-day)")
        if self.date_time is None:
            if self.time_zone is not None:
                raise ValueError("an all-day date has no time zone")
            return self
        value = self.date_time.replace(microsecond=0)
        if self.time_zone is not None:
            tz = times.zone(self.time_zone)
            value = value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)
        elif value.tzinfo is not None:
            value = value.astimezone(times.zone("UTC"))
            self.time_zone = "UTC"
        self.date_time = value
        return self

    @model_serializer(mode="plain")
    def _without_nulls(self) -> EventTimeOut:
        # `{date}` or `{date_time, time_zone}`: the fields that do not apply are left out.
        out: EventTimeOut = {}
        if self.date_time is not None:
            out["date_time"] = self.date_time
        if self.date is not None:
            out["date"] = self.date
        if self.time_zone is not None:
            out["time_zone"] = self.time_zone
        return out

    @classmethod
    def of(cls, value: times.DateOrTime) -> EventTime:
        """From a date, an aware datetime in a ZoneInfo zone, or a naive (floating) datetime."""
        if isinstance(value, dt.datetime):
            return cls(date_time=value, time_zone=times.zone_name(value) if value.tzinfo else None)
        return cls(date=value)

    @property
    def value(self) -> times.DateOrTime:
        return self.date_time if self.date_time is not None else self.date  # type: ignore[return-value]

    @property
    def all_day(self) -> bool:
        return self.date is not None

    @property
    def floating(self) -> bool:
        return self.date_time is not None and self.date_time.tzinfo is None

    @property
    def tz(self) -> ZoneInfo | None:
        tz = self.date_time.tzinfo if self.date_time is not None else None
        return tz if isinstance(tz, ZoneInfo) else None

    @property
    def instant(self) -> dt.datetime:
        return times.instant(self.value)


# ---------------------------------------------------------------------------------- people


class Person(Model):
    """An organizer: CAL-ADDRESS `mailto:` (RFC 5545 section 3.8.4.3) with its CN."""

    model_config = ConfigDict(extra="forbid")

    address: Address = Field(examples=["ada@example.com"])
    name: Name | None = None


class Attendee(Person):
    """RFC 5545 section 3.8.4.1: the address, PARTSTAT, ROLE and RSVP parameters (section 3.2)."""

    partstat: PartStat = "needs-action"
    role: AttendeeRole = "req-participant"
    rsvp: bool = Field(default=True, description="Whether a reply is expected")


def _unique_attendees(values: list[Attendee]) -> list[Attendee]:
    if len({a.address for a in values}) != len(values):
        raise ValueError("an address is listed twice among the attendees")
    return values


Attendees = Annotated[list[Attendee], Field(max_length=MAX_ATTENDEES), AfterValidator(_unique_attendees)]


# ---------------------------------------------------------------------------------- recurrence


def normalize_rrule(value: str) -> str:
    """An RRULE value (RFC 5545 section 3.3.10) in canonical form; ValueError when it is not one.

    An `RRULE:` prefix is accepted. FREQ is required, COUNT and UNTIL exclude each other
    (section 3.3.10), SECONDLY and MINUTELY are refused (they make thousands of occurrences a day).
    """
    text = value.strip()
    if text[:6].upper() == "RRULE:":
        text = text[6:]
    if not text or len(text) > MAX_RRULE or has_control(text):
        raise ValueError("not an RFC 5545 recurrence rule")
    from icalendar import vRecur

    try:
        recur = vRecur.from_ical(text)
        canonical = str(recur.to_ical().decode())
    except Exception:  # noqa: BLE001 - icalendar raises assorted types on malformed rules
        raise ValueError("not an RFC 5545 recurrence rule") from None
    frequency = recur.get("FREQ")
    if not frequency:
        raise ValueError("a recurrence rule needs FREQ")
    if str(frequency[0]).upper() in UNSUPPORTED_FREQUENCIES:
        raise ValueError("SECONDLY and MINUTELY recurrence rules are not supported")
    if "COUNT" in recur and "UNTIL" in recur:
        raise ValueError("a recurrence rule has COUNT or UNTIL, not both")
    return canonical


RRule = Annotated[str, AfterValidator(normalize_rrule)]


class Recurrence(Model):
    """RRULE, RDATE and EXDATE (RFC 5545 sections 3.8.5.1-3). Dates are in the event start's form."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"rrule": ["FREQ=WEEKLY;BYDAY=WE;COUNT=10"]}]}
    )

    rrule: Annotated[list[RRule], Field(max_length=MAX_RRULES)] = Field(
        default_factory=list, description="RRULE values, e.g. FREQ=WEEKLY;BYDAY=MO;UNTIL=20261231T000000Z"
    )
    rdate: Annotated[list[When], Field(max_length=MAX_RECURRENCE_DATES)] = Field(
        default_factory=list, description="Extra occurrence starts"
    )
    exdate: Annotated[list[When], Field(max_length=MAX_RECURRENCE_DATES)] = Field(
        default_factory=list, description="Occurrence starts that do not happen"
    )

    @property
    def empty(self) -> bool:
        return not (self.rrule or self.rdate)


class Override(Model):
    """One occurrence changed (a VEVENT with RECURRENCE-ID, RFC 5545 section 3.8.4.4).

    `recurrence_id` is the occurrence's original start; null fields keep the series' values
    (`end` null: the series' duration from this `start`)."""

    model_config = ConfigDict(extra="forbid")

    recurrence_id: When
    title: Title | None = None
    description: Description | None = None
    location: Location | None = None
    start: EventTime | None = None
    end: EventTime | None = None
    status: EventStatus | None = None
    attendees: Attendees | None = None


# ---------------------------------------------------------------------------------- events


def _until_for(recur: Any, start: EventTime) -> None:
    """UNTIL in the form RFC 5545 section 3.3.10 asks for, given DTSTART: a date for a date,
    UTC for a zoned start, floating for a floating one (an UNTIL date ends that day)."""
    until = recur.get("UNTIL")
    if not until:
        return
    value = until[0]
    if start.all_day:
        recur["UNTIL"] = [value.date() if isinstance(value, dt.datetime) else value]
        return
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(23, 59, 59))
    if start.floating:
        recur["UNTIL"] = [times.in_zone(value, None, all_day=False)]
    else:
        local = value if value.tzinfo else value.replace(tzinfo=start.tz)
        recur["UNTIL"] = [local.astimezone(dt.UTC)]


def _rrule_for(rule: str, start: EventTime) -> str:
    from icalendar import vRecur

    recur = vRecur.from_ical(rule)
    _until_for(recur, start)
    return str(recur.to_ical().decode())


class EventFields(Model):
    """What an event is, as iCalendar carries it (the VEVENT properties)."""

    model_config = ConfigDict(extra="forbid")

    title: Title = Field(default="", description="SUMMARY", examples=["Quarterly review"])
    description: Description | None = None
    location: Location | None = None
    start: EventTime
    end: EventTime | None = Field(
        default=None,
        description="Defaults as RFC 5545 section 3.6.1 says: the start for a timed event, the next "
        "day for an all-day one",
    )
    status: EventStatus = "confirmed"
    organizer: Person | None = None
    attendees: Attendees = Field(default_factory=list)
    recurrence: Recurrence | None = None
    overrides: Annotated[list[Override], Field(max_length=MAX_OVERRIDES)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> EventFields:
        start = self.start
        if self.end is None:
            self.end = EventTime(date=start.date + dt.timedelta(days=1)) if start.date else start
        end = self.end
        if start.all_day != end.all_day:
            raise ValueError("start and end are both dates (all-day) or both date-times")
        if start.floating != end.floating:
            raise ValueError("start and end are both floating or both in a time zone")
        if end.instant < start.instant:
            raise ValueError("the end is before the start")
        if self.recurrence is not None:
            self.recurrence = self._normalized_recurrence(self.recurrence)
        seen: set[str] = set()
        for override in self.overrides:
            override.recurrence_id = self.in_start_form(override.recurrence_id)
            key = times.order_key(override.recurrence_id)
            if key in seen:
                raise ValueError("two overrides have the same recurrence_id")
            seen.add(key)
            if override.start is not None and override.end is not None:
                if override.start.all_day != override.end.all_day:
                    raise ValueError("an override's start and end are both dates or both date-times")
                if override.end.instant < override.start.instant:
                    raise ValueError("an override ends before it starts")
        self.overrides.sort(key=lambda o: times.order_key(o.recurrence_id))
        return self

    def _normalized_recurrence(self, recurrence: Recurrence) -> Recurrence | None:
        rules = [_rrule_for(rule, self.start) for rule in recurrence.rrule]
        rdate = sorted({self.in_start_form(v) for v in recurrence.rdate}, key=times.order_key)
        exdate = sorted({self.in_start_form(v) for v in recurrence.exdate}, key=times.order_key)
        if not (rules or rdate or exdate):
            return None
        return Recurrence.model_construct(rrule=rules, rdate=rdate, exdate=exdate)

    def in_start_form(self, value: times.DateOrTime) -> times.DateOrTime:
        return times.in_zone(value, self.start.tz, all_day=self.start.all_day)

    @property
    def recurring(self) -> bool:
        return self.recurrence is not None and not self.recurrence.empty

    @property
    def duration(self) -> dt.timedelta:
        assert self.end is not None
        return self.end.instant - self.start.instant


class EventLinks(Model):
    """The CRM records an event belongs to (their timelines show it)."""

    model_config = ConfigDict(extra="forbid")

    contact_ids: Annotated[
        list[Annotated[str, Field(pattern=CONTACT_ID.pattern)]], Field(max_length=MAX_LINKED_CONTACTS)
    ] = Field(default_factory=list)
    company_id: Annotated[str, Field(pattern=COMPANY_ID.pattern)] | None = None
    deal_id: Annotated[str, Field(pattern=DEAL_ID.pattern)] | None = None

    @property
    def record_ids(self) -> list[str]:
        ids = list(dict.fromkeys(self.contact_ids))
        ids += [i for i in (self.company_id, self.deal_id) if i]
        return ids


_EXAMPLE: dict[str, Any] = {
    "title": "Quarterly review",
    "start": {"date_time": "2026-10-14T09:00:00", "time_zone": "Europe/Berlin"},
    "end": {"date_time": "2026-10-14T10:00:00", "time_zone": "Europe/Berlin"},
    "location": "Room 4",
    "attendees": [{"address": "carol@customer.example", "name": "Carol"}],
    "recurrence": {"rrule": ["FREQ=WEEKLY;COUNT=6"]},
    "contact_ids": ["ct_0193a5b2c4d1e2f3a4b5c6d7e8"],
}


class EventCreate(EventFields, EventLinks):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})


class EventUpdate(EventCreate):
    """The whole event as it should be (PUT): fields left out take their defaults."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{**_EXAMPLE, "version": 1}]})

    version: DynamoInt | None = Field(
        default=None,
        ge=1,
        description="Optional: the version you read; 409 `version_conflict` if the event changed since",
    )


class Invitation(Model):
    """An invitation someone else sent (an iTIP REQUEST received by one of the user's mailboxes)."""

    status: InvitationStatus
    account_id: str = Field(description="The mailbox that received it (and sends the reply)")
    attendee: str = Field(description="The invited address (this user's)")
    email_id: str | None = None
    received_at: dt.datetime


class Event(EventFields, EventLinks, Versioned):
    """A stored event (a series, for a recurring one, with its overrides)."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    uid: str = Field(description="iCalendar UID (RFC 5545 section 3.8.4.7), unique per tenant")
    sequence: int = Field(default=0, description="SEQUENCE: goes up when the time or recurrence changes")
    source: EventSource = "api"
    invitation: Invitation | None = None
    mail_account_id: str | None = Field(
        default=None, description="The organizer's mailbox the invitations were sent from"
    )
    invited_sequence: int | None = Field(default=None, description="SEQUENCE of the last REQUEST sent")

    def fields(self) -> EventFields:
        return EventFields.model_validate(self.model_dump(include=set(EventFields.model_fields)))

    def links(self) -> EventLinks:
        return EventLinks.model_validate(self.model_dump(include=set(EventLinks.model_fields)))


# ---------------------------------------------------------------------------------- listings


class Occurrence(Model):
    """One occurrence of an event in a range (a one-off event is its own single occurrence)."""

    event_id: str
    uid: str
    recurrence_id: When | None = Field(default=None, description="The original start (recurring events)")
    start: EventTime
    end: EventTime
    title: str
    location: str | None = None
    status: EventStatus
    all_day: bool
    recurring: bool
    overridden: bool = Field(description="This occurrence was changed on its own")
    invitation_status: InvitationStatus | None = None


class Occurrences(Model):
    items: list[Occurrence] = Field(description="Ordered by start")
    truncated: bool = Field(
        description="More occurrences start in the range than `limit`: ask again from `next_from`"
    )
    next_from: dt.datetime | None = None


class CalendarTimelineItem(Model):
    """An event on a contact's, company's or deal's timeline: once, at its (first) start."""

    type: Literal["event"] = "event"
    event_id: str
    title: str
    date: dt.datetime = Field(description="The start as a UTC instant: where the timeline places it")
    start: EventTime
    end: EventTime
    all_day: bool
    location: str | None = None
    status: EventStatus
    recurring: bool


class Deleted(Model):
    id: str
    deleted: bool = True


# ---------------------------------------------------------------------------------- import


ImportOutcome = Literal["imported", "updated", "unchanged", "skipped"]


class ImportedEvent(Model):
    uid: str | None
    event_id: str | None = None
    result: ImportOutcome
    reason: str | None = Field(default=None, description="Why it was skipped (a stable code)")
    title: str | None = None
    notes: list[str] = Field(
        default_factory=list, description="What was adapted, e.g. `time_zone_replaced_by_utc`"
    )


class ImportResult(Model):
    method: str | None = Field(default=None, description="The file's METHOD (RFC 5546), if any")
    imported: int
    updated: int
    unchanged: int
    skipped: int
    events: list[ImportedEvent]


# ---------------------------------------------------------------------------------- iTIP and RSVP


class InviteRequest(Model):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"account_id": "acc_5f0c1d2e3a4b5c6d7e8f", "message": "See you!"}]},
    )

    account_id: str = Field(
        pattern=ACCOUNT_ID,
        description="The organizer's connected mailbox; it becomes the organizer when the event has none",
    )
    message: Annotated[MultiLine, Field(max_length=5000)] | None = None


class SentInvitation(Model):
    address: str
    email_id: str


class InviteResult(Model):
    event_id: str
    method: Literal["REQUEST", "CANCEL"]
    sequence: int
    sent: list[SentInvitation]


class RespondRequest(Model):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"status": "accepted"}]})

    status: Reply
    comment: Annotated[SingleLine, Field(max_length=500)] | None = None


class RsvpResult(Model):
    event_id: str
    title: str
    start: EventTime
    attendee: str
    status: Reply
    changed: bool = Field(description="false when the attendee had already answered this")


class FeedInfo(Model):
    url: str = Field(description="The subscription URL (no bearer token needed: keep it secret)")
    rotated_at: dt.datetime | None = Field(default=None, description="When the last rotation happened")
