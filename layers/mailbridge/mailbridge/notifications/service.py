"""Notifications (issue 15 point 4): from source events to per-user notifications, the API's
list / read / read-all, preferences, and the tenant's notification settings.

`on_event` takes one source event (`models.SourceEvent`, delivered by the NotificationsRule
through the NotificationsQueue) and finds who it is for:
- about an email (`nudge.created`, `follow_up.due`, `email.unsnoozed`, `email.send_failed`): the
  user who connected each mailbox holding the email (`Account.created_by`; an email seen by two
  users' mailboxes notifies both);
- `account.reauth_required`: the user who connected the account;
- `automation.failed`: the rule's owner (`data.owner`).
For each user, the preference for the type decides: `off` stores nothing, `email_digest` stores
it for the digest, `in_app` stores it, lists it, and announces `notification.created`.

Idempotent per source event: the notification id is derived from (tenant, user, type, the
event's `idempotency_key`) and written only if absent. `notification.created` (idempotency key
`notification.created:{id}`) goes out exactly once per in-app notification: the notification is
written with `announced: false` and marked announced only after PutEvents accepted the event. If
the PutEvents fails, the record is retried; the retry's conditional put fails and returns the
stored notification (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), which is announced then
because it is not marked yet. A redelivery after the mark announces nothing. (Two deliveries of
one event running at the same time can both announce it, with the same idempotency key, on which
consumers dedupe.)

Requests per event: one GetItem of the email (email types), one GetItem per mailbox account,
per user one GetItem of the preferences and one conditional PutItem (a redelivery's failed put
returns the stored item: no read); one PutEvents when anything is announced, then one UpdateItem
per in-app notification announced (none for a redelivery of an announced event).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import NotFound
from mailbridge.notifications.models import (
    NOTIFICATION_CREATED,
    NOTIFICATION_ID,
    NOTIFICATION_TYPES,
    TYPE_OF,
    Channel,
    Notification,
    NotificationPage,
    NotificationPreferences,
    NotificationPreferencesRequest,
    NotificationSettings,
    NotificationSettingsRequest,
    NotificationType,
    ReadAllResult,
    SourceEvent,
)
from mailbridge.store.accounts import AccountStore
from mailbridge.store.base import Item
from mailbridge.store.emails import EmailStore
from mailbridge.store.notifications import RETENTION_DAYS, NotificationStore
from mailbridge.store.nudges import NudgeStore
from mailbridge.tenancy import Role, TenantContext

_NOTIFICATION_ID_CHARS = 26
# The ids and codes a notification keeps from its source event's data (never bodies, subjects or
# addresses: the source events carry none, and anything else is dropped here).
_KEPT = (
    "email_id",
    "thread_id",
    "account_id",
    "provider",
    "rule_id",
    "run_id",
    "kind",
    "due_at",
    "priority",
    "code",
    "reason",
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NotificationDeps:
    notifications: NotificationStore
    emails: EmailStore
    accounts: AccountStore
    publisher: EventPublisher
    now: Callable[[], datetime] = _now
    nudges: NudgeStore | None = None
    """The tenant's working week (nudge settings) for weekly digests; None: Monday, UTC."""
    outbox: Callable[[], Any] | None = None
    """Returns the `OutboxDeps` the digest is queued with (built on first use; digest runs only)."""


def notification_id(tenant_id: str, user_id: str, kind: NotificationType, source_key: str) -> str:
    """The id of the notification a source event makes for a user: the same event, the same id."""
    digest = hashlib.sha256("\x1f".join((tenant_id, user_id, kind, source_key)).encode()).hexdigest()
    return f"nt_{digest[:_NOTIFICATION_ID_CHARS]}"


def title(kind: NotificationType, data: dict[str, Any]) -> str:
    """The one line shown for a notification: fixed text per type, nothing from the message."""
    if kind == "nudge":
        return (
            "Still no reply to an email you sent"
            if data.get("kind") == "awaiting_reply"
            else "An email needs your reply"
        )
    return {
        "follow_up_due": "A follow-up is due",
        "email_unsnoozed": "A snoozed email is back in your inbox",
        "send_failed": "An email could not be sent",
        "account_reauth_required": "Reconnect your mailbox: its sign-in expired",
        "automation_failed": "An automation run failed",
    }[kind]


# ---------------------------------------------------------------------------------- preferences


