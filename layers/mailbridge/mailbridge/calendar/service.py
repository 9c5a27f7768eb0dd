"""Events: create, read, replace and delete; occurrences in a range; ICS import and export; the
per-user subscription feed.

Rules (besides the model's, `mailbridge.calendar.models`):
- viewers read; members write; every write and every import or export counts against the
  tenant's rate limits (`limits`, 429 `rate_limited`);
- linked records must exist (400 `unknown_contact`, `unknown_company`, `unknown_deal`);
- a replace is conditional on `version` when given (409 `version_conflict`); SEQUENCE goes up
  when the start, end, recurrence, overrides or status change (RFC 5545 section 3.8.7.4);
- an event's UID is unique in the tenant: import matches events by UID and SEQUENCE (a lower
  SEQUENCE than the stored one is `stale_sequence`; the same content is `unchanged`, nothing
  written), and keeps what iCalendar does not carry (CRM links, invitation state);
- `calendar.event_created` goes out for every new event (API or import).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.calendar import expand, ics, times
from mailbridge.calendar.limits import RateLimits
from mailbridge.calendar.models import (
    EVENT_ID,
    Event,
    EventCreate,
    EventFields,
    EventLinks,
    EventSource,
    EventUpdate,
    FeedInfo,
    ImportedEvent,
    ImportOutcome,
    ImportResult,
    Invitation,
    Occurrences,
    Override,
    new_event_id,
)
from mailbridge.calendar.tokens import Signer, subject_key
from mailbridge.errors import Conflict, Forbidden, Invalid, NotFound, Unprocessable
from mailbridge.store.calendar import CalendarStore
from mailbridge.store.crm import CrmStore
from mailbridge.tenancy import Role, TenantContext

MAX_RANGE = timedelta(days=400)
DEFAULT_OCCURRENCES = 500
MAX_OCCURRENCES = 2000
MAX_IMPORT_BYTES = 2 * 1024 * 1024
MAX_SAVE_ATTEMPTS = 3
FEED_PAST = timedelta(days=90)
FEED_FUTURE = timedelta(days=400)
# What makes SEQUENCE go up (RFC 5545 section 3.8.7.4: DTSTART, DTEND, DURATION, RRULE, RDATE,
# EXDATE, and STATUS), plus overrides, which reschedule single occurrences.
SIGNIFICANT = ("start", "end", "recurrence", "overrides", "status")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class CalendarDeps:
    store: CalendarStore
    crm: CrmStore | None
    publisher: EventPublisher | None
    limits: RateLimits | None
    signer: Signer
    now: Callable[[], datetime] = field(default=_utcnow)
    # Called with (tenant_id, event, deleted, previous) after an API create (previous None), change
    # or delete is stored: pushes it to the provider calendar (calendar.provider_sync); None:
    # nothing is pushed.
    on_change: Callable[[str, Event, bool, Event | None], None] | None = None
    # The provider (`gmail`, `graph`, ...) of a connected account, (tenant_id, account_id) -> it;
    # None (or None answered): unknown, so occurrence edits of its events are refused.
    account_provider: Callable[[str, str], str | None] | None = None


# ---------------------------------------------------------------------------------- helpers


def not_found() -> NotFound:
    return NotFound("no such event", code="event_not_found")


def load(tenant_id: str, event_id: str, deps: CalendarDeps) -> Event:
    event = deps.store.get_event(tenant_id, event_id) if EVENT_ID.fullmatch(event_id) else None
    if event is None:
        raise not_found()
    return event


def _limit(ctx: TenantContext, deps: CalendarDeps, bucket: Any) -> None:
    if deps.limits is not None:
        deps.limits.check(ctx.tenant_id, bucket)


def _check_links(ctx: TenantContext, links: EventLinks, deps: CalendarDeps) -> None:
    if deps.crm is None:
        return
    tenant = ctx.tenant_id
    if links.contact_ids:
        found = {c.contact_id for c in deps.crm.get_contacts(tenant, links.contact_ids)}
        missing = [c for c in links.contact_ids if c not in found]
        if missing:
            raise Invalid(
                "contact_ids names unknown contacts", code="unknown_contact", details={"contact_ids": missing}
            )
    if links.company_id and deps.crm.get_company(tenant, links.company_id) is None:
        raise Invalid("company_id names no company", code="unknown_company")
    if links.deal_id and deps.crm.get_deal(tenant, links.deal_id) is None:
        raise Invalid("deal_id names no deal", code="unknown_deal")


def _publish(deps: CalendarDeps, events: list[DomainEvent]) -> None:
    if deps.publisher is not None and events:
        deps.publisher.publish(events)


publish = _publish  # for the provider calendar pull (provider_sync.py)


def created_event(tenant_id: str, event: Event) -> DomainEvent:
    return DomainEvent(
        detail_type="calendar.event_created",
        tenant_id=tenant_id,
        idempotency_key=f"calendar.event_created:{event.event_id}",
        data={
            "event_id": event.event_id,
            "uid": event.uid,
            "title": event.title,
            "start": event.start.model_dump(mode="json", exclude_none=True),
            "end": event.end.model_dump(mode="json", exclude_none=True) if event.end else None,
            "recurring": event.recurring,
            "source": event.source,
            "contact_ids": event.contact_ids,
            "company_id": event.company_id,
            "deal_id": event.deal_id,
        },
    )


def rsvp_changed(tenant_id: str, event: Event, address: str, previous: str, via: str) -> DomainEvent:
    partstat = next((a.partstat for a in event.attendees if a.address == address), "needs-action")
    return DomainEvent(
        detail_type="calendar.rsvp_changed",
        tenant_id=tenant_id,
        idempotency_key=f"calendar.rsvp_changed:{event.event_id}:{event.version}",
        data={
            "event_id": event.event_id,
            "uid": event.uid,
            "title": event.title,
            "attendee": address,
            "partstat": partstat,
            "previous": previous,
            "via": via,
            "contact_ids": event.contact_ids,
            "deal_id": event.deal_id,
        },
    )


def significant_change(before: EventFields, after: EventFields) -> bool:
    return any(getattr(before, name) != getattr(after, name) for name in SIGNIFICANT)


def same_content(before: EventFields, after: EventFields) -> bool:
    return before.model_dump(mode="json") == after.model_dump(mode="json")


def new_event(
    ctx: TenantContext,
    fields: EventFields,
    links: EventLinks,
    now: datetime,
    *,
    uid: str | None = None,
    sequence: int = 0,
    source: EventSource = "api",
    invitation: Invitation | None = None,
) -> Event:
    event_id = new_event_id()
    return Event.model_validate(
        {
            **fields.model_dump(),
            **links.model_dump(),
            "event_id": event_id,
            "uid": uid or f"{event_id}@mailbridge",
            "sequence": sequence,
            "source": source,
            "invitation": invitation,
            "created_at": now,
            "updated_at": now,
            "created_by": ctx.subject,
            "version": 1,
        }
    )


def store_new(ctx: TenantContext, event: Event, deps: CalendarDeps) -> Event:
    """Write a new event (its span computed: 400 `invalid_recurrence` when it cannot be expanded)."""
    deps.store.create_event(ctx.tenant_id, event, expand.span(event.uid, event))
    return event


def save(tenant_id: str, event: Event, previous: Event, deps: CalendarDeps) -> Event:
    """Write `event` over `previous` (version + 1); Conflict `version_conflict` if it moved on."""
    saved = event.model_copy(update={"version": previous.version + 1})
    deps.store.replace_event(tenant_id, saved, previous, expand.span(saved.uid, saved))
    return saved


def change(
    tenant_id: str,
    event_id: str,
    apply: Callable[[Event], Event | None],
    deps: CalendarDeps,
    *,
    expected_version: int | None = None,
) -> tuple[Event, Event]:
    """(previous, saved): re-read and re-apply when a concurrent writer got there first (only
    without `expected_version`). `apply` returns None when nothing changes (nothing written)."""
    for attempt in range(MAX_SAVE_ATTEMPTS):
        current = load(tenant_id, event_id, deps)
        if expected_version is not None and current.version != expected_version:
            raise Conflict("the event was changed by someone else", code="version_conflict")
        updated = apply(current)
        if updated is None:
            return current, current
        try:
            return current, save(tenant_id, updated, current, deps)
        except Conflict as exc:
            if (
                exc.code != "version_conflict"
                or expected_version is not None
                or attempt == MAX_SAVE_ATTEMPTS - 1
            ):
                raise
    raise Conflict("the event kept changing; try again", code="version_conflict")  # pragma: no cover


# ---------------------------------------------------------------------------------- events


def create_event(ctx: TenantContext, body: EventCreate, deps: CalendarDeps) -> Event:
    """A new event (201). Errors: 400 `unknown_contact` / `unknown_company` / `unknown_deal`,
    `invalid_recurrence`, `event_too_large`; 429 `rate_limited`; 503 `event_publish_failed`."""
    ctx.require(Role.MEMBER)
    _limit(ctx, deps, "event_writes")
    _check_links(ctx, body, deps)
    event = store_new(ctx, new_event(ctx, body, body, deps.now()), deps)
    _publish(deps, [created_event(ctx.tenant_id, event)])
    if deps.on_change is not None:
        deps.on_change(ctx.tenant_id, event, False, None)
    return event


def get_event(ctx: TenantContext, event_id: str, deps: CalendarDeps) -> Event:
    return load(ctx.tenant_id, event_id, deps)


def replace_fields(
    current: Event, fields: EventFields, links: EventLinks | None, now: datetime
) -> Event | None:
    """`current` with new iCalendar fields (and links, when given); None when nothing changes.
    SEQUENCE goes up with a significant change; an invited event's REQUEST follows it."""
    before = current.fields()
    if same_content(before, fields) and (links is None or links == current.links()):
        return None
    sequence = current.sequence + 1 if significant_change(before, fields) else current.sequence
    update: dict[str, Any] = {**fields.model_dump(), "sequence": sequence, "updated_at": now}
    if links is not None:
        update.update(links.model_dump())
    if current.invited_sequence is not None:
        update["invited_sequence"] = sequence
    return Event.model_validate({**current.model_dump(), **update})


