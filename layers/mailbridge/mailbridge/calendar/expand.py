"""Occurrences of events in a time range, with `recurring-ical-events` (imported on first use).

An event's VEVENTs (series and overrides, `ics.vevents`) go through the library, which applies
RRULE, RDATE, EXDATE and RECURRENCE-ID as RFC 5545 sections 3.8.5 and 3.8.4.4 say, in the
event's own time zone: a weekly 09:00 Europe/Berlin meeting stays at 09:00 local across a DST
change (its UTC time moves). A one-off event without overrides is answered without the library.

`span` gives the instants an event's occurrences can fall between, for the store's range index:
open-ended series end at END_OF_TIME; floating and all-day events are widened by 14 hours on
either side (they happen at local time wherever they are read).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from mailbridge.calendar import times
from mailbridge.calendar.ics import Outgoing, vevents
from mailbridge.calendar.models import Event, EventFields, EventTime, Occurrence
from mailbridge.errors import Invalid
from mailbridge.observability import logger
from mailbridge.store.calendar import Span

SPAN_SCAN_MAX = 10_000  # occurrences read to find the end of a finite series; more: open-ended
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _calendar(uid: str, fields: EventFields) -> object:
    from icalendar import Calendar

    calendar = Calendar()
    for vevent in vevents(Outgoing(uid=uid, sequence=0, fields=fields, dtstamp=_EPOCH)):
        calendar.add_component(vevent)
    return calendar


def _query(uid: str, fields: EventFields) -> object:
    import recurring_ical_events  # type: ignore[import-untyped]

    return recurring_ical_events.of(_calendar(uid, fields))


def _margin(fields: EventFields) -> timedelta:
    return times.FLOATING_MARGIN if fields.start.all_day or fields.start.floating else timedelta(0)


def _open_ended(fields: EventFields) -> bool:
    return fields.recurrence is not None and any(
        "COUNT=" not in rule and "UNTIL=" not in rule for rule in fields.recurrence.rrule
    )


def span(uid: str, fields: EventFields) -> Span:
    """The first start and last end of the event's occurrences (ISO 8601 UTC instants).

    Raises `Invalid` 400 `invalid_recurrence` when the recurrence cannot be expanded."""
    assert fields.end is not None
    margin = _margin(fields)
    first = fields.start.instant
    last = fields.end.instant
    for override in fields.overrides:
        if override.start is not None:
            first = min(first, override.start.instant)
        if override.end is not None:
            last = max(last, override.end.instant)
        elif override.start is not None:
            last = max(last, override.start.instant + fields.duration)
    if fields.recurrence is not None:
        first = min([first, *(times.instant(v) for v in fields.recurrence.rdate)])
        if _open_ended(fields):
            return Span((first - margin).isoformat(), times.END_OF_TIME.isoformat())
        try:
            occurrences = list(itertools.islice(_query(uid, fields).all(), SPAN_SCAN_MAX + 1))  # type: ignore[attr-defined]
        except Exception as exc:
            raise Invalid("the recurrence cannot be expanded", code="invalid_recurrence") from exc
        if len(occurrences) > SPAN_SCAN_MAX:
            return Span((first - margin).isoformat(), times.END_OF_TIME.isoformat())
        for component in occurrences:
            first = min(first, times.instant(component.DTSTART))
            last = max(last, times.instant(component.DTEND or component.DTSTART))
    return Span((first - margin).isoformat(), min(last + margin, times.END_OF_TIME).isoformat())


def _single(event: Event, start: datetime, end: datetime) -> Iterator[Occurrence]:
    assert event.end is not None
    begins, ends = event.start.instant, event.end.instant
    if begins < end and (ends > start or (ends == begins and begins >= start)):
        yield Occurrence(
            event_id=event.event_id,
            uid=event.uid,
            start=event.start,
            end=event.end,
            title=event.title,
            location=event.location,
            status=event.status,
            all_day=event.start.all_day,
            recurring=False,
            overridden=False,
            invitation_status=event.invitation.status if event.invitation else None,
        )


def occurrences(event: Event, start: datetime, end: datetime) -> list[Occurrence]:
    """The event's occurrences that meet [start, end) (UTC instants), in start order.

    An event the library cannot expand (it was stored before a rule became unsupported, say)
    yields nothing and is logged by id; it never fails the listing."""
    if not event.recurring and not event.overrides:
        return list(_single(event, start, end))
    margin = _margin(event)
    overridden = {times.order_key(o.recurrence_id) for o in event.overrides}
    try:
        components = _query(event.uid, event).between(start - margin, end + margin)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logger.warning(
            "event not expanded", extra={"event_id": event.event_id, "error_type": type(exc).__name__}
        )
        return []
    out: list[Occurrence] = []
    for component in components:
        begins = EventTime.of(component.DTSTART)
        ends = EventTime.of(component.DTEND or component.DTSTART)
        if not (begins.instant < end and (ends.instant > start or (ends.instant == begins.instant >= start))):
            continue
        rid_prop = component.get("RECURRENCE-ID")
        rid = event.in_start_form(rid_prop.dt) if rid_prop is not None else begins.value
        out.append(
            Occurrence(
                event_id=event.event_id,
                uid=event.uid,
                recurrence_id=rid,
                start=begins,
                end=ends,
                title=str(component.get("SUMMARY", "")),
                location=str(component["LOCATION"]) if component.get("LOCATION") else None,
                status=str(component.get("STATUS", "CONFIRMED")).lower(),  # type: ignore[arg-type]
                all_day=begins.all_day,
                recurring=True,
                overridden=times.order_key(rid) in overridden,
                invitation_status=event.invitation.status if event.invitation else None,
            )
        )
    return sorted(out, key=lambda o: (o.start.instant, o.event_id))


def is_occurrence(uid: str, fields: EventFields, when: times.DateOrTime) -> bool:
    """Whether the series `fields` (its rule, RDATEs and EXDATEs; overrides left out) has an
    occurrence whose original start is `when` (a date for an all-day series)."""
    series = fields.model_copy(update={"overrides": []})
    moment = times.instant(when)
    try:
        found = _query(uid, series).between(moment, moment + timedelta(seconds=1))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a series the library cannot expand has no such occurrence
        return False
    return any(times.order_key(c.DTSTART) == times.order_key(when) for c in found)


def expand(events: Sequence[Event], start: datetime, end: datetime) -> list[Occurrence]:
    """Every occurrence of `events` in [start, end), ordered by start (then event id)."""
    found = [o for event in events for o in occurrences(event, start, end)]
    return sorted(found, key=lambda o: (o.start.instant, o.event_id, times.order_key(o.start.value)))