def preferences_of(item: Item | None) -> NotificationPreferences:
    """A stored preferences item (or none) as the full preferences: every type, `in_app` unless set."""
    stored: dict[str, str] = dict((item or {}).get("types") or {})
    types: dict[NotificationType, Channel] = dict.fromkeys(NOTIFICATION_TYPES, "in_app")
    for kind in NOTIFICATION_TYPES:
        if stored.get(kind) in ("in_app", "email_digest", "off"):
            types[kind] = stored[kind]  # type: ignore[assignment]
    return NotificationPreferences.model_validate(
        {
            "types": types,
            "digest_frequency": (item or {}).get("digest_frequency") or "daily",
            "updated_at": (item or {}).get("updated_at"),
        }
    )


def get_preferences(ctx: TenantContext, deps: NotificationDeps) -> NotificationPreferences:
    return preferences_of(deps.notifications.get_preferences(ctx.tenant_id, ctx.subject))


def put_preferences(
    ctx: TenantContext, request: NotificationPreferencesRequest, deps: NotificationDeps
) -> NotificationPreferences:
    """Replace the caller's preferences (types left out go back to `in_app`); for notifications
    made from then on."""
    values: Item = {
        "types": dict(request.types),
        "digest_frequency": request.digest_frequency,
        "updated_at": deps.now().isoformat(),
    }
    deps.notifications.put_preferences(ctx.tenant_id, ctx.subject, values)
    return preferences_of(values)


def settings_of(item: Item | None) -> NotificationSettings:
    """The stored settings item as the API shows it: `digest_status` is `no_sender` without a
    sender, else the last digest run's status (null until a run after the sender was set:
    `put_settings` replaces the item, the run's status with it)."""
    item = item or {}
    status = item.get("digest_status") if item.get("digest_sender_account_id") else "no_sender"
    return NotificationSettings.model_validate(item | {"digest_status": status})


def get_settings(ctx: TenantContext, deps: NotificationDeps) -> NotificationSettings:
    return settings_of(deps.notifications.get_settings(ctx.tenant_id))


def put_settings(
    ctx: TenantContext, request: NotificationSettingsRequest, deps: NotificationDeps
) -> NotificationSettings:
    """Set the account digests are sent from (admin or owner); 404 `account_not_found` when the
    tenant has no such account. Without a sender no digest is sent."""
    ctx.require(Role.ADMIN)
    if request.digest_sender_account_id is not None:
        deps.accounts.get_account(ctx.tenant_id, request.digest_sender_account_id)  # NotFound: 404
    values: Item = {
        "digest_sender_account_id": request.digest_sender_account_id,
        "updated_at": deps.now().isoformat(),
        "updated_by": ctx.subject,
    }
    deps.notifications.put_settings(ctx.tenant_id, values)
    return settings_of(values)


# ------------------------------------------------------------------------------ source events


def _owners_of_accounts(tenant_id: str, account_ids: list[str], deps: NotificationDeps) -> list[str]:
    owners: set[str] = set()
    for account_id in account_ids:
        try:
            owners.add(deps.accounts.get_account(tenant_id, account_id).created_by)
        except NotFound:
            continue  # the mailbox was removed since: nobody to tell there
    return sorted(owners)


def recipients(event: SourceEvent, deps: NotificationDeps) -> tuple[list[str], str | None]:
    """Who the event is for, and what it is about (an email, account or rule id)."""
    detail, data = event.detail, event.detail.data
    if event.detail_type == "automation.failed":
        owner = data.get("owner")
        return ([str(owner)] if owner else []), str(data.get("rule_id") or "") or None
    if event.detail_type == "account.reauth_required":
        account_id = str(data.get("account_id") or "")
        return _owners_of_accounts(
            detail.tenant_id, [account_id] if account_id else [], deps
        ), account_id or None
    if event.detail_type == "email.unsnoozed":
        email_ids = [str(e) for e in data.get("email_ids") or ()]
        email_id = email_ids[0] if email_ids else str(data.get("id") or "")
    else:
        email_id = str(data.get("email_id") or "")
    email = deps.emails.get_email(detail.tenant_id, email_id) if email_id else None
    if email is None:
        return [], email_id or None
    accounts = sorted(str(a) for a in email.get("accounts") or ())
    if email.get("outbox_account_id"):
        accounts = sorted({*accounts, str(email["outbox_account_id"])})
    return _owners_of_accounts(detail.tenant_id, accounts, deps), email_id