def update_event(
    ctx: TenantContext, event_id: str, body: EventUpdate, deps: CalendarDeps
) -> tuple[Event, Event]:
    """Replace an event's fields and links (PUT); (previous, saved). 404 `event_not_found`,
    409 `version_conflict`, 422 `provider_override_unsupported` (an occurrence edit of a
    provider calendar's event that cannot be pushed back, see `check_pushable_overrides`: it is
    refused rather than kept here only), and the errors of `create_event`."""
    ctx.require(Role.MEMBER)
    _limit(ctx, deps, "event_writes")
    _check_links(ctx, body, deps)
    fields = EventFields.model_validate(body.model_dump(include=set(EventFields.model_fields)))
    links = EventLinks.model_validate(body.model_dump(include=set(EventLinks.model_fields)))
    now = deps.now()

    def replace(current: Event) -> Event | None:
        if changed_occurrences(current.overrides, fields.overrides) or _removed(current, fields):
            ref = deps.store.provider_of(ctx.tenant_id, current.uid)
            if ref is not None:
                provider = deps.account_provider(ctx.tenant_id, ref[0]) if deps.account_provider else None
                check_pushable_overrides(provider, current.overrides, fields, current.uid)
        return replace_fields(current, fields, links, now)

    previous, saved = change(ctx.tenant_id, event_id, replace, deps, expected_version=body.version)
    if saved is not previous and deps.on_change is not None:
        deps.on_change(ctx.tenant_id, saved, False, previous)
    return previous, saved


