"""Snooze an email or a thread, cancel it, and wake it (at its time, or early on a reply).

A snooze writes its record (`mailbridge.store.snoozes`), a one-time EventBridge Scheduler `at()`
schedule that puts a `WakeSnooze` on the RemindersQueue (`mailbridge.schedules`), and
`snoozed_until` on each email it hides, with the key of the sparse snoozed index (gsi7) in the
same update: default listings filter on that attribute in the same read, and `?snoozed=true` reads
the index (`mailbridge.emails`), so neither costs an extra request. Cancelling and waking remove
both in one update (`EmailStore.end_snooze`).

Waking shows the emails again, marks them unread here and on every mailbox (a `PushFlags` removing
IMAP `\\Seen`, RFC 9051 section 2.3.2; the sync function writes it as Gmail's `UNREAD` label or
Graph's `isRead=false`), announces `email.unsnoozed`, and only then closes the record: a wake-up
replayed after it finished finds the record closed and does nothing; one replayed half-way repeats
only changes that are the same the second time (the event keeps its idempotency key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.access import Visibility, access_of
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.emails import EMAIL_ID, SEEN, THREAD_ID
from mailbridge.errors import NotFound, Unprocessable
from mailbridge.queues import SyncQueue
from mailbridge.schedules import OneTimeScheduler
from mailbridge.snooze import presets
from mailbridge.snooze.models import Snooze, SnoozeRequest, Target, WakeReason, WakeSnooze
from mailbridge.store.base import Item
from mailbridge.store.emails import EmailStore
from mailbridge.store.keys import digest
from mailbridge.store.snoozes import SnoozeStore
from mailbridge.sync.messages import PushFlags
from mailbridge.tenancy import Role, TenantContext

# At most a year ahead (the same bound as scheduled send), and at least a minute: EventBridge
# Scheduler fires at() schedules with minute precision.
MIN_AHEAD = timedelta(minutes=1)
MAX_AHEAD = timedelta(days=366)
DEFAULT_TIME_ZONE = "UTC"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SnoozeDeps:
    snoozes: SnoozeStore
    emails: EmailStore
    scheduler: OneTimeScheduler
    sync_queue: SyncQueue
    publisher: EventPublisher
    now: Callable[[], datetime] = _now
    default_time_zone: str = DEFAULT_TIME_ZONE


def schedule_name(tenant_id: str, target_id: str) -> str:
    """`snz-{tenant digest}-{target id}`: at most 50 characters of [0-9a-z_-] (Scheduler allows 64)."""
    return f"snz-{digest(tenant_id, 16)}-{target_id}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _wake_time(request: SnoozeRequest, deps: SnoozeDeps, now: datetime) -> datetime:
    if request.until is not None:
        until = request.until.astimezone(UTC)
    else:
        assert request.preset is not None  # the model allows exactly one of the two
        zone = presets.zone(request.time_zone or deps.default_time_zone)
        until = presets.resolve(request.preset, now, zone)
    if until < now + MIN_AHEAD:
        raise Unprocessable("until must be at least a minute in the future", code="snooze_in_past")
    if until > now + MAX_AHEAD:
        raise Unprocessable("until may be at most a year ahead", code="snooze_too_far")
    return until.replace(microsecond=0)


def _targets(ctx: TenantContext, target: Target, target_id: str, deps: SnoozeDeps) -> list[Item]:
    """The emails a snooze of `target_id` hides: the email, or the thread's emails a mailbox holds."""
    access = access_of(ctx)
    if target == "email":
        item = deps.emails.get_email(ctx.tenant_id, target_id) if EMAIL_ID.fullmatch(target_id) else None
        if item is None or item.get("deleted"):
            raise NotFound("no such email")
        return [access.require_write(item, NotFound("no such email"))]
    items = deps.emails.thread_emails(ctx.tenant_id, target_id) if THREAD_ID.fullmatch(target_id) else []
    # A snooze is a write: only the thread's mail the caller sees in full (mailbridge.access).
    live = [item for item in items if not item.get("deleted") and access.level(item) is Visibility.FULL]
    if not live:
        raise NotFound("no such thread", code="thread_not_found")
    return live


def to_snooze(target_id: str, record: Item) -> Snooze:
    return Snooze(
        target="thread" if target_id.startswith("th_") else "email",
        id=target_id,
        thread_id=str(record["thread_id"]),
        email_ids=sorted(str(e) for e in record.get("email_ids") or ()),
        until=datetime.fromisoformat(str(record["until"])),
        wake_on_reply=bool(record.get("wake_on_reply")),
        state=record["state"],
        snoozed_at=datetime.fromisoformat(str(record["snoozed_at"])),
    )


def snooze(
    ctx: TenantContext, target: Target, target_id: str, request: SnoozeRequest, deps: SnoozeDeps
) -> Snooze:
    """Snooze an email or a thread until `request`'s time; snoozing again replaces the snooze.

    404 `not_found`/`thread_not_found`; 422 `snooze_in_past` (less than a minute ahead),
    `snooze_too_far` (more than a year); 400 `invalid_time_zone`.
    """
    ctx.require(Role.MEMBER)
    now = deps.now()
    until = _wake_time(request, deps, now)
    emails = _targets(ctx, target, target_id, deps)
    thread_id = str(emails[0]["thread_id"])
    earlier = deps.snoozes.get_snooze(ctx.tenant_id, target_id)
    name = schedule_name(ctx.tenant_id, target_id)
    if earlier is not None and earlier.get("state") == "snoozed":
        deps.scheduler.delete(name)  # its wake-up, if it still fired, names an older `until`
    record: Item = {
        "state": "snoozed",
        "until": _iso(until),
        "thread_id": thread_id,
        "email_ids": [str(e["email_id"]) for e in emails],
        "wake_on_reply": request.wake_on_reply,
        "snoozed_at": _iso(now),
        "user": ctx.subject,
    }
    deps.snoozes.put_snooze(ctx.tenant_id, target_id, record)
    if request.wake_on_reply:
        deps.snoozes.put_reply_lookup(ctx.tenant_id, thread_id, target_id)
    else:
        deps.snoozes.delete_reply_lookup(ctx.tenant_id, thread_id, target_id)
    wake = WakeSnooze(tenant_id=ctx.tenant_id, target_id=target_id, until=record["until"])
    deps.scheduler.create(name, until, wake.model_dump(mode="json"))
    for email in emails:
        deps.emails.set_snooze(ctx.tenant_id, str(email["email_id"]), record["until"], target_id)
    return to_snooze(target_id, record)