def _announcement(tenant_id: str, user_id: str, item: Item) -> DomainEvent:
    """`notification.created` for a stored in-app notification; its idempotency key is the
    notification's id, so every delivery of it carries the same key."""
    nid = str(item["notification_id"])
    return DomainEvent(
        detail_type=NOTIFICATION_CREATED,
        tenant_id=tenant_id,
        idempotency_key=f"{NOTIFICATION_CREATED}:{nid}",
        data={
            "notification_id": nid,
            "user_id": user_id,
            "type": item["type"],
            "title": item["title"],
            "created_at": item["created_at"],
            "subject_id": item.get("subject_id"),
        },
    )


def on_event(event: SourceEvent, deps: NotificationDeps) -> list[str]:
    """Make the event's notifications (see the module docstring); returns the ids of those this
    call stored (an empty list for a redelivered event)."""
    kind = TYPE_OF[event.detail_type]
    detail = event.detail
    users, subject_id = recipients(event, deps)
    data = {key: detail.data[key] for key in _KEPT if isinstance(detail.data.get(key), str | int)}
    if event.detail_type == "email.unsnoozed" and subject_id:
        data["email_id"] = subject_id
    created_at = detail.occurred_at.astimezone(UTC)
    ttl = int((created_at + timedelta(days=RETENTION_DAYS)).timestamp())
    stored: list[str] = []
    announcements: list[tuple[str, DomainEvent]] = []
    for user_id in users:
        channel = preferences_of(deps.notifications.get_preferences(detail.tenant_id, user_id)).types[kind]
        if channel == "off":
            continue
        nid = notification_id(detail.tenant_id, user_id, kind, detail.idempotency_key)
        text = title(kind, detail.data)
        values: Item = {
            "notification_id": nid,
            "type": kind,
            "title": text,
            "source": event.detail_type,
            "source_key": detail.idempotency_key,
            "subject_id": subject_id,
            "data": data,
            "channel": channel,
            "created_at": created_at.isoformat(),
        }
        written, item = deps.notifications.create_notification(detail.tenant_id, user_id, values, ttl=ttl)
        if written:
            stored.append(nid)
        if item.get("channel") == "in_app" and item.get("announced") is False:
            # Written now, or by an earlier delivery whose PutEvents failed: announce it (again,
            # with the same idempotency key, should a concurrent delivery race this one).
            announcements.append((user_id, _announcement(detail.tenant_id, user_id, item)))
    if announcements:
        deps.publisher.publish([announcement for _, announcement in announcements])
        for user_id, announcement in announcements:
            nid = str(announcement.data["notification_id"])
            deps.notifications.mark_announced(detail.tenant_id, user_id, nid)
    return stored


# ------------------------------------------------------------------------------------- the API


def to_notification(item: Item) -> Notification:
    return Notification.model_validate(
        {
            "notification_id": item["notification_id"],
            "type": item["type"],
            "title": item["title"],
            "subject_id": item.get("subject_id"),
            "data": {
                k: (int(v) if not isinstance(v, str) else v) for k, v in (item.get("data") or {}).items()
            },
            "created_at": item["created_at"],
            "read_at": item.get("read_at"),
        }
    )


def list_notifications(
    ctx: TenantContext, deps: NotificationDeps, *, unread: bool, cursor: str | None, limit: int
) -> NotificationPage:
    """The caller's in-app notifications, newest first (only unread ones when `unread`); every
    page but the last holds `limit`; 400 `invalid_cursor` for a cursor of another listing or user."""
    items, next_cursor = deps.notifications.list_notifications(
        ctx.tenant_id, ctx.subject, unread=unread, cursor=cursor, limit=limit
    )
    return NotificationPage(
        items=[to_notification(i) for i in items],
        next_cursor=next_cursor,
        unread_count=deps.notifications.unread_count(ctx.tenant_id, ctx.subject),
    )


def mark_read(ctx: TenantContext, nid: str, deps: NotificationDeps) -> Notification:
    """Mark one of the caller's notifications read; 404 `notification_not_found` otherwise (also
    for another user's notification)."""
    item = None
    if NOTIFICATION_ID.fullmatch(nid):
        item = deps.notifications.mark_read(ctx.tenant_id, ctx.subject, nid, deps.now())
    if item is None:
        raise NotFound("no notification with this id", code="notification_not_found")
    return to_notification(item)


def mark_all_read(ctx: TenantContext, deps: NotificationDeps) -> ReadAllResult:
    marked = deps.notifications.mark_all_read(ctx.tenant_id, ctx.subject, deps.now())
    return ReadAllResult(
        marked=marked, unread_count=deps.notifications.unread_count(ctx.tenant_id, ctx.subject)
    )