def _by_key(overrides: list[Override]) -> dict[str, Override]:
    return {times.order_key(o.recurrence_id): o for o in overrides}


def _removed(current: Event, fields: EventFields) -> bool:
    return bool(set(_by_key(current.overrides)) - set(_by_key(fields.overrides)))


def changed_occurrences(before: list[Override], after: list[Override]) -> list[str]:
    """The occurrences (`times.order_key` of their RECURRENCE-ID) whose override is new or
    different in `after`, in order."""
    known = {key: o.model_dump(mode="json") for key, o in _by_key(before).items()}
    return sorted(key for key, o in _by_key(after).items() if known.get(key) != o.model_dump(mode="json"))


def series_changed(before: EventFields, after: EventFields) -> bool:
    """Whether anything but the overrides differs (what a push of the series itself sends)."""
    return before.model_dump(mode="json", exclude={"overrides"}) != after.model_dump(
        mode="json", exclude={"overrides"}
    )


def check_pushable_overrides(
    provider: str | None, before: list[Override], fields: EventFields, uid: str
) -> None:
    """Refuse (422 `provider_override_unsupported`) the occurrence edits of a provider event
    that cannot be pushed back (the rest are pushed, `provider_sync.push`):

    - any, for an event held by a Microsoft (Graph) account or an unknown provider: Outlook
      events are pulled one occurrence per event here (a calendar view), and a series created
      here goes to Outlook without its recurrence, so an override has no Outlook counterpart;
    - Google: removing an override (an occurrence back to the series' values): Google keeps an
      exception once made (developers.google.com/calendar/api/guides/recurringevents: changed
      instances "become exceptions ... preserved even if the recurring event itself is
      updated"), and no call folds it back into the series;
    - Google: un-cancelling an occurrence: a cancelled instance is a deleted event there (`status:
      cancelled`, events.delete), which a patch does not bring back (410 `deleted`);
    - Google: a new override whose RECURRENCE-ID is not an occurrence of the series (`fields`,
      expanded by `expand`): Google has no instance at that time (its instance id answers 404).

    Moving, renaming or otherwise changing one occurrence of a Google series, and cancelling one,
    are accepted (`events.patch` / `events.delete` on the instance id)."""
    if provider != "gmail":
        raise Unprocessable(
            "occurrence edits of an Outlook calendar's event cannot be pushed back",
            code="provider_override_unsupported",
            details={"reason": "provider"},
        )
    old, new = _by_key(before), _by_key(fields.overrides)
    if set(old) - set(new):
        raise Unprocessable(
            "Google keeps a changed occurrence as an exception: an override cannot be removed",
            code="provider_override_unsupported",
            details={"reason": "override_removed"},
        )
    for key, override in new.items():
        previous = old.get(key)
        if previous is not None and previous.status == "cancelled" and override.status != "cancelled":
            raise Unprocessable(
                "a cancelled occurrence of a Google event cannot be restored",
                code="provider_override_unsupported",
                details={"reason": "occurrence_cancelled"},
            )
    added = [o.recurrence_id for key, o in new.items() if key not in old]
    if added and not all(expand.is_occurrence(uid, fields, when) for when in added):
        raise Unprocessable(
            "an override's recurrence_id is not an occurrence of the Google series",
            code="provider_override_unsupported",
            details={"reason": "not_an_occurrence"},
        )


