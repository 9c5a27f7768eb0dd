"""Follow-up flags: set (with a one-time reminder schedule), list by state, complete, remove, and
the reminder itself.

A follow-up sets the email's flag (IMAP `\\Flagged`, RFC 9051 section 2.3.2; the sync function
writes it as Gmail's `STARRED` label or Graph's `flag`) through a `PushFlags` per mailbox;
completing or removing it clears the flag. At `due_at` the schedule puts a `FollowUpDue` on the
RemindersQueue and `remind` announces `follow_up.due` once for that due time (automations can
trigger on it): the flag records `reminded_at` after the event, so a replay finds it and does
nothing, and a flag moved to another time or completed is not reminded of the old one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailbridge.access import ACCESS_ATTRIBUTES, Visibility, about_visible_mail, access_of
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.emails import EMAIL_ID, FLAGGED
from mailbridge.errors import NotFound, Unprocessable
from mailbridge.followups.models import FollowUp, FollowUpDue, FollowUpRequest, ListState
from mailbridge.queues import SyncQueue
from mailbridge.schedules import OneTimeScheduler
from mailbridge.store.base import Item
from mailbridge.store.emails import EmailStore
from mailbridge.store.flags import FlagStore
from mailbridge.store.keys import digest
from mailbridge.store.pagination import Page
from mailbridge.sync.messages import PushFlags
from mailbridge.tenancy import Role, TenantContext

MIN_AHEAD = timedelta(minutes=1)
MAX_AHEAD = timedelta(days=366)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FollowUpDeps:
    flags: FlagStore
    emails: EmailStore
    scheduler: OneTimeScheduler
    sync_queue: SyncQueue
    publisher: EventPublisher
    now: Callable[[], datetime] = _now


def schedule_name(tenant_id: str, email_id: str) -> str:
    """`fu-{tenant digest}-{email id}`: 49 characters of [0-9a-z_-] (Scheduler allows 64)."""
    return f"fu-{digest(tenant_id, 16)}-{email_id}"


def to_follow_up(item: Item) -> FollowUp:
    def when(name: str) -> datetime | None:
        return datetime.fromisoformat(str(item[name])) if item.get(name) else None

    return FollowUp.model_validate(
        {
            "email_id": item["email_id"],
            "thread_id": item["thread_id"],
            "due_at": when("due_at"),
            "priority": item["priority"],
            "note": item.get("note"),
            "state": item["state"],
            "created_at": when("created_at"),
            "completed_at": when("completed_at"),
            "reminded_at": when("reminded_at"),
        }
    )


def _email(ctx: TenantContext, email_id: str, deps: FollowUpDeps) -> Item:
    item = deps.emails.get_email(ctx.tenant_id, email_id) if EMAIL_ID.fullmatch(email_id) else None
    if item is None or item.get("deleted"):
        raise NotFound("no such email")
    return access_of(ctx).require_write(item, NotFound("no such email"))  # mailbridge.access


def _writable(ctx: TenantContext, email_id: str, deps: FollowUpDeps) -> Item | None:
    """The email of a follow-up to change, None when it is gone; 404 `follow_up_not_found` when
    the caller may not write to it (mailbridge.access), as when there is no follow-up."""
    email = deps.emails.get_email(ctx.tenant_id, email_id) if EMAIL_ID.fullmatch(email_id) else None
    if email is not None and access_of(ctx).level(email) is not Visibility.FULL:
        raise NotFound("no follow-up on this email", code="follow_up_not_found")
    return email


def _flag(ctx: TenantContext, email: Item, flagged: bool, deps: FollowUpDeps) -> None:
    """Set or clear the email's flag here and on every mailbox that holds it."""
    email_id = str(email["email_id"])
    deps.emails.update_email(ctx.tenant_id, email_id, flagged=flagged)
    add, remove = ([FLAGGED], []) if flagged else ([], [FLAGGED])
    pushes = [
        PushFlags(tenant_id=ctx.tenant_id, account_id=str(account), email_id=email_id, add=add, remove=remove)
        for account in sorted(email.get("accounts") or ())
    ]
    if pushes:
        deps.sync_queue.send_many(pushes)


