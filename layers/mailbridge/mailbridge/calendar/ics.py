"""iCalendar text (RFC 5545) <-> events, with `icalendar` (imported here only, on first use).

`parse_calendar(data)` reads every VEVENT of a file (or of several VCALENDARs in one file):
VTIMEZONE definitions, RRULE / RDATE / EXDATE, RECURRENCE-ID overrides, DURATION instead of
DTEND, floating and date-only times, and X-WR-TIMEZONE (a calendar-wide zone for times written
in UTC or floating, as Google Calendar exports them; applied with `x-wr-timezone`). Events are
grouped by UID into a series and its overrides; each becomes a `ParsedEvent` or a
`SkippedEvent` with a stable reason code:

    no_start              no DTSTART, or one that cannot be read
    invalid_end           a DTEND / DURATION that cannot be read
    invalid_rrule         an RRULE that is not RFC 5545 (or is SECONDLY / MINUTELY)
    too_many_attendees    more than MAX_ATTENDEES (models)
    too_many_overrides    more than MAX_OVERRIDES
    too_many_dates        more than MAX_RECURRENCE_DATES RDATE or EXDATE values
    duplicate_uid         a second series with a UID already read (the highest SEQUENCE wins)
    duplicate_override    a second override of the same occurrence (the highest SEQUENCE wins)
    unparseable           a component the parser cannot read at all
    invalid_event         anything else the event model refuses

What is adapted rather than refused is listed in the event's `notes`: `time_zone_replaced_by_utc`
(a TZID that is no IANA zone and maps to none: the instant is kept, in UTC), `end_before_start`
(the end is moved to the start), `text_truncated`, `attendee_dropped` (not a mailto: address),
`organizer_dropped`, `rdate_dropped` / `exdate_dropped` (unreadable values), `uid_generated`
(the VEVENT had no UID: one is derived from its content, so importing it again finds it).

A file that is not iCalendar at all raises `IcsError` (code `not_icalendar`, `too_deep` or
`too_many_events`). A file the parser refuses as a whole is read again component by component,
so one broken line costs one event, not the file.

`build_calendar(events, method=...)` writes events back (a VTIMEZONE for every TZID used), so that
`parse_calendar(build_calendar(x))` gives the same events.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from mailbridge.calendar import times
from mailbridge.calendar.models import (
    MAX_ATTENDEES,
    MAX_DESCRIPTION,
    MAX_LOCATION,
    MAX_OVERRIDES,
    MAX_RECURRENCE_DATES,
    MAX_TITLE,
    MAX_UID,
    Attendee,
    EventFields,
    EventTime,
    Override,
    Person,
    normalize_rrule,
)
from mailbridge.errors import Invalid

if TYPE_CHECKING:
    from icalendar import Calendar, Component
    from icalendar import Event as VEvent

MAX_DEPTH = 8  # VCALENDAR > VEVENT > VALARM is 3; VTIMEZONE > STANDARD is 3
MAX_EVENTS = 1000
PRODID = "-//mailbridge//calendar//EN"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r" *[\t\r\n]+ *")
_BEGIN_END = re.compile(rb"^(BEGIN|END):", re.IGNORECASE | re.MULTILINE)
_VEVENT = re.compile(rb"^BEGIN:VEVENT\s*$", re.IGNORECASE | re.MULTILINE)
_PARTSTATS = {"NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED"}
_ROLES = {"CHAIR", "REQ-PARTICIPANT", "OPT-PARTICIPANT", "NON-PARTICIPANT"}
_STATUSES = {"CONFIRMED", "TENTATIVE", "CANCELLED"}
# Prefixes vendors put before IANA names (RFC 5545 section 3.2.19 "globally unique" TZIDs).
_TZID_PREFIX = re.compile(r"^(?:/[^/]+/[^/]+/|/|posix/|right/|(?:.*/)?tzfile/)", re.IGNORECASE)


class IcsError(Invalid):
    """The input is not an iCalendar file we can read at all."""


@dataclass
class ParsedEvent:
    uid: str
    sequence: int
    fields: EventFields
    notes: list[str] = field(default_factory=list)
    dtstamp: datetime | None = None
    partial: bool = False  # only overrides were in the file: a series made of those occurrences


@dataclass
class SkippedEvent:
    uid: str | None
    reason: str
    title: str | None = None


@dataclass
class ParsedFile:
    method: str | None
    events: list[ParsedEvent]
    skipped: list[SkippedEvent]


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------- text


def clean_line(value: Any, limit: int, notes: list[str]) -> str:
    """One line of text: line breaks and tabs become spaces, other control characters go."""
    text = _CONTROL.sub("", _SPACES.sub(" ", str(value))).strip()
    if len(text) > limit:
        notes.append("text_truncated")
        text = text[:limit].rstrip()
    return text


def clean_text(value: Any, limit: int, notes: list[str]) -> str:
    """Multi-line text: tabs and line breaks stay (CR LF becomes LF), other control characters go."""
    text = _CONTROL.sub("", str(value).replace("\r\n", "\n")).strip()
    if len(text) > limit:
        notes.append("text_truncated")
        text = text[:limit].rstrip()
    return text


def _optional(
    component: Component, name: str, limit: int, notes: list[str], *, multiline: bool = False
) -> str | None:
    value = component.get(name)
    if value is None:
        return None
    if isinstance(value, list):
        value = value[0] if value else ""
    text = clean_text(value, limit, notes) if multiline else clean_line(value, limit, notes)
    return text or None


def address_of(value: Any) -> str | None:
    """The address of a CAL-ADDRESS (`mailto:` URI, RFC 5545 section 3.3.3), lower-cased."""
    text = str(value).strip()
    if text[:7].lower() == "mailto:":
        text = text[7:]
    text = text.strip().lower()
    if not text or len(text) > 254 or "@" not in text or _CONTROL.search(text) or " " in text:
        return None
    from email_validator import EmailNotValidError, validate_email

    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return text


# ---------------------------------------------------------------------------------- times


def _zone_for(value: datetime, tzid: str | None) -> ZoneInfo | None:
    """The IANA zone of a parsed time: its own ZoneInfo, or one its TZID names (Windows names
    through icalendar's CLDR table, vendor-prefixed names without the prefix)."""
    tz = value.tzinfo
    if isinstance(tz, ZoneInfo):
        return tz if times.is_zone_name(tz.key) else None
    if tz is not None and value.utcoffset() == timedelta(0) and tz.tzname(value) in {"UTC", "Z", "GMT"}:
        return ZoneInfo("UTC")
    if not tzid:
        return None
    from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

    for candidate in (tzid, WINDOWS_TO_OLSON.get(tzid), _TZID_PREFIX.sub("", tzid)):
        if candidate and times.is_zone_name(candidate):
            return ZoneInfo(candidate)
    return None


def read_time(prop: Any, notes: list[str]) -> times.DateOrTime:
    """A DTSTART-like property as a date, a floating datetime or a datetime in an IANA zone."""
    value = prop.dt
    if isinstance(value, tuple):  # a PERIOD (RDATE): its start
        value = value[0]
    if isinstance(value, datetime):
        value = value.replace(microsecond=0)
        if value.tzinfo is None:
            return value
        tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
        tz = _zone_for(value, str(tzid) if tzid else None)
        if tz is None:
            notes.append("time_zone_replaced_by_utc")
            return value.astimezone(ZoneInfo("UTC"))
        return value.astimezone(tz)
    if isinstance(value, date):
        return value
    raise _Skip("no_start")


def _time_values(component: Component, name: str) -> list[Any]:
    """Every value of a multi-valued date property (RDATE, EXDATE), however often it appears."""
    raw = component.get(name)
    if raw is None:
        return []
    props = raw if isinstance(raw, list) else [raw]
    out: list[Any] = []
    for prop in props:
        dts = getattr(prop, "dts", None)
        if dts is None:
            raise ValueError("unreadable date list")
        out.extend(dts)
    return out


def _dates(component: Component, name: str, notes: list[str]) -> list[times.DateOrTime]:
    try:
        values = [read_time(v, notes) for v in _time_values(component, name)]
    except (ValueError, TypeError, AttributeError, _Skip):
        notes.append(f"{name.lower()}_dropped")
        return []
    if len(values) > MAX_RECURRENCE_DATES:
        raise _Skip("too_many_dates")
    return values


def _start(component: Component, notes: list[str]) -> times.DateOrTime:
    prop = component.get("DTSTART")
    if prop is None or not hasattr(prop, "dt"):
        raise _Skip("no_start")
    try:
        return read_time(prop, notes)
    except (ValueError, TypeError, AttributeError) as exc:
        raise _Skip("no_start") from exc


def _like(value: times.DateOrTime, start: times.DateOrTime) -> times.DateOrTime:
    """An end in the start's form: a date for a date; floating for floating; zoned otherwise."""
    if isinstance(start, datetime):
        if not isinstance(value, datetime):
            value = datetime.combine(value, datetime.min.time())
        if start.tzinfo is None:
            return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
        return value if value.tzinfo else value.replace(tzinfo=start.tzinfo)
    return value.date() if isinstance(value, datetime) else value


def _end(component: Component, start: times.DateOrTime, notes: list[str]) -> times.DateOrTime:
    """DTEND, or DTSTART + DURATION (RFC 5545 section 3.8.2.5; days nominal, the rest exact),
    or the RFC default: the next day for a date, the start itself for a date-time."""
    try:
        if component.get("DTEND") is not None:
            end = _like(read_time(component.get("DTEND"), notes), start)
        elif component.get("DURATION") is not None:
            duration = component.get("DURATION").dt
            if not isinstance(duration, timedelta):
                raise TypeError("not a duration")
            if isinstance(start, datetime):
                end = times.add_exact(
                    start + timedelta(days=duration.days), duration - timedelta(days=duration.days)
                )
            else:
                end = start + timedelta(days=max(duration.days, 0))
        else:
            end = start + timedelta(days=1) if not isinstance(start, datetime) else start
    except (ValueError, TypeError, AttributeError, OverflowError, _Skip) as exc:
        raise _Skip("invalid_end") from exc
    if times.instant(end) < times.instant(start):
        notes.append("end_before_start")
        end = start if isinstance(start, datetime) else start + timedelta(days=1)
    return end


# ---------------------------------------------------------------------------------- properties


def _person(prop: Any, notes: list[str]) -> dict[str, Any] | None:
    address = address_of(prop)
    if address is None:
        return None
    params = getattr(prop, "params", {}) or {}
    name = clean_line(params.get("CN", ""), 200, notes) if params.get("CN") else ""
    return {"address": address, "name": name or None}


def _attendees(component: Component, notes: list[str]) -> list[dict[str, Any]]:
    raw = component.get("ATTENDEE")
    props = raw if isinstance(raw, list) else ([raw] if raw is not None else [])
    found: dict[str, dict[str, Any]] = {}
    for prop in props:
        person = _person(prop, notes)
        if person is None:
            notes.append("attendee_dropped")
            continue
        params = getattr(prop, "params", {}) or {}
        partstat = str(params.get("PARTSTAT", "NEEDS-ACTION")).upper()
        role = str(params.get("ROLE", "REQ-PARTICIPANT")).upper()
        found.setdefault(
            person["address"],
            {
                **person,
                "partstat": (partstat if partstat in _PARTSTATS else "NEEDS-ACTION").lower(),
                "role": (role if role in _ROLES else "REQ-PARTICIPANT").lower(),
                "rsvp": str(params.get("RSVP", "FALSE")).upper() == "TRUE",
            },
        )
    if len(found) > MAX_ATTENDEES:
        raise _Skip("too_many_attendees")
    return list(found.values())


def _organizer(component: Component, notes: list[str]) -> dict[str, Any] | None:
    prop = component.get("ORGANIZER")
    if prop is None:
        return None
    if isinstance(prop, list):
        prop = prop[0]
    person = _person(prop, notes)
    if person is None:
        notes.append("organizer_dropped")
    return person


def _status(component: Component) -> str:
    status = str(component.get("STATUS", "CONFIRMED")).strip().upper()
    return (status if status in _STATUSES else "CONFIRMED").lower()


def _repaired_rule(text: str, notes: list[str]) -> str | None:
    """An RRULE as written, with the common slips of real exporters undone: white space inside
    the value, empty parts, and COUNT next to UNTIL (UNTIL is kept). None for an empty value."""
    parts = [part for part in re.sub(r"\s+", "", text).split(";") if part]
    if not parts:
        notes.append("rrule_dropped")
        return None
    names = [part.partition("=")[0].upper() for part in parts]
    if "COUNT" in names and "UNTIL" in names:
        parts = [part for part, name in zip(parts, names, strict=True) if name != "COUNT"]
    repaired = ";".join(parts)
    if repaired != text.strip():
        notes.append("rrule_repaired")
    return repaired


def _rrules(component: Component, notes: list[str]) -> list[str]:
    from icalendar import vBroken

    raw = component.get("RRULE")
    props = raw if isinstance(raw, list) else ([raw] if raw is not None else [])
    rules: list[str] = []
    for prop in props:
        try:
            # A value icalendar could not read (vBroken) is kept as written: str() is that text.
            text = (
                str(prop)
                if isinstance(prop, vBroken) or not hasattr(prop, "to_ical")
                else prop.to_ical().decode()
            )
            repaired = _repaired_rule(text, notes)
            if repaired is None:
                continue
            rule = normalize_rrule(repaired)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Skip("invalid_rrule") from exc
        if rule not in rules:
            rules.append(rule)
    return rules[:3]


def _sequence(component: Component) -> int:
    try:
        value = int(str(component.get("SEQUENCE", 0)).strip())
    except ValueError:
        return 0
    return max(0, min(value, 2**31 - 1))


def _uid(component: Component, notes: list[str]) -> str:
    uid = clean_line(component.get("UID", ""), MAX_UID, [])
    if uid:
        return uid
    notes.append("uid_generated")
    content = component.to_ical() if hasattr(component, "to_ical") else repr(component).encode()
    return f"import-{hashlib.sha256(content).hexdigest()[:32]}@mailbridge"


def _dtstamp(component: Component) -> datetime | None:
    prop = component.get("DTSTAMP")
    value = getattr(prop, "dt", None)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


# ---------------------------------------------------------------------------------- VEVENT -> event


@dataclass
class _Raw:
    """One VEVENT, read: the master of a series (rid None) or an override."""

    uid: str
    sequence: int
    rid: times.DateOrTime | None
    start: times.DateOrTime
    end: times.DateOrTime
    values: dict[str, Any]
    notes: list[str]
    dtstamp: datetime | None
    title: str | None


def _read_vevent(component: Component) -> _Raw:
    notes: list[str] = []
    uid = _uid(component, notes)
    start = _start(component, notes)
    end = _end(component, start, notes)
    rid_prop = component.get("RECURRENCE-ID")
    rid = read_time(rid_prop, notes) if rid_prop is not None and hasattr(rid_prop, "dt") else None
    title = _optional(component, "SUMMARY", MAX_TITLE, notes) or ""
    values: dict[str, Any] = {
        "title": title,
        "description": _optional(component, "DESCRIPTION", MAX_DESCRIPTION, notes, multiline=True),
        "location": _optional(component, "LOCATION", MAX_LOCATION, notes),
        "status": _status(component),
        "organizer": _organizer(component, notes),
        "attendees": _attendees(component, notes),
    }
    if rid is None:
        values["recurrence"] = {
            "rrule": _rrules(component, notes),
            "rdate": _dates(component, "RDATE", notes),
            "exdate": _dates(component, "EXDATE", notes),
        }
    return _Raw(uid, _sequence(component), rid, start, end, values, notes, _dtstamp(component), title or None)


def _time(value: times.DateOrTime) -> dict[str, Any]:
    return EventTime.of(value).model_dump(exclude_none=True)


def _override(master: EventFields, raw: _Raw) -> Override:
    assert raw.rid is not None
    rid = master.in_start_form(raw.rid)
    start = EventTime.of(raw.start)
    end = EventTime.of(raw.end)
    values = raw.values
    same_start = start.all_day == master.start.all_day and times.instant(start.value) == times.instant(rid)
    same_length = end.instant - start.instant == master.duration and end.all_day == start.all_day
    master_attendees = [a.model_dump() for a in master.attendees]
    return Override.model_validate(
        {
            "recurrence_id": rid,
            "title": None if values["title"] == master.title else values["title"],
            "description": None
            if values["description"] in (None, master.description)
            else values["description"],
            "location": None if values["location"] in (None, master.location) else values["location"],
            "start": None if same_start else start,
            "end": None if same_length else end,
            "status": None if values["status"] == master.status else values["status"],
            "attendees": None
            if not values["attendees"] or values["attendees"] == master_attendees
            else values["attendees"],
        }
    )


def _series(master: _Raw, overrides: Sequence[_Raw]) -> ParsedEvent:
    if len(overrides) > MAX_OVERRIDES:
        raise _Skip("too_many_overrides")
    notes = list(dict.fromkeys([*master.notes, *(n for o in overrides for n in o.notes)]))
    try:
        fields = EventFields.model_validate(
            {**master.values, "start": _time(master.start), "end": _time(master.end)}
        )
        built = [_override(fields, o) for o in overrides]
        if built:
            fields = EventFields.model_validate(
                {**fields.model_dump(), "overrides": [o.model_dump() for o in built]}
            )
    except ValidationError as exc:
        raise _Skip("invalid_event") from exc
    return ParsedEvent(master.uid, master.sequence, fields, notes, master.dtstamp)


def _orphans_master(overrides: Sequence[_Raw]) -> _Raw:
    """Overrides whose series is not in the file (an invitation to a few occurrences): a series
    made of exactly those occurrences (RDATEs at their RECURRENCE-IDs), each overridden."""
    first = min(overrides, key=lambda o: times.order_key(o.rid or o.start))
    start = first.rid or first.start
    length = times.instant(first.end) - times.instant(first.start)
    end = (
        times.add_exact(start, length)
        if isinstance(start, datetime)
        else start + timedelta(days=max(1, length.days))
    )
    others = [o.rid for o in overrides if o is not first]
    values = {**first.values, "recurrence": {"rrule": [], "rdate": others, "exdate": []}}
    return _Raw(
        first.uid, first.sequence, None, start, end, values, list(first.notes), first.dtstamp, first.title
    )


def _group(raws: Iterable[_Raw], skipped: list[SkippedEvent]) -> list[ParsedEvent]:
    masters: dict[str, _Raw] = {}
    overrides: dict[str, dict[str, _Raw]] = {}
    order: list[str] = []
    for raw in raws:
        if raw.uid not in order:
            order.append(raw.uid)
        if raw.rid is None:
            kept = masters.get(raw.uid)
            if kept is not None:
                loser = raw if raw.sequence < kept.sequence else kept
                skipped.append(SkippedEvent(loser.uid, "duplicate_uid", loser.title))
                if loser is kept:
                    masters[raw.uid] = raw
            else:
                masters[raw.uid] = raw
            continue
        bucket = overrides.setdefault(raw.uid, {})
        key = times.order_key(raw.rid)
        kept_override = bucket.get(key)
        if kept_override is not None:
            loser = raw if raw.sequence < kept_override.sequence else kept_override
            skipped.append(SkippedEvent(loser.uid, "duplicate_override", loser.title))
            if loser is kept_override:
                bucket[key] = raw
        else:
            bucket[key] = raw
    out: list[ParsedEvent] = []
    for uid in order:
        instances = list(overrides.get(uid, {}).values())
        master = masters.get(uid)
        try:
            partial = master is None
            if master is None:
                master = _orphans_master(instances)
            parsed = _series(master, instances)
            parsed.partial = partial
            out.append(parsed)
        except _Skip as skip:
            skipped.append(SkippedEvent(uid, skip.reason, master.title if master else None))
    return out


# ---------------------------------------------------------------------------------- files


def _decode(data: bytes | str) -> str:
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return data.removeprefix("\ufeff")


def _check_shape(text: str) -> None:
    raw = text.encode("utf-8", "replace")
    if not raw.lstrip()[:6].upper() == b"BEGIN:":
        raise IcsError(
            "the file is not iCalendar (RFC 5545): it does not start with BEGIN:", code="not_icalendar"
        )
    depth = deepest = 0
    for match in _BEGIN_END.finditer(raw):
        depth += 1 if match.group(1).upper() == b"BEGIN" else -1
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            raise IcsError(f"components nest deeper than {MAX_DEPTH} levels", code="too_deep")
    if len(_VEVENT.findall(raw)) > MAX_EVENTS:
        raise IcsError(f"more than {MAX_EVENTS} events in one file", code="too_many_events")


def _unfolded_lines(text: str) -> list[str]:
    return re.sub(r"\r?\n[ \t]", "", text).replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _blocks(text: str) -> tuple[list[str], list[str], dict[str, str]]:
    """The VEVENT and VTIMEZONE blocks of a file the parser refused, and the calendar's own
    properties (METHOD, X-WR-TIMEZONE ...). Lines outside any component are ignored."""
    events: list[str] = []
    zones: list[str] = []
    top: dict[str, str] = {}
    stack: list[str] = []
    current: list[str] = []
    for line in _unfolded_lines(text):
        upper = line.strip().upper()
        if upper.startswith("BEGIN:"):
            stack.append(upper[6:])
        inside = any(name != "VCALENDAR" for name in stack)
        if inside:
            current.append(line)
        elif stack and ":" in line and not upper.startswith(("BEGIN:", "END:")):
            key, _, value = line.partition(":")
            top.setdefault(key.split(";")[0].strip().upper(), value.strip())
        if upper.startswith("END:") and stack:
            name = stack.pop()
            if inside and not any(n != "VCALENDAR" for n in stack):
                if name == "VEVENT":
                    events.append("\r\n".join(current))
                elif name == "VTIMEZONE":
                    zones.append("\r\n".join(current))
                current = []
    return events, zones, top


def _calendars_leniently(text: str, skipped: list[SkippedEvent]) -> tuple[list[Calendar], str | None]:
    """Each VEVENT on its own, with the VTIMEZONEs that parse: one bad line costs one event."""
    from icalendar import Calendar

    events, zones, top = _blocks(text)
    good_zones = []
    for block in zones:
        try:
            Calendar.from_ical(f"BEGIN:VCALENDAR\r\n{block}\r\nEND:VCALENDAR\r\n")
            good_zones.append(block)
        except Exception:  # noqa: BLE001, S112 - a broken VTIMEZONE is left out; its events use their TZIDs
            continue
    header = "".join(f"{k}:{v}\r\n" for k, v in top.items() if k in {"X-WR-TIMEZONE", "METHOD", "VERSION"})
    calendars = []
    for block in events:
        try:
            body = "\r\n".join([*good_zones, block])
            calendars.append(Calendar.from_ical(f"BEGIN:VCALENDAR\r\n{header}{body}\r\nEND:VCALENDAR\r\n"))
        except Exception:  # noqa: BLE001 - third-party parser on untrusted input: the event is skipped
            uid = next((ln[4:].strip() for ln in block.split("\r\n") if ln.upper().startswith("UID:")), None)
            skipped.append(SkippedEvent(uid or None, "unparseable"))
    return calendars, top.get("METHOD")


def _standard(calendar: Calendar) -> Calendar:
    """X-WR-TIMEZONE applied (times in UTC or floating become times in that zone)."""
    if not calendar.get("X-WR-TIMEZONE"):
        return calendar
    import x_wr_timezone  # type: ignore[import-untyped]

    try:
        return x_wr_timezone.to_standard(calendar)  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - an unknown X-WR-TIMEZONE: the times stay as written
        return calendar


def parse_calendar(data: bytes | str) -> ParsedFile:
    """Every VEVENT of `data`, read as a series or skipped with a reason. Raises `IcsError`
    (400: `not_icalendar`, `too_deep`, `too_many_events`) for input that is not iCalendar."""
    text = _decode(data)
    _check_shape(text)
    with warnings.catch_warnings():
        # icalendar warns about what it guesses (vendor-prefixed TZIDs ...): the notes say what we did
        warnings.simplefilter("ignore")
        return _parse(text)


def _parse(text: str) -> ParsedFile:
    from icalendar import Calendar

    skipped: list[SkippedEvent] = []
    method: str | None
    try:
        calendars = list(Calendar.from_ical(text, multiple=True))
        method = next((str(c["METHOD"]) for c in calendars if c.get("METHOD")), None)
        # A component left open (no END:VCALENDAR) makes the parser drop everything inside it.
        found = sum(len(c.walk("VEVENT")) for c in calendars)
        if found < len(_VEVENT.findall(text.encode("utf-8", "replace"))):
            raise ValueError("events lost")
    except Exception:  # noqa: BLE001 - third-party parser on untrusted input: read it piece by piece
        skipped = []
        calendars, method = _calendars_leniently(text, skipped)
    raws: list[_Raw] = []
    for calendar in calendars:
        for component in _standard(calendar).walk("VEVENT"):
            try:
                raws.append(_read_vevent(component))
            except _Skip as skip:
                skipped.append(SkippedEvent(_uid(component, []), skip.reason, _summary(component)))
            except Exception:  # noqa: BLE001 - icalendar's lazy values raise assorted types
                skipped.append(SkippedEvent(_uid(component, []), "unparseable", _summary(component)))
    events = _group(raws, skipped)
    return ParsedFile(method.strip().upper() if method else None, events, skipped)


@dataclass
class ReplyItem:
    """One VEVENT of a METHOD:REPLY: who answered what (RFC 5546 section 3.2.3).

    A REPLY needs only UID, DTSTAMP, ORGANIZER and the replying ATTENDEE; DTSTART is optional
    there, so replies are not read as events. `recurrence_id` is set for an answer about one
    occurrence."""

    uid: str
    sequence: int
    attendees: list[Attendee]
    recurrence_id: bool = False


def parse_reply(data: bytes | str) -> list[ReplyItem]:
    """The VEVENTs of an iTIP REPLY, each with its attendees and their PARTSTAT (a VEVENT
    without UID is left out). Raises `IcsError` like `parse_calendar` for what is not iCalendar."""
    text = _decode(data)
    _check_shape(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _parse_reply(text)


def _parse_reply(text: str) -> list[ReplyItem]:
    from icalendar import Calendar

    try:
        calendars = list(Calendar.from_ical(text, multiple=True))
    except Exception:  # noqa: BLE001 - third-party parser on untrusted input: read it piece by piece
        calendars, _ = _calendars_leniently(text, [])
    items = []
    for calendar in calendars:
        for component in calendar.walk("VEVENT"):
            uid = clean_line(component.get("UID", ""), MAX_UID, [])
            if not uid:
                continue
            try:
                attendees = [Attendee.model_validate(a) for a in _attendees(component, [])]
            except (_Skip, ValidationError):
                continue
            rid = component.get("RECURRENCE-ID") is not None
            items.append(ReplyItem(uid, _sequence(component), attendees, rid))
    return items


def _summary(component: Component) -> str | None:
    try:
        return clean_line(component.get("SUMMARY", ""), MAX_TITLE, []) or None
    except Exception:  # noqa: BLE001 - only a label for the skip report
        return None


# ---------------------------------------------------------------------------------- events -> text


@dataclass
class Outgoing:
    """What `build_calendar` writes for one event."""

    uid: str
    sequence: int
    fields: EventFields
    dtstamp: datetime
    attendees: list[Attendee] | None = None  # instead of fields.attendees (an iTIP REPLY has one)
    extra: dict[str, str] = field(default_factory=dict)  # more properties, e.g. {"COMMENT": ...}
    overrides: bool = True


def _address(
    person: Person, *, partstat: str | None = None, role: str | None = None, rsvp: bool | None = None
) -> Any:
    from icalendar import vCalAddress

    prop = vCalAddress(f"mailto:{person.address}")
    if person.name:
        prop.params["CN"] = person.name
    if role is not None:
        prop.params["ROLE"] = role.upper()
    if partstat is not None:
        prop.params["PARTSTAT"] = partstat.upper()
    if rsvp is not None:
        prop.params["RSVP"] = "TRUE" if rsvp else "FALSE"
    return prop


def _add_common(
    vevent: VEvent,
    *,
    title: str,
    description: str | None,
    location: str | None,
    status: str,
    organizer: Person | None,
    attendees: Sequence[Attendee],
) -> None:
    if title:
        vevent.add("SUMMARY", title)
    if description:
        vevent.add("DESCRIPTION", description)
    if location:
        vevent.add("LOCATION", location)
    vevent.add("STATUS", status.upper())
    if organizer is not None:
        vevent.add("ORGANIZER", _address(organizer))
    for attendee in attendees:
        vevent.add(
            "ATTENDEE", _address(attendee, partstat=attendee.partstat, role=attendee.role, rsvp=attendee.rsvp)
        )


def vevents(item: Outgoing) -> list[VEvent]:
    """The VEVENTs of one event: the series, then one per override (complete, as RFC 5545 asks)."""
    from icalendar import Event as VEvent
    from icalendar import vRecur

    fields = item.fields
    assert fields.end is not None
    attendees = item.attendees if item.attendees is not None else fields.attendees
    master = VEvent()
    master.add("UID", item.uid)
    master.add("SEQUENCE", item.sequence)
    master.add("DTSTAMP", item.dtstamp.astimezone(UTC).replace(microsecond=0))
    master.add("DTSTART", fields.start.value)
    master.add("DTEND", fields.end.value)
    _add_common(
        master,
        title=fields.title,
        description=fields.description,
        location=fields.location,
        status=fields.status,
        organizer=fields.organizer,
        attendees=attendees,
    )
    if fields.recurrence is not None:
        for rule in fields.recurrence.rrule:
            master.add("RRULE", vRecur.from_ical(rule))
        if fields.recurrence.rdate:
            master.add("RDATE", list(fields.recurrence.rdate))
        if fields.recurrence.exdate:
            master.add("EXDATE", list(fields.recurrence.exdate))
    for name, value in item.extra.items():
        master.add(name, value)
    out = [master]
    if not item.overrides:
        return out
    for override in fields.overrides:
        start = override.start.value if override.start is not None else override.recurrence_id
        if override.end is not None:
            end = override.end.value
        elif isinstance(start, datetime):
            end = times.add_exact(start, fields.duration)
        else:
            end = start + timedelta(days=max(1, fields.duration.days))
        vevent = VEvent()
        vevent.add("UID", item.uid)
        vevent.add("SEQUENCE", item.sequence)
        vevent.add("DTSTAMP", item.dtstamp.astimezone(UTC).replace(microsecond=0))
        vevent.add("RECURRENCE-ID", override.recurrence_id)
        vevent.add("DTSTART", start)
        vevent.add("DTEND", end)
        _add_common(
            vevent,
            title=override.title if override.title is not None else fields.title,
            description=override.description if override.description is not None else fields.description,
            location=override.location if override.location is not None else fields.location,
            status=override.status or fields.status,
            organizer=fields.organizer,
            attendees=override.attendees
            if override.attendees is not None and item.attendees is None
            else attendees,
        )
        out.append(vevent)
    return out


def _zone_window(items: Sequence[Outgoing]) -> tuple[date, date]:
    """The years VTIMEZONE definitions must cover: from the earliest start to a year past the
    latest finite date (at least icalendar's default, 1970-2038)."""
    first, last = date(1970, 1, 1), date(2038, 1, 1)
    for item in items:
        start = times.instant(item.fields.start.value).date()
        first = min(first, start - timedelta(days=1))
        last = max(last, min(start + timedelta(days=400), date(2100, 1, 1)))
    return first, last


def build_calendar(items: Sequence[Outgoing], *, method: str | None = None, name: str | None = None) -> bytes:
    """A VCALENDAR (RFC 5545) with the events and a VTIMEZONE for every TZID they use."""
    from icalendar import Calendar

    calendar = Calendar()
    calendar.add("PRODID", PRODID)
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    if method:
        calendar.add("METHOD", method)
    if name:
        calendar.add("X-WR-CALNAME", name)
    for item in items:
        for vevent in vevents(item):
            calendar.add_component(vevent)
    first, last = _zone_window(items)
    calendar.add_missing_timezones(first_date=first, last_date=last)
    return bytes(calendar.to_ical())


def tzids(data: bytes) -> tuple[set[str], set[str]]:
    """(TZIDs used by properties, TZIDs defined by VTIMEZONEs) of a calendar: for checks."""
    from icalendar import Calendar

    used: set[str] = set()
    defined: set[str] = set()
    for calendar in Calendar.from_ical(data, multiple=True):
        for component in calendar.walk():
            if component.name == "VTIMEZONE":
                defined.add(str(component["TZID"]))
                continue
            for value in component.values():
                props = value if isinstance(value, list) else [value]
                for prop in props:
                    tzid = getattr(prop, "params", {}).get("TZID")
                    if tzid:
                        used.add(str(tzid))
    return used, defined