def delete_event(ctx: TenantContext, event_id: str, deps: CalendarDeps) -> Event:
    """Delete an event (its UID and timeline entries with it); returns what was deleted."""
    ctx.require(Role.MEMBER)
    _limit(ctx, deps, "event_writes")
    event = load(ctx.tenant_id, event_id, deps)
    deps.store.delete_event(ctx.tenant_id, event)
    if deps.on_change is not None:
        deps.on_change(ctx.tenant_id, event, True, None)
    return event


def _range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = times.instant(start), times.instant(end)
    if end <= start:
        raise Invalid("`to` must be after `from`", code="invalid_range")
    if end - start > MAX_RANGE:
        raise Invalid(f"a range spans at most {MAX_RANGE.days} days", code="range_too_long")
    return start, end


def list_occurrences(
    ctx: TenantContext,
    start: datetime,
    end: datetime,
    deps: CalendarDeps,
    *,
    limit: int = DEFAULT_OCCURRENCES,
) -> Occurrences:
    """Every occurrence meeting [start, end) (times without an offset are UTC), by start.

    400 `invalid_range`, `range_too_long` (over MAX_RANGE), `range_too_busy` (too many events)."""
    start, end = _range(start, end)
    events = deps.store.events_overlapping(ctx.tenant_id, start, end)
    found = expand.expand(events, start, end)
    if len(found) <= limit:
        return Occurrences(items=found, truncated=False)
    return Occurrences(items=found[:limit], truncated=True, next_from=found[limit].start.instant)