def put_follow_up(
    ctx: TenantContext, email_id: str, request: FollowUpRequest, deps: FollowUpDeps
) -> FollowUp:
    """Set (or move) the email's follow-up; 404 `not_found`, 422 `follow_up_in_past` (less than a
    minute ahead), `follow_up_too_far` (more than a year)."""
    ctx.require(Role.MEMBER)
    now = deps.now()
    due_at = request.due_at.astimezone(UTC).replace(microsecond=0)
    if due_at < now + MIN_AHEAD:
        raise Unprocessable("due_at must be at least a minute in the future", code="follow_up_in_past")
    if due_at > now + MAX_AHEAD:
        raise Unprocessable("due_at may be at most a year ahead", code="follow_up_too_far")
    email = _email(ctx, email_id, deps)
    earlier = deps.flags.get_flag(ctx.tenant_id, email_id)
    name = schedule_name(ctx.tenant_id, email_id)
    if earlier is not None and earlier.get("state") == "open":
        deps.scheduler.delete(name)
    values: Item = {
        "email_id": email_id,
        "thread_id": str(email["thread_id"]),
        "due_at": due_at.isoformat(),
        "priority": request.priority,
        "note": request.note,
        "state": "open",
        "created_at": now.isoformat(),
        "user": ctx.subject,
    }
    deps.flags.put_flag(ctx.tenant_id, email_id, values)
    due = FollowUpDue(tenant_id=ctx.tenant_id, email_id=email_id, due_at=values["due_at"])
    deps.scheduler.create(name, due_at, due.model_dump(mode="json"))
    _flag(ctx, email, True, deps)
    return to_follow_up(values)


def list_follow_ups(
    ctx: TenantContext, state: ListState, deps: FollowUpDeps, *, cursor: str | None, limit: int
) -> Page[FollowUp]:
    """`due` (open, due later), `overdue` (open, due now or before) or `done`, in email id order;
    a page holds `limit` whenever that many match. Follow-ups on mail private to the caller
    (mailbridge.access) are left out."""
    keep = about_visible_mail(
        access_of(ctx),
        lambda ids: deps.emails.batch_get_emails(ctx.tenant_id, ids, projection=ACCESS_ATTRIBUTES),
    )
    items, next_cursor = deps.flags.list_flags(
        ctx.tenant_id, state, deps.now(), cursor=cursor, limit=limit, keep=keep
    )
    return Page[FollowUp](items=[to_follow_up(i) for i in items], next_cursor=next_cursor)


def complete(ctx: TenantContext, email_id: str, deps: FollowUpDeps) -> FollowUp:
    """Mark done, delete the reminder's schedule, clear the flag; 404 `follow_up_not_found` when
    there is no open follow-up."""
    ctx.require(Role.MEMBER)
    email = _writable(ctx, email_id, deps)
    done = deps.flags.complete(ctx.tenant_id, email_id, deps.now()) if EMAIL_ID.fullmatch(email_id) else None
    if done is None:
        raise NotFound("no open follow-up on this email", code="follow_up_not_found")
    deps.scheduler.delete(schedule_name(ctx.tenant_id, email_id))
    if email is not None:
        _flag(ctx, email, False, deps)
    return to_follow_up(done)


def remove(ctx: TenantContext, email_id: str, deps: FollowUpDeps) -> None:
    """Delete the follow-up and its schedule, clear the flag; 404 `follow_up_not_found`."""
    ctx.require(Role.MEMBER)
    email = _writable(ctx, email_id, deps)
    if not EMAIL_ID.fullmatch(email_id) or not deps.flags.delete_flag(ctx.tenant_id, email_id):
        raise NotFound("no follow-up on this email", code="follow_up_not_found")
    deps.scheduler.delete(schedule_name(ctx.tenant_id, email_id))
    if email is not None:
        _flag(ctx, email, False, deps)


def remind(message: FollowUpDue, deps: FollowUpDeps) -> bool:
    """Announce `follow_up.due` for an open follow-up still due at `message.due_at`, once; False
    (nothing announced) when it was already, or the follow-up is done, gone or moved."""
    flag = deps.flags.get_flag(message.tenant_id, message.email_id)
    if (
        flag is None
        or flag.get("state") != "open"
        or str(flag["due_at"]) != message.due_at
        or flag.get("reminded_at")
    ):
        return False
    follow_up = to_follow_up(flag)
    event = DomainEvent(
        detail_type="follow_up.due",
        tenant_id=message.tenant_id,
        data={
            "email_id": follow_up.email_id,
            "thread_id": follow_up.thread_id,
            "due_at": message.due_at,
            "priority": follow_up.priority,
            "user": str(flag.get("user") or ""),
        },
        idempotency_key=f"follow_up.due:{message.email_id}:{message.due_at}",
    )
    deps.publisher.publish([event])
    return deps.flags.mark_reminded(message.tenant_id, message.email_id, message.due_at, deps.now())
