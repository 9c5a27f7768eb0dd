"""Invitations, replies and cancellations: iTIP (RFC 5546) over mail (iMIP, RFC 6047).

Sending (through the outbox, from the organizer's connected mailbox, one message per attendee):
- `invite`: METHOD:REQUEST to every attendee but the organizer, each with its own RSVP links
  (`/calendar/rsvp/{token}?status=accepted|declined|tentative`, tokens from `tokens.Signer`);
- `update_event` of an invited event: REQUEST again (SEQUENCE higher when the time changed,
  RFC 5546 section 2.1.4), CANCEL to attendees who were removed; `delete_event`: CANCEL to all;
- `rsvp` (a link clicked): the attendee's PARTSTAT, then METHOD:REPLY to the organizer;
- `respond` (the user answers an invitation someone else sent): METHOD:REPLY to its organizer.
Each message is `multipart/mixed` [`multipart/alternative` [text/plain, text/calendar;
method=...], the same calendar as an `.ics` attachment] (RFC 6047 section 2.4).

Receiving (`on_email`, for every synced `email.received` through the calendar function):
- REPLY from an attendee of one of our events: the attendee's PARTSTAT (the sender must be the
  replying attendee; a lower SEQUENCE than the event's is stale and ignored);
- REQUEST from someone else: a pending invitation (`invitation.status: pending`), updated by
  later REQUESTs with a SEQUENCE not lower; the user answers with `respond`;
- CANCEL from the organizer of an invitation: the invitation (or the occurrences it names) cancelled.
Every change is idempotent: a redelivered message finds nothing left to change.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from mailbridge.calendar import expand, ics, service, times
from mailbridge.calendar.models import (
    Attendee,
    Event,
    EventFields,
    EventLinks,
    EventUpdate,
    Invitation,
    InvitationStatus,
    InviteRequest,
    InviteResult,
    Person,
    Reply,
    RespondRequest,
    RsvpResult,
    SentInvitation,
)
from mailbridge.calendar.service import CalendarDeps, change, rsvp_changed
from mailbridge.calendar.tokens import attendee_key
from mailbridge.errors import Conflict, Invalid, NotFound
from mailbridge.models.account import Account
from mailbridge.observability import logger
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.pagination import Page
from mailbridge.tenancy import Role, TenantContext

Method = Literal["REQUEST", "REPLY", "CANCEL"]
RSVP_GRACE = timedelta(days=7)  # links keep working this long after the event ends
RSVP_MAX = timedelta(days=366)
_REPLY_WORDS = {"accepted": "Accepted", "declined": "Declined", "tentative": "Tentatively accepted"}
_INVITATION_STATUS: dict[str, InvitationStatus] = {
    "needs-action": "pending",
    "accepted": "accepted",
    "declined": "declined",
    "tentative": "tentative",
    "delegated": "declined",
}


@dataclass
class MailDeps:
    """What sending needs: the outbox, and the base URL RSVP links point to."""

    outbox: Any  # mailbridge.outbox.service.OutboxDeps (imported on use: compose is heavy)
    base_url: str


@dataclass
class ItipDeps:
    """What reading iTIP from synced mail needs."""

    calendar: CalendarDeps
    emails: EmailStore
    blobs: BlobStore
    accounts: AccountStore


@dataclass
class ItipOutcome:
    action: str
    changed: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------- mail


def _when(fields: EventFields) -> str:
    assert fields.end is not None
    start, end = fields.start, fields.end
    if start.all_day:
        assert start.date is not None
        assert end.date is not None
        last = end.date - timedelta(days=1)
        span = f"{start.date:%A %d %B %Y}" + (f" - {last:%A %d %B %Y}" if last > start.date else "")
        return f"{span} (all day)"
    assert start.date_time is not None
    assert end.date_time is not None
    zone = f" ({start.date_time.tzinfo})" if start.date_time.tzinfo else ""
    same_day = start.date_time.date() == end.date_time.date()
    until = f"{end.date_time:%H:%M}" if same_day else f"{end.date_time:%A %d %B %Y %H:%M}"
    return f"{start.date_time:%A %d %B %Y %H:%M} - {until}{zone}"


def _draft(account: Account, to: Person, subject: str, text: str, method: Method, calendar: bytes) -> Any:
    from mailbridge.compose import CalendarBody, Draft, OutgoingAttachment
    from mailbridge.models.email import EmailAddress

    domain = account.address.rpartition("@")[2]
    try:
        return Draft(
            from_=EmailAddress(name=account.display_name, address=account.address),
            to=[EmailAddress(name=to.name, address=to.address)],
            subject=subject,
            text=text,
            calendar=CalendarBody(method=method, ics=calendar.decode()),
            attachments=[
                OutgoingAttachment(
                    filename="invite.ics" if method != "REPLY" else "reply.ics",
                    content_type="application/ics",
                    data=calendar,
                )
            ],
            message_id=f"{uuid.uuid4().hex}@{domain}",
        )
    except ValidationError as exc:
        details = [{"loc": [str(p) for p in err["loc"]], "type": err["type"]} for err in exc.errors()]
        raise Invalid("the message cannot be built", code="invalid_message", details=details) from None


def _send(ctx: TenantContext, account: Account, draft: Any, mail: MailDeps) -> str:
    from mailbridge.outbox.service import queue_draft

    return str(queue_draft(ctx, account, draft, mail.outbox).email_id)


def _calendar(event: Event, method: Method, *, sequence: int, now: datetime, **kwargs: Any) -> bytes:
    fields = event.fields()
    if method == "CANCEL":
        fields = fields.model_copy(update={"status": "cancelled"})
    item = ics.Outgoing(uid=event.uid, sequence=sequence, fields=fields, dtstamp=now, **kwargs)
    return ics.build_calendar([item], method=method)


def _link_expiry(event: Event, now: datetime) -> datetime:
    end = datetime.fromisoformat(expand.span(event.uid, event).end)
    return min(max(end, now) + RSVP_GRACE, now + RSVP_MAX)


def _invitation_text(event: Event, links: dict[str, str] | None, message: str | None, *, update: bool) -> str:
    organizer = event.organizer
    who = (organizer.name or organizer.address) if organizer else "The organizer"
    lines = [
        f"{who} {'updated the invitation to' if update else 'invites you to'}: {event.title or '(no title)'}",
        "",
    ]
    lines.append(f"When: {_when(event)}")
    if event.recurring:
        lines.append("Repeats: " + "; ".join(event.recurrence.rrule if event.recurrence else []))
    if event.location:
        lines.append(f"Where: {event.location}")
    if message:
        lines += ["", message]
    if event.description:
        lines += ["", event.description]
    if links:
        lines += ["", "Your answer (one click, no sign-in):"]
        lines += [f"  {word}: {url}" for word, url in links.items()]
    return "\n".join(lines) + "\n"


def _rsvp_links(
    event: Event, tenant_id: str, attendee: Attendee, deps: CalendarDeps, mail: MailDeps
) -> dict[str, str]:
    token = deps.signer.rsvp_token(
        tenant_id, event.event_id, attendee.address, _link_expiry(event, deps.now())
    )
    base = f"{mail.base_url}/calendar/rsvp/{token}?status="
    return {"Accept": base + "accepted", "Maybe": base + "tentative", "Decline": base + "declined"}


def _guests(event: Event) -> list[Attendee]:
    organizer = event.organizer.address if event.organizer else None
    return [a for a in event.attendees if a.address != organizer]


def _send_requests(
    ctx: TenantContext,
    event: Event,
    account: Account,
    guests: Sequence[Attendee],
    deps: CalendarDeps,
    mail: MailDeps,
    *,
    message: str | None,
    update: bool,
) -> list[SentInvitation]:
    calendar = _calendar(event, "REQUEST", sequence=event.sequence, now=deps.now())
    prefix = "Updated invitation" if update else "Invitation"
    sent = []
    for guest in guests:
        text = _invitation_text(
            event, _rsvp_links(event, ctx.tenant_id, guest, deps, mail), message, update=update
        )
        draft = _draft(account, guest, f"{prefix}: {event.title or '(no title)'}", text, "REQUEST", calendar)
        sent.append(SentInvitation(address=guest.address, email_id=_send(ctx, account, draft, mail)))
    return sent


def _send_cancels(
    ctx: TenantContext,
    event: Event,
    account: Account,
    guests: Sequence[Attendee],
    sequence: int,
    deps: CalendarDeps,
    mail: MailDeps,
) -> list[SentInvitation]:
    calendar = _calendar(event, "CANCEL", sequence=sequence, now=deps.now())
    sent = []
    for guest in guests:
        text = f"This event was cancelled: {event.title or '(no title)'}\n\nWhen: {_when(event)}\n"
        draft = _draft(account, guest, f"Cancelled: {event.title or '(no title)'}", text, "CANCEL", calendar)
        sent.append(SentInvitation(address=guest.address, email_id=_send(ctx, account, draft, mail)))
    return sent


def _account(ctx: TenantContext, account_id: str, mail: MailDeps) -> Account:
    account: Account = mail.outbox.accounts.get_account(ctx.tenant_id, account_id)
    return account


# ---------------------------------------------------------------------------------- organizer side


def invite(
    ctx: TenantContext, event_id: str, body: InviteRequest, deps: CalendarDeps, mail: MailDeps
) -> InviteResult:
    """Send the event's iTIP REQUEST to every attendee but the organizer (202).

    The account becomes the organizer when the event has none. Errors: 404 `event_not_found`,
    `account_not_found`; 400 `organizer_mismatch` (the event's organizer is another address),
    `no_attendees`, `account_cannot_send`, `invalid_message`; 409 `event_cancelled`,
    `not_organizer` (an invitation received from someone else); 429 `rate_limited`."""
    ctx.require(Role.MEMBER)
    service._limit(ctx, deps, "event_writes")
    account = _account(ctx, body.account_id, mail)
    address = account.address.lower()

    def apply(current: Event) -> Event | None:
        if current.invitation is not None:
            raise Conflict("this is an invitation from someone else; answer it instead", code="not_organizer")
        if current.status == "cancelled":
            raise Conflict("the event is cancelled", code="event_cancelled")
        organizer = current.organizer or Person(address=address, name=account.display_name)
        if organizer.address != address:
            raise Invalid(
                "the event's organizer is another address than the account's", code="organizer_mismatch"
            )
        if not _guests(current.model_copy(update={"organizer": organizer})):
            raise Invalid("the event has no attendees to invite", code="no_attendees")
        if (current.organizer, current.mail_account_id, current.invited_sequence) == (
            organizer,
            account.account_id,
            current.sequence,
        ):
            return None
        return current.model_copy(
            update={
                "organizer": organizer,
                "mail_account_id": account.account_id,
                "invited_sequence": current.sequence,
                "updated_at": deps.now(),
            }
        )

    _, event = change(ctx.tenant_id, event_id, apply, deps)
    sent = _send_requests(ctx, event, account, _guests(event), deps, mail, message=body.message, update=False)
    return InviteResult(event_id=event.event_id, method="REQUEST", sequence=event.sequence, sent=sent)


def _invited_account(ctx: TenantContext, event: Event, mail: MailDeps) -> Account | None:
    if event.invited_sequence is None or not event.mail_account_id:
        return None
    try:
        return _account(ctx, event.mail_account_id, mail)
    except NotFound:
        logger.warning("invitation account gone; attendees not told", extra={"event_id": event.event_id})
        return None


def update_event(
    ctx: TenantContext, event_id: str, body: EventUpdate, deps: CalendarDeps, mail: MailDeps
) -> Event:
    """`service.update_event`, then, for an invited event that changed: REQUEST (or CANCEL when
    it became cancelled) to its attendees, and CANCEL to attendees it no longer has."""
    previous, saved = service.update_event(ctx, event_id, body, deps)
    account = _invited_account(ctx, saved, mail)
    if saved is previous or account is None:
        return saved
    kept = {a.address for a in _guests(saved)}
    removed = [a for a in _guests(previous) if a.address not in kept]
    if removed:
        _send_cancels(ctx, previous, account, removed, saved.sequence, deps, mail)
    if saved.status == "cancelled":
        if previous.status != "cancelled":
            _send_cancels(ctx, saved, account, _guests(saved), saved.sequence, deps, mail)
        return saved
    _send_requests(ctx, saved, account, _guests(saved), deps, mail, message=None, update=True)
    return saved


def delete_event(ctx: TenantContext, event_id: str, deps: CalendarDeps, mail: MailDeps) -> None:
    """Delete; an invited event that was not cancelled sends CANCEL (SEQUENCE + 1) to its attendees."""
    deleted = service.delete_event(ctx, event_id, deps)
    account = _invited_account(ctx, deleted, mail)
    if account is not None and deleted.status != "cancelled":
        _send_cancels(ctx, deleted, account, _guests(deleted), deleted.sequence + 1, deps, mail)


def _set_partstat(event: Event, address: str, partstat: str, now: datetime) -> Event:
    attendees = [
        a.model_copy(update={"partstat": partstat}) if a.address == address else a for a in event.attendees
    ]
    return event.model_copy(update={"attendees": attendees, "updated_at": now})


def _reply_mail(
    ctx: TenantContext,
    event: Event,
    account: Account,
    attendee: Attendee,
    status: str,
    deps: CalendarDeps,
    mail: MailDeps,
    comment: str | None = None,
) -> None:
    """METHOD:REPLY with the one attendee (RFC 5546 section 3.2.3) to the organizer."""
    if event.organizer is None:
        return
    extra = {"COMMENT": comment} if comment else {}
    calendar = _calendar(
        event,
        "REPLY",
        sequence=event.sequence,
        now=deps.now(),
        attendees=[attendee],
        overrides=False,
        extra=extra,
    )
    word = _REPLY_WORDS.get(status, status)
    who = attendee.name or attendee.address
    text = f"{who} {word.lower()}: {event.title or '(no title)'}\n\nWhen: {_when(event)}\n"
    if comment:
        text += f"\n{comment}\n"
    draft = _draft(
        account, event.organizer, f"{word}: {event.title or '(no title)'} ({who})", text, "REPLY", calendar
    )
    _send(ctx, account, draft, mail)


def rsvp(token: str, status: Reply, deps: CalendarDeps, mail: MailDeps) -> RsvpResult:
    """An RSVP link: set the attendee's PARTSTAT and send the organizer a REPLY. Clicking again
    (the same answer) changes nothing and sends nothing.

    403 `invalid_token` / `token_expired`; 404 `event_not_found`, `attendee_not_found` (no longer
    invited); 409 `event_cancelled`."""
    claims = deps.signer.rsvp_claims(token, deps.now())
    tenant = claims.tenant_id
    now = deps.now()

    def attendee_of(event: Event) -> Attendee:
        found = next((a for a in event.attendees if attendee_key(a.address) == claims.attendee), None)
        if found is None:
            raise NotFound("you are no longer invited to this event", code="attendee_not_found")
        return found

    def apply(current: Event) -> Event | None:
        if current.status == "cancelled":
            raise Conflict("the event was cancelled", code="event_cancelled")
        attendee = attendee_of(current)
        if attendee.partstat == status:
            return None
        return _set_partstat(current, attendee.address, status, now)

    previous, saved = change(tenant, claims.event_id, apply, deps)
    attendee = attendee_of(saved)
    result = RsvpResult(
        event_id=saved.event_id,
        title=saved.title,
        start=saved.start,
        attendee=attendee.address,
        status=status,
        changed=saved is not previous,
    )
    if saved is previous:
        return result
    before = attendee_of(previous).partstat
    service._publish(deps, [rsvp_changed(tenant, saved, attendee.address, before, "rsvp_link")])
    ctx = TenantContext(tenant_id=tenant, role=Role.MEMBER, subject=f"rsvp:{claims.attendee}")
    account = _invited_account(ctx, saved, mail)
    if account is not None:
        _reply_mail(ctx, saved, account, attendee, status, deps, mail)
    return result


# ---------------------------------------------------------------------------------- attendee side


def respond(
    ctx: TenantContext, event_id: str, body: RespondRequest, deps: CalendarDeps, mail: MailDeps
) -> Event:
    """Answer an invitation someone else sent: our PARTSTAT, and a REPLY to its organizer from
    the mailbox that received it. The same answer again changes and sends nothing.

    400 `not_an_invitation`; 404 `event_not_found`; 409 `invitation_cancelled`; 429 `rate_limited`."""
    ctx.require(Role.MEMBER)
    service._limit(ctx, deps, "event_writes")
    now = deps.now()

    def apply(current: Event) -> Event | None:
        invitation = current.invitation
        if invitation is None:
            raise Invalid("this event is not an invitation from someone else", code="not_an_invitation")
        if invitation.status == "cancelled" or current.status == "cancelled":
            raise Conflict("the organizer cancelled this event", code="invitation_cancelled")
        if invitation.status == body.status:
            return None
        updated = _set_partstat(current, invitation.attendee, body.status, now)
        return updated.model_copy(
            update={"invitation": invitation.model_copy(update={"status": body.status})}
        )

    previous, saved = change(ctx.tenant_id, event_id, apply, deps)
    if saved is previous:
        return saved
    assert saved.invitation is not None
    address = saved.invitation.attendee
    before = next((a.partstat for a in previous.attendees if a.address == address), "needs-action")
    service._publish(deps, [rsvp_changed(ctx.tenant_id, saved, address, before, "response")])
    me = next((a for a in saved.attendees if a.address == address), None) or Attendee(
        address=address, partstat=body.status
    )
    account = _account(ctx, saved.invitation.account_id, mail)
    _reply_mail(ctx, saved, account, me, body.status, deps, mail, body.comment)
    return saved


def list_invitations(
    ctx: TenantContext, deps: CalendarDeps, *, cursor: str | None, limit: int
) -> Page[Event]:
    """Invitations waiting for an answer, latest received first."""
    items, next_cursor = deps.store.pending_page(ctx.tenant_id, cursor=cursor, limit=limit)
    return Page[Event](items=items, next_cursor=next_cursor)


# ---------------------------------------------------------------------------------- incoming mail


def _calendar_part(item: dict[str, Any], blobs: BlobStore) -> dict[str, Any] | None:
    if item.get("calendar"):
        return dict(item["calendar"])
    body_key = item.get("body_key")
    if body_key:
        bodies = blobs.get_json(str(body_key))
        calendar = bodies.get("calendar")
        return dict(calendar) if calendar else None
    return None


def _sender(item: dict[str, Any]) -> str | None:
    senders = item.get("from") or []
    address = senders[0].get("address") if senders else None
    return str(address).lower() if address else None


def _reply_refusal(parsed: ics.ReplyItem, sender: str, current: Event | None) -> str | None:
    if current is None:
        return "unknown_event"
    answer = next((a for a in parsed.attendees if a.address == sender), None)
    checks = (
        # replies go to the organizer; here we are an attendee
        (current.invitation is not None, "not_organizer"),
        # PARTSTAT is kept per series, not per occurrence
        (parsed.recurrence_id, "occurrence_reply_unsupported"),
        (parsed.sequence < current.sequence, "stale"),
        # RFC 5546 section 3.2.3: the reply comes from the attendee it answers for
        (answer is None, "attendee_mismatch"),
        (answer is not None and answer.partstat == "needs-action", "no_answer"),
    )
    return next((reason for refused, reason in checks if refused), None)


def _reply(
    ctx: TenantContext, parsed: ics.ReplyItem, sender: str, deps: CalendarDeps, current: Event | None
) -> str:
    refusal = _reply_refusal(parsed, sender, current)
    if refusal is not None or current is None:
        return refusal or "unknown_event"
    partstat = next(a.partstat for a in parsed.attendees if a.address == sender)

    def apply(latest: Event) -> Event | None:
        known = next((a for a in latest.attendees if a.address == sender), None)
        if known is None or known.partstat == partstat:
            return None
        return _set_partstat(latest, sender, partstat, deps.now())

    previous, saved = change(ctx.tenant_id, current.event_id, apply, deps)
    if saved is previous:
        known = any(a.address == sender for a in saved.attendees)
        return "unchanged" if known else "unknown_attendee"
    before = next((a.partstat for a in previous.attendees if a.address == sender), "needs-action")
    service._publish(deps, [rsvp_changed(ctx.tenant_id, saved, sender, before, "email_reply")])
    return "updated"


def _request_refusal(parsed: ics.ParsedEvent, me: str, current: Event | None) -> str | None:
    organizer = parsed.fields.organizer
    if organizer is None or organizer.address == me:
        return "own_request" if organizer else "no_organizer"
    if current is None:
        return None
    if current.invitation is None:
        return "known_event"  # organized here, or imported: not ours to overwrite from mail
    if parsed.sequence < current.sequence:
        return "stale"
    if parsed.partial:
        return "partial_update_unsupported"  # a REQUEST for single occurrences of a known series
    return None


def _request(
    ctx: TenantContext,
    parsed: ics.ParsedEvent,
    account: Account,
    email_id: str,
    deps: CalendarDeps,
    current: Event | None,
) -> str:
    me = account.address.lower()
    refusal = _request_refusal(parsed, me, current)
    if refusal is not None:
        return refusal
    mine = next((a for a in parsed.fields.attendees if a.address == me), None)
    status = _INVITATION_STATUS[mine.partstat] if mine else "pending"
    now = deps.now()
    if current is None:
        invitation = Invitation(
            status=status, account_id=account.account_id, attendee=me, email_id=email_id, received_at=now
        )
        event = service.new_event(
            ctx,
            parsed.fields,
            EventLinks(),
            now,
            uid=parsed.uid,
            sequence=parsed.sequence,
            source="invitation",
            invitation=invitation,
        )
        service.store_new(ctx, event, deps)
        service._publish(deps, [service.created_event(ctx.tenant_id, event)])
        return "invitation_created"

    def apply(latest: Event) -> Event | None:
        invitation = latest.invitation
        assert invitation is not None
        if parsed.sequence > latest.sequence and invitation.status != "cancelled":
            # Rescheduled (RFC 5546 section 2.1.4): the organizer's view of our answer counts again.
            invitation = invitation.model_copy(
                update={"status": status, "email_id": email_id, "received_at": now}
            )
        attendees = parsed.fields.attendees
        if invitation.status not in ("pending", "cancelled"):
            attendees = [
                a.model_copy(update={"partstat": invitation.status}) if a.address == me else a
                for a in attendees
            ]
        fields = parsed.fields.model_copy(update={"attendees": attendees})
        unchanged = (
            service.same_content(latest.fields(), fields)
            and parsed.sequence == latest.sequence
            and invitation == latest.invitation
        )
        if unchanged:
            return None
        return Event.model_validate(
            {
                **latest.model_dump(),
                **fields.model_dump(),
                "sequence": parsed.sequence,
                "invitation": invitation,
                "updated_at": now,
            }
        )

    previous, saved = change(ctx.tenant_id, current.event_id, apply, deps)
    return "unchanged" if saved is previous else "invitation_updated"


def _cancel(
    ctx: TenantContext, parsed: ics.ParsedEvent, sender: str, deps: CalendarDeps, current: Event | None
) -> str:
    if current is None or current.invitation is None:
        return "unknown_event"
    if current.organizer is None or current.organizer.address != sender:
        return "not_from_organizer"
    if parsed.sequence < current.sequence:
        return "stale"
    now = deps.now()
    partial = parsed.partial

    def apply(latest: Event) -> Event | None:
        assert latest.invitation is not None
        if partial:
            ids = [o.recurrence_id for o in parsed.fields.overrides]
            kept = {times.order_key(o.recurrence_id): o for o in latest.overrides}
            for rid in ids:
                key = times.order_key(latest.in_start_form(rid))
                kept[key] = (kept.get(key) or _override(latest, rid)).model_copy(
                    update={"status": "cancelled"}
                )
            overrides = sorted(kept.values(), key=lambda o: times.order_key(o.recurrence_id))
            if overrides == latest.overrides:
                return None
            return latest.model_copy(update={"overrides": overrides, "updated_at": now})
        if latest.status == "cancelled" and latest.invitation.status == "cancelled":
            return None
        invitation = latest.invitation.model_copy(update={"status": "cancelled"})
        return latest.model_copy(update={"status": "cancelled", "invitation": invitation, "updated_at": now})

    previous, saved = change(ctx.tenant_id, current.event_id, apply, deps)
    return "unchanged" if saved is previous else "cancelled"


def _override(event: Event, rid: times.DateOrTime) -> Any:
    from mailbridge.calendar.models import Override

    return Override(recurrence_id=event.in_start_form(rid))


def on_email(tenant_id: str, email_id: str, account_id: str, deps: ItipDeps) -> ItipOutcome:
    """Apply the iTIP message a synced email carries (see the module docstring).

    Actions: `missing` (no such email), `outbound`, `no_calendar`, `unreadable`, `no_account`,
    `no_method` or the METHOD handled, with what happened to each event in `changed`."""
    item = deps.emails.get_email(tenant_id, email_id)
    if item is None:
        return ItipOutcome("missing")
    if item.get("direction") == "outbound":
        return ItipOutcome("outbound")
    part = _calendar_part(item, deps.blobs)
    if not part or not part.get("ics"):
        return ItipOutcome("no_calendar")
    try:
        parsed = ics.parse_calendar(str(part["ics"]))
        method = str(part.get("method") or parsed.method or "").upper()
        replies = ics.parse_reply(str(part["ics"])) if method == "REPLY" else []
    except Invalid:
        return ItipOutcome("unreadable")
    sender = _sender(item)
    try:
        account = deps.accounts.get_account(tenant_id, account_id)
    except NotFound:
        return ItipOutcome("no_account")
    ctx = TenantContext(tenant_id=tenant_id, role=Role.MEMBER, subject=f"itip:{account_id}")
    calendar = deps.calendar
    uids = [e.uid for e in parsed.events] + [r.uid for r in replies]
    existing = calendar.store.events_by_uid(tenant_id, list(dict.fromkeys(uids)))
    outcome = ItipOutcome(method.lower() or "no_method")
    # A REPLY need not carry DTSTART (RFC 5546 section 3.2.3): read as answers, not as events.
    for answer in replies:
        current = existing.get(answer.uid)
        outcome.changed.append(_reply(ctx, answer, sender, calendar, current) if sender else "no_sender")
    for event in parsed.events if method != "REPLY" else []:
        current = existing.get(event.uid)
        if method == "REQUEST":
            result = _request(ctx, event, account, email_id, calendar, current)
        elif method == "CANCEL" and sender:
            result = _cancel(ctx, event, sender, calendar, current)
        else:
            result = "ignored"
        outcome.changed.append(result)
    return outcome