# ---------------------------------------------------------------------------------- import


def _skipped(uid: str | None, reason: str, title: str | None = None) -> ImportedEvent:
    return ImportedEvent(uid=uid, result="skipped", reason=reason, title=title)


def upsert(
    ctx: TenantContext,
    parsed: ics.ParsedEvent,
    current: Event | None,
    deps: CalendarDeps,
    *,
    source: EventSource,
    created: list[DomainEvent],
) -> ImportedEvent:
    """One event read from iCalendar (a file, or a provider calendar), matched by UID: created,
    updated (SEQUENCE not lower, content different), unchanged, or skipped with a reason."""
    uid, title, notes = parsed.uid, parsed.fields.title or None, parsed.notes
    try:
        if current is None:
            event = new_event(
                ctx, parsed.fields, EventLinks(), deps.now(), uid=uid, sequence=parsed.sequence, source=source
            )
            store_new(ctx, event, deps)
            created.append(created_event(ctx.tenant_id, event))
            return ImportedEvent(
                uid=uid, event_id=event.event_id, result="imported", title=title, notes=notes
            )
        if parsed.sequence < current.sequence:
            return _skipped(uid, "stale_sequence", title)
        now = deps.now()

        def apply(latest: Event) -> Event | None:
            # The file's SEQUENCE is kept (not bumped): importing it again finds it unchanged.
            updated = replace_fields(latest, parsed.fields, None, now)
            if updated is None and parsed.sequence == latest.sequence:
                return None
            base = updated or latest.model_copy(update={"updated_at": now})
            sequence = max(parsed.sequence, latest.sequence)
            invited = sequence if latest.invited_sequence is not None else None
            return base.model_copy(update={"sequence": sequence, "invited_sequence": invited})

        before, saved = change(ctx.tenant_id, current.event_id, apply, deps)
        outcome: ImportOutcome = "unchanged" if saved is before else "updated"
        return ImportedEvent(uid=uid, event_id=saved.event_id, result=outcome, title=title, notes=notes)
    except Invalid as exc:  # invalid_recurrence, event_too_large
        return _skipped(uid, exc.code, title)
    except NotFound:
        return _skipped(uid, "deleted_meanwhile", title)
    except Conflict as exc:  # uid_in_use: another import created it in between
        return _skipped(uid, exc.code, title)