def _active(ctx: TenantContext, target: Target, target_id: str, deps: SnoozeDeps) -> tuple[str, Item]:
    """The snooze that hides `target_id` now: its own, or (for an email) its thread's."""
    pattern = EMAIL_ID if target == "email" else THREAD_ID
    if not pattern.fullmatch(target_id):
        raise NotFound("nothing is snoozed here", code="not_snoozed")
    owner = target_id
    if target == "email":
        item = access_of(ctx).require_write(
            deps.emails.get_email(ctx.tenant_id, target_id), NotFound("no such email")
        )
        owner = str(item.get("snoozed_by") or target_id)
    record = deps.snoozes.get_snooze(ctx.tenant_id, owner)
    if record is None or record.get("state") != "snoozed":
        raise NotFound("nothing is snoozed here", code="not_snoozed")
    return owner, record


def cancel(ctx: TenantContext, target: Target, target_id: str, deps: SnoozeDeps) -> Snooze:
    """Unsnooze now (no unread mark, no event) and delete the schedule; for an email in a snoozed
    thread, the thread's snooze. 404 `not_snoozed` when nothing is snoozed."""
    ctx.require(Role.MEMBER)
    owner, record = _active(ctx, target, target_id, deps)
    until = str(record["until"])
    if not deps.snoozes.finish(ctx.tenant_id, owner, until, "cancelled", deps.now()):
        raise NotFound("nothing is snoozed here", code="not_snoozed")
    deps.scheduler.delete(schedule_name(ctx.tenant_id, owner))
    deps.snoozes.delete_reply_lookup(ctx.tenant_id, str(record["thread_id"]), owner)
    for email_id in record.get("email_ids") or ():
        deps.emails.end_snooze(ctx.tenant_id, str(email_id), until, unread=False)
    return to_snooze(owner, {**record, "state": "cancelled"})


def wake(message: WakeSnooze, deps: SnoozeDeps) -> bool:
    """Bring a snooze's emails back unread and announce `email.unsnoozed`; False (doing nothing)
    when the snooze is no longer waiting at `message.until` (woken, cancelled or snoozed again)."""
    tenant_id, target_id, until = message.tenant_id, message.target_id, message.until
    record = deps.snoozes.get_snooze(tenant_id, target_id)
    if record is None or record.get("state") != "snoozed" or str(record["until"]) != until:
        return False
    woken: list[Item] = []
    for email_id in record.get("email_ids") or ():
        if deps.emails.end_snooze(tenant_id, str(email_id), until, unread=True):
            item = deps.emails.get_email(tenant_id, str(email_id))
            if item is not None:
                woken.append(item)
    pushes = [
        PushFlags(tenant_id=tenant_id, account_id=str(account), email_id=str(item["email_id"]), remove=[SEEN])
        for item in woken
        for account in sorted(item.get("accounts") or ())
    ]
    if pushes:
        deps.sync_queue.send_many(pushes)
    deps.publisher.publish([_unsnoozed(tenant_id, target_id, record, woken, message.reason)])
    deps.snoozes.finish(tenant_id, target_id, until, "woken", deps.now())
    deps.snoozes.delete_reply_lookup(tenant_id, str(record["thread_id"]), target_id)
    return True


def _unsnoozed(
    tenant_id: str, target_id: str, record: Item, woken: list[Item], reason: WakeReason
) -> DomainEvent:
    data: dict[str, Any] = {
        "target": "thread" if target_id.startswith("th_") else "email",
        "id": target_id,
        "thread_id": str(record["thread_id"]),
        "email_ids": sorted(str(item["email_id"]) for item in woken),
        "until": str(record["until"]),
        "reason": reason,
    }
    return DomainEvent(
        detail_type="email.unsnoozed",
        tenant_id=tenant_id,
        data=data,
        idempotency_key=f"email.unsnoozed:{target_id}:{record['until']}",
    )


def on_reply(tenant_id: str, thread_id: str, email_id: str, deps: SnoozeDeps) -> int:
    """A new email in `thread_id` (`email.received`): wake the thread's `wake_on_reply` snoozes
    that do not hide that very email, and delete their schedules. Returns how many woke."""
    count = 0
    for target_id in deps.snoozes.reply_lookups(tenant_id, thread_id):
        record = deps.snoozes.get_snooze(tenant_id, target_id)
        if record is None or record.get("state") != "snoozed" or not record.get("wake_on_reply"):
            continue
        if email_id in (record.get("email_ids") or ()):
            continue  # the snoozed email itself, seen again (a resync): not a reply
        message = WakeSnooze(
            tenant_id=tenant_id, target_id=target_id, until=str(record["until"]), reason="reply"
        )
        if wake(message, deps):
            deps.scheduler.delete(schedule_name(tenant_id, target_id))
            count += 1
    return count
