"""Google Calendar API v3 `events` on the user's `primary` calendar: list (full and incremental
sync), get, insert, patch, delete.

Sources [D]: developers.google.com/calendar/api/v3/reference/events (the Event resource and the
list/insert/patch/delete methods) and developers.google.com/calendar/api/guides/sync
("Synchronize resources efficiently"):
- `events.list`: `maxResults` default 250, at most 2500; `nextPageToken` while pages follow;
  `nextSyncToken` only on the last page; `iCalUID` lists only the events with that iCalendar
  UID ("Specifies an event ID in the iCalendar format to be provided in the response"); with
  `syncToken`, `timeMin`/`timeMax`/`q`/`updatedMin`/
  `orderBy`/`iCalUID` are refused (400) and deleted events are always returned, as
  `status: cancelled`; a sync token the server no longer accepts answers 410 GONE, reason
  `fullSyncRequired` ("Sync token is no longer valid, a full sync is required.");
- `singleEvents=false` (the default) lists recurring masters with their `recurrence` (RRULE,
  EXRULE, RDATE, EXDATE lines as in RFC 5545) and each changed occurrence as its own event with
  `recurringEventId` and `originalStartTime` (its id `{masterId}_{original start, basic UTC}`);
- a deleted event keeps only `kind`, `etag`, `id`, `status`; a cancelled occurrence only `id`,
  `recurringEventId`, `originalStartTime`, `status` (the guaranteed fields of a cancelled event);
- `etag` is a quoted number that changes on every write; `If-Match` with another etag answers
  412 `conditionNotMet`; deleting a deleted event answers 410 `deleted`; an unknown id 404;
- `events.insert` with the `iCalUID` of a live event answers 409 `duplicate` ("The requested
  identifier already exists.");
- one occurrence of a recurring event is addressed by its instance id `{recurringEventId}_{original
  start}` (`YYYYMMDDTHHMMSSZ`, UTC basic format, for a timed series; `YYYYMMDD` for an all-day
  one), the id `events.instances` answers (developers.google.com/calendar/api/guides/
  recurringevents, "Modifying instances"): `events.get` of an unchanged occurrence answers the
  instance (the master's fields, `recurringEventId`, `originalStartTime`) without storing
  anything; `events.patch` stores it as an exception (listed by `events.list` and sync tokens
  from then on); `events.delete` stores it as a cancelled exception. An instance id whose time
  is not an occurrence of the series (outside the rule, excluded by EXDATE) answers 404.
Values (ids, tokens) are made up.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from local.google.errors import ApiError, bad_request
from local.google.ids import Ids

DEFAULT_PAGE = 250
MAX_PAGE = 2500
SYNC_RESTRICTIONS = ("timeMin", "timeMax", "q", "updatedMin", "orderBy", "iCalUID")
WRITABLE = (
    "summary", "description", "location", "start", "end", "recurrence", "attendees", "status",
    "organizer", "transparency", "visibility", "reminders", "colorId",
)  # fmt: skip
RESPONSE_STATUSES = frozenset({"needsAction", "declined", "tentative", "accepted"})
INSTANCE_ID = re.compile(r"(?P<master>.+)_(?P<start>\d{8}(?:T\d{6}Z)?)")


def calendar_error(code: int, message: str, reason: str) -> ApiError:
    return ApiError(code, message, reason, domain="calendar" if code in (410, 412) else "global")


def full_sync_required() -> ApiError:
    return calendar_error(410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired")


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _basic_utc(value: dict[str, Any]) -> str:
    if "date" in value:
        return str(value["date"]).replace("-", "")
    instant = datetime.fromisoformat(str(value["dateTime"]))
    return instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _moment(value: dict[str, Any]) -> date | datetime:
    """An EventDateTime as a date, or an aware date-time in its `timeZone` (else its offset)."""
    if "date" in value:
        return date.fromisoformat(str(value["date"]))
    instant = datetime.fromisoformat(str(value["dateTime"]))
    zone = value.get("timeZone")
    return instant.astimezone(ZoneInfo(str(zone))) if zone else instant


def _event_date_time(moment: date | datetime, zone: str | None) -> dict[str, Any]:
    if not isinstance(moment, datetime):
        return {"date": moment.isoformat()}
    return {"dateTime": moment.isoformat(), **({"timeZone": zone} if zone else {})}


def _is_occurrence(master: dict[str, Any], original: date | datetime) -> bool:
    """Whether the series `master` (its start, end and `recurrence` lines, RFC 5545) has an
    occurrence starting at `original`, expanded by recurring_ical_events."""
    import recurring_ical_events  # type: ignore[import-untyped]
    from icalendar import Calendar
    from icalendar import Event as VEvent

    start, end = _moment(master["start"]), _moment(master["end"])
    if isinstance(start, datetime) != isinstance(original, datetime):
        return False
    vevent = VEvent()
    vevent.add("UID", str(master.get("iCalUID") or master["id"]))
    vevent.add("DTSTART", start)
    vevent.add("DTEND", end)
    tail = b"END:VEVENT\r\n"
    text = bytes(vevent.to_ical())
    lines = "".join(f"{line}\r\n" for line in master.get("recurrence") or [])
    text = text[: -len(tail)] + lines.encode() + tail
    calendar = Calendar.from_ical(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//double//EN\r\n" + text + b"END:VCALENDAR\r\n"
    )
    query = recurring_ical_events.of(calendar)
    if not isinstance(original, datetime):
        return any(original == c.DTSTART for c in query.at(original))
    found = query.between(original, original + timedelta(seconds=1))
    return any(
        isinstance(c.DTSTART, datetime) and c.DTSTART.astimezone(UTC) == original.astimezone(UTC)
        for c in found
    )


@dataclass
class StoredEvent:
    resource: dict[str, Any]
    changed: int
    deleted: bool = False

    def render(self) -> dict[str, Any]:
        if not self.deleted:
            return copy.deepcopy(self.resource)
        kept = ("kind", "etag", "id", "status", "recurringEventId", "originalStartTime")
        return {k: self.resource[k] for k in kept if k in self.resource} | {"status": "cancelled"}


@dataclass
class _Page:
    owner: str
    fingerprint: str
    offset: int
    horizon: int
    position: int | None  # the change sequence a sync token covers; None: a full listing


@dataclass
class CalendarBook:
    events: dict[str, StoredEvent] = field(default_factory=dict)


class Calendars:
    """Every user's primary calendar."""

    def __init__(self, ids: Ids, now: Callable[[], datetime]) -> None:
        self.ids = ids
        self.now = now
        self.books: dict[str, CalendarBook] = {}
        self._sequence = 0
        self._sync_tokens: dict[str, tuple[str, int]] = {}  # token -> (owner, position)
        self._page_tokens: dict[str, _Page] = {}
        self.calls: list[tuple[str, str, dict[str, str]]] = []  # (method, event id, headers)

    def book(self, owner: str) -> CalendarBook:
        return self.books.setdefault(owner.lower(), CalendarBook())

    # ------------------------------------------------------------------ changes (control surface)

    def _stamp(self, owner: str, resource: dict[str, Any]) -> StoredEvent:
        self._sequence += 1
        now = self.now()
        resource["kind"] = "calendar#event"
        resource["etag"] = f'"{int(now.timestamp() * 1000)}{self._sequence:06d}"'
        resource["updated"] = _rfc3339(now)
        resource.setdefault("created", resource["updated"])
        stored = self.book(owner).events.get(resource["id"])
        if stored is None:
            stored = StoredEvent(resource=resource, changed=self._sequence)
            self.book(owner).events[resource["id"]] = stored
        stored.resource, stored.changed, stored.deleted = resource, self._sequence, False
        return stored

    def put(self, owner: str, resource: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an event as a user of Google Calendar would; returns it."""
        body = copy.deepcopy(resource)
        event_id = str(body.get("id") or self.ids.token(26).lower())
        current = self.book(owner).events.get(event_id)
        body["id"] = event_id
        body.setdefault("status", "confirmed")
        body.setdefault("iCalUID", current.resource["iCalUID"] if current else f"{event_id}@google.com")
        previous = int(current.resource.get("sequence", 0)) if current else 0
        body.setdefault("sequence", previous)
        body.setdefault("organizer", {"email": owner, "self": True})
        body.setdefault("creator", {"email": owner, "self": True})
        return self._stamp(owner, body).render()

    def put_exception(
        self, owner: str, master_id: str, original_start: dict[str, Any], **changes: Any
    ) -> dict[str, Any]:
        """Change one occurrence of a recurring event (an exception, as Google stores it)."""
        master = self.book(owner).events[master_id].resource
        exception_id = f"{master_id}_{_basic_utc(original_start)}"
        body = {
            "start": original_start,
            "end": master["end"],
            "summary": master.get("summary"),
            **copy.deepcopy(changes),
            "id": exception_id,
            "recurringEventId": master_id,
            "originalStartTime": original_start,
            "iCalUID": master["iCalUID"],
        }
        return self.put(owner, {k: v for k, v in body.items() if v is not None})

    def delete(self, owner: str, event_id: str) -> None:
        stored = self.book(owner).events[event_id]
        self._sequence += 1
        stored.deleted, stored.changed = True, self._sequence
        stored.resource["status"] = "cancelled"
        stored.resource["etag"] = f'"{int(self.now().timestamp() * 1000)}{self._sequence:06d}"'

    def purge(self, owner: str, event_id: str) -> None:
        """Forget an event entirely, as Google does with deleted events some time after their
        deletion: no listing returns it any more, not even with `showDeleted`."""
        del self.book(owner).events[event_id]

    def expire_sync_tokens(self) -> None:
        """Make every sync token handed out so far unusable (410 fullSyncRequired)."""
        self._sync_tokens.clear()

    def live(self, owner: str) -> dict[str, dict[str, Any]]:
        return {k: v.render() for k, v in self.book(owner).events.items() if not v.deleted}

    # ------------------------------------------------------------------ events.list

    def list(self, owner: str, query: dict[str, list[str]]) -> dict[str, Any]:
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        size_text = one("maxResults")
        if size_text is not None and (not size_text.isdigit() or int(size_text) < 1):
            raise bad_request(f"Invalid value '{size_text}'.", location="maxResults")
        size = min(int(size_text), MAX_PAGE) if size_text else DEFAULT_PAGE
        single = one("singleEvents") == "true"
        if single:
            raise bad_request("singleEvents=true is not served by this double.", location="singleEvents")
        show_deleted = one("showDeleted") == "true"
        sync_token, page_token, ical_uid = one("syncToken"), one("pageToken"), one("iCalUID")
        fingerprint = repr((size, show_deleted, ical_uid))
        if page_token:
            page = self._page_tokens.get(page_token)
            if page is None or page.owner != owner.lower() or page.fingerprint != fingerprint:
                raise bad_request("Invalid page token value.", location="pageToken")
        else:
            position: int | None = None
            if sync_token:
                restricted = [name for name in SYNC_RESTRICTIONS if one(name) is not None]
                if restricted:
                    raise calendar_error(
                        400, "Sync token cannot be used with other request restrictions.", "invalid"
                    )
                held = self._sync_tokens.get(sync_token)
                if held is None or held[0] != owner.lower():
                    raise full_sync_required()
                position = held[1]
            page = _Page(owner.lower(), fingerprint, 0, self._sequence, position)
        events = [
            e for e in self.book(owner).events.values() if ical_uid in (None, e.resource.get("iCalUID"))
        ]
        if page.position is None:
            chosen = [e for e in events if e.changed <= page.horizon and (show_deleted or not e.deleted)]
        else:
            chosen = [e for e in events if page.position < e.changed <= page.horizon]
        chosen.sort(key=lambda e: (e.changed, e.resource["id"]))
        items = chosen[page.offset : page.offset + size]
        out: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{page.horizon}"',
            "summary": owner,
            "updated": _rfc3339(self.now()),
            "timeZone": "UTC",
            "accessRole": "owner",
            "defaultReminders": [],
            "items": [e.render() for e in items],
        }
        if page.offset + size < len(chosen):
            token = self.ids.token(32)
            self._page_tokens[token] = _Page(
                page.owner, page.fingerprint, page.offset + size, page.horizon, page.position
            )
            out["nextPageToken"] = token
        else:
            token = self.ids.token(40)
            self._sync_tokens[token] = (page.owner, page.horizon)
            out["nextSyncToken"] = token
        return out

    # ------------------------------------------------------------------ get / insert / patch / delete

    def _instance(self, owner: str, event_id: str) -> dict[str, Any] | None:
        """The unchanged occurrence an instance id names, as Google answers it (not stored);
        None when `event_id` is not an occurrence of a live recurring event."""
        matched = INSTANCE_ID.fullmatch(event_id)
        if matched is None:
            return None
        stored = self.book(owner).events.get(matched["master"])
        if stored is None or stored.deleted or not stored.resource.get("recurrence"):
            return None
        master = stored.resource
        text = matched["start"]
        original: date | datetime
        try:
            original = (
                datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                if "T" in text
                else date(int(text[:4]), int(text[4:6]), int(text[6:8]))
            )
        except ValueError:  # no such day or time: no such instance
            return None
        if not _is_occurrence(master, original):
            return None
        zone = master["start"].get("timeZone")
        start, end = _moment(master["start"]), _moment(master["end"])
        finish: date | datetime
        if isinstance(original, datetime):
            assert isinstance(start, datetime)
            assert isinstance(end, datetime)
            original = original.astimezone(ZoneInfo(zone)) if zone else original
            finish = (original.astimezone(UTC) + (end - start)).astimezone(original.tzinfo)
        else:
            assert not isinstance(start, datetime)
            assert not isinstance(end, datetime)
            finish = original + (end - start)
        instance = {k: copy.deepcopy(v) for k, v in master.items() if k not in ("recurrence", "created")}
        instance |= {
            "id": event_id,
            "recurringEventId": master["id"],
            "originalStartTime": _event_date_time(original, zone),
            "start": _event_date_time(original, zone),
            "end": _event_date_time(finish, master["end"].get("timeZone")),
        }
        return instance

    def _live(self, owner: str, event_id: str, *, materialize: bool = False) -> StoredEvent:
        """The stored event; an unchanged occurrence is stored as an exception first when
        `materialize` (a write to one instance makes it an exception)."""
        stored = self.book(owner).events.get(event_id)
        if stored is None:
            instance = self._instance(owner, event_id) if materialize else None
            if instance is None:
                raise calendar_error(404, "Not Found", "notFound")
            self.put(owner, instance)
            stored = self.book(owner).events[event_id]
        return stored

    def _check_etag(self, stored: StoredEvent, headers: dict[str, str]) -> None:
        expected = headers.get("if-match")
        if expected is not None and expected != "*" and expected != stored.resource["etag"]:
            raise calendar_error(412, "Precondition Failed", "conditionNotMet")

    def get(self, owner: str, event_id: str) -> dict[str, Any]:
        if event_id not in self.book(owner).events:
            instance = self._instance(owner, event_id)
            if instance is not None:
                return instance
        return self._live(owner, event_id).render()

    def _validated(self, body: dict[str, Any]) -> dict[str, Any]:
        for name in ("start", "end"):
            if name in body and not isinstance(body[name], dict):
                raise bad_request(f"Invalid value at '{name}'.", location=name)
        for attendee in body.get("attendees") or []:
            status = attendee.get("responseStatus", "needsAction") if isinstance(attendee, dict) else None
            if not isinstance(attendee, dict) or not attendee.get("email") or status not in RESPONSE_STATUSES:
                raise bad_request("Invalid attendee.", location="attendees")
        return {k: v for k, v in body.items() if k in WRITABLE or k == "iCalUID"}

    def insert(self, owner: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        fields = self._validated(body)
        if "start" not in fields or "end" not in fields:
            raise bad_request("Missing end time.", reason="required")
        uid = fields.get("iCalUID")
        if uid and any(
            e.resource.get("iCalUID") == uid and not e.deleted for e in self.book(owner).events.values()
        ):
            raise calendar_error(409, "The requested identifier already exists.", "duplicate")
        created = self.put(owner, fields)
        self.calls.append(("events.insert", created["id"], headers))
        return created

    def patch(
        self, owner: str, event_id: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        stored = self._live(owner, event_id, materialize=True)
        if stored.deleted:
            raise calendar_error(410, "Resource has been deleted", "deleted")
        self._check_etag(stored, headers)
        fields = self._validated(body)
        fields.pop("iCalUID", None)
        merged = copy.deepcopy(stored.resource) | fields
        if any(
            name in fields and fields[name] != stored.resource.get(name)
            for name in ("start", "end", "recurrence")
        ):
            merged["sequence"] = int(stored.resource.get("sequence", 0)) + 1
        updated = self._stamp(owner, merged).render()
        self.calls.append(("events.patch", event_id, headers))
        return updated

    def remove(self, owner: str, event_id: str, headers: dict[str, str]) -> None:
        stored = self._live(owner, event_id, materialize=True)
        if stored.deleted:
            raise calendar_error(410, "Resource has been deleted", "deleted")
        self._check_etag(stored, headers)
        self.delete(owner, event_id)
        self.calls.append(("events.delete", event_id, headers))