def import_calendar(ctx: TenantContext, data: bytes, deps: CalendarDeps) -> ImportResult:
    """Import every VEVENT of an iCalendar file (see `mailbridge.calendar.ics` for what is read
    and the skip reasons); importing the same file again changes nothing.

    Errors: 400 `not_icalendar`, `too_deep`, `too_many_events`; 413 `payload_too_large` (over
    MAX_IMPORT_BYTES); 429 `rate_limited`."""
    ctx.require(Role.MEMBER)
    _limit(ctx, deps, "ics")
    parsed = ics.parse_calendar(data)
    existing = deps.store.events_by_uid(ctx.tenant_id, [e.uid for e in parsed.events])
    created: list[DomainEvent] = []
    results = [
        upsert(ctx, e, existing.get(e.uid), deps, source="import", created=created) for e in parsed.events
    ]
    results += [_skipped(s.uid, s.reason, s.title) for s in parsed.skipped]
    _publish(deps, created)
    counts = {
        outcome: sum(r.result == outcome for r in results)
        for outcome in ("imported", "updated", "unchanged", "skipped")
    }
    return ImportResult(method=parsed.method, events=results, **counts)


# ---------------------------------------------------------------------------------- export


def outgoing(event: Event) -> ics.Outgoing:
    return ics.Outgoing(
        uid=event.uid, sequence=event.sequence, fields=event.fields(), dtstamp=event.updated_at
    )


def _export(tenant_id: str, start: datetime, end: datetime, deps: CalendarDeps) -> bytes:
    events = deps.store.events_overlapping(tenant_id, start, end)
    events.sort(key=lambda e: (e.start.instant, e.event_id))
    return ics.build_calendar([outgoing(e) for e in events], name="mailbridge")


def export_calendar(
    ctx: TenantContext, start: datetime | None, end: datetime | None, deps: CalendarDeps
) -> bytes:
    """The tenant's events meeting [start, end) (all of them without a range) as iCalendar:
    series with their overrides, a VTIMEZONE for every TZID used. 429 `rate_limited`."""
    _limit(ctx, deps, "ics")
    if start is not None and end is not None:
        low, high = _range(start, end)
    else:
        low = times.instant(start) if start else times.START_OF_TIME
        high = times.instant(end) if end else times.END_OF_TIME
        if high <= low:
            raise Invalid("`to` must be after `from`", code="invalid_range")
    return _export(ctx.tenant_id, low, high, deps)


# ---------------------------------------------------------------------------------- feeds


def feed_path(token: str) -> str:
    return f"/calendar/feed/{token}"


def feed_info(ctx: TenantContext, deps: CalendarDeps, base_url: str) -> FeedInfo:
    """The caller's subscription URL (the same until rotated)."""
    generation, rotated_at = deps.store.feed_generation(ctx.tenant_id, subject_key(ctx.subject))
    token = deps.signer.feed_token(ctx.tenant_id, ctx.subject, generation)
    return FeedInfo(
        url=base_url + feed_path(token),
        rotated_at=datetime.fromisoformat(rotated_at) if rotated_at else None,
    )


def rotate_feed(ctx: TenantContext, deps: CalendarDeps, base_url: str) -> FeedInfo:
    """A new subscription URL; the old one answers 404 from now on."""
    deps.store.rotate_feed(ctx.tenant_id, subject_key(ctx.subject), deps.now().isoformat())
    return feed_info(ctx, deps, base_url)


def feed(token: str, deps: CalendarDeps) -> bytes:
    """The feed of a token: the tenant's events from FEED_PAST ago to FEED_FUTURE ahead.

    404 `feed_not_found` for a token that is not valid or was rotated (nothing else is told);
    429 `rate_limited` (feeds count as exports)."""
    missing = NotFound("no such feed", code="feed_not_found")
    try:
        claims = deps.signer.feed_claims(token.removesuffix(".ics"))
    except Forbidden as exc:  # invalid_token: the same answer as a rotated token
        raise missing from exc
    generation, _ = deps.store.feed_generation(claims.tenant_id, claims.user)
    if generation != claims.generation:
        raise missing
    if deps.limits is not None:
        deps.limits.check(claims.tenant_id, "ics")
    now = deps.now()
    return _export(claims.tenant_id, now - FEED_PAST, now + FEED_FUTURE, deps)
