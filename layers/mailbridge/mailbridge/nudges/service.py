"""Nudges (issue 15 point 3): settings, what each thread waits for, the daily run, list, dismiss.

Design (no scan of the emails table): every `email.received` / `email.sent` (the RemindersRule)
records the thread's latest message in one `NUDGEWAIT#{thread}` item (`store/nudges.py`):
outbound mail makes the thread wait for an answer from them (`awaiting_reply`); inbound mail from
a CRM contact (the sender's address has a CRM email lookup) makes it wait for ours
(`needs_reply`); any other message in the thread waits for nothing. The newer message replaces
the older, so a reply clears the thread's waiting state and deletes its nudge at once.

The daily run (`fan_out`) reads the tenants with nudges on from a sparse index and queues one
scan per tenant; each (`scan`) reads the tenant's waiting threads, oldest first, from another;
`due_at` = `business_days` business days after the message (`mailbridge.nudges.business_days`,
the tenant's time zone, working days and holidays). It stops at the first thread not due yet
(later messages are due later). Requests per run: one Query (per 1 MB page) of the tenants, a
tenth of a SendMessageBatch per tenant; per tenant: a GetItem of the settings, one Query (per
1 MB page) of the waiting threads; per nudge: one TransactWriteItems (the nudge, put only if
absent, and `nudged` on the thread's waiting item), plus for `needs_reply` one GetItem of the
email (the categorizer's `needs_reply`, when stored False, drops the thread), a tenth of a
PutEvents (`nudge.created`, ten a call), then one UpdateItem taking the thread out of the
waiting index. Per message received or sent: one GetItem of the email, one of the settings, one
of the CRM lookup (inbound only), one PutItem; with nudges off, a GetItem of the thread's item
instead of the write unless a waiting state is there to clear.

Idempotent: a nudge is written only where none exists for that email, and announced before its
thread leaves the waiting index, so a second run finds nothing and a run cut short announces
what it wrote on its retry (`scan`); a dismissed nudge stays (dismissed) and its thread waits no
more, so it never comes back for that email.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from mailbridge.access import ACCESS_ATTRIBUTES, about_visible_mail, access_of
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.emails import EMAIL_ID
from mailbridge.errors import NotFound
from mailbridge.nudges.business_days import add_business_days
from mailbridge.nudges.models import Nudge, NudgeKind, NudgeScan, NudgeSettings, NudgeSettingsRequest
from mailbridge.snooze.presets import zone
from mailbridge.store.base import Item
from mailbridge.store.crm import CrmStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.nudges import NudgeStore
from mailbridge.store.pagination import Page
from mailbridge.tenancy import Role, TenantContext

if TYPE_CHECKING:
    from mailbridge.queues import RemindersQueue


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NudgeDeps:
    nudges: NudgeStore
    emails: EmailStore
    crm: CrmStore
    publisher: EventPublisher
    queue: RemindersQueue  # the daily run's per-tenant scans
    now: Callable[[], datetime] = _now


# ------------------------------------------------------------------------------------ settings


def _settings(item: Item | None) -> NudgeSettings:
    if item is None:
        return NudgeSettings()
    return NudgeSettings.model_validate(
        {
            "enabled": bool(item.get("enabled")),
            "business_days": int(item["business_days"]),
            "working_days": [int(d) for d in item["working_days"]],
            "time_zone": item["time_zone"],
            "holidays": list(item.get("holidays") or ()),
            "updated_at": item.get("updated_at"),
            "updated_by": item.get("updated_by"),
        }
    )


def get_settings(ctx: TenantContext, deps: NudgeDeps) -> NudgeSettings:
    """The tenant's nudge settings; the defaults (off, 3 business days, Monday to Friday, UTC,
    no holidays) until an admin saves some."""
    return _settings(deps.nudges.get_settings(ctx.tenant_id))


def put_settings(ctx: TenantContext, request: NudgeSettingsRequest, deps: NudgeDeps) -> NudgeSettings:
    """Replace the tenant's nudge settings (admin or owner); 400 `invalid_time_zone` when
    `time_zone` is not an IANA time zone name. Taking effect at the next daily run."""
    ctx.require(Role.ADMIN)
    zone(request.time_zone)
    saved = NudgeSettings(**request.model_dump(), updated_at=deps.now(), updated_by=ctx.subject)
    deps.nudges.put_settings(
        ctx.tenant_id,
        {
            "enabled": saved.enabled,
            "business_days": saved.business_days,
            "working_days": saved.working_days,
            "time_zone": saved.time_zone,
            "holidays": [d.isoformat() for d in saved.holidays],
            "updated_at": saved.updated_at.isoformat() if saved.updated_at else None,
            "updated_by": saved.updated_by,
        },
    )
    return saved


# ------------------------------------------------------------------------------- thread state


def _sender(email: Item) -> str | None:
    for address in email.get("from") or ():
        if isinstance(address, dict) and address.get("address"):
            return str(address["address"]).lower()
    return None


def _auto_submitted(email: Item) -> bool:
    """Mail a process wrote (RFC 3834 section 5: `Auto-Submitted` other than `no`): an
    out-of-office answer is no reply that clears a nudge, and our own digest email awaits none."""
    value = str(email.get("auto_submitted") or "").strip().lower()
    return bool(value) and value != "no"


def on_thread_mail(tenant_id: str, email_id: str, deps: NudgeDeps) -> str:
    """Record a message received or sent in its thread (an `email.received` / `email.sent`):
    `awaiting_reply` for outbound mail, `needs_reply` for inbound mail from a CRM contact, nothing
    for other mail; the thread's earlier nudge is deleted (a reply clears it). Returns what it
    did: `waiting`, `cleared`, `stale` (an older message than the thread's latest, or a replay),
    `ignored` (no such email, automatic mail (`Auto-Submitted`), or nudges off and nothing to
    clear).

    DynamoDB requests: 1 for a tenant that never saved nudge settings (every `email.received` and
    `email.sent` comes here, and with no settings there is no thread state to keep or clear); else
    the settings, the email, and (nudges off) the thread's waiting item or (on) the write."""
    settings_item = deps.nudges.get_settings(tenant_id)
    if settings_item is None:
        return "ignored"
    settings = _settings(settings_item)
    email = deps.emails.get_email(tenant_id, email_id)
    if email is None or email.get("deleted") or not email.get("thread_id") or not email.get("date"):
        return "ignored"
    if _auto_submitted(email):
        return "ignored"
    thread_id = str(email["thread_id"])
    kind: NudgeKind | None = None
    if settings.enabled:
        if email.get("direction") == "outbound":
            kind = "awaiting_reply"
        else:
            sender = _sender(email)
            if sender is not None and deps.crm.find_email(tenant_id, sender) is not None:
                kind = "needs_reply"
    elif deps.nudges.get_waiting(tenant_id, thread_id) is None:
        return "ignored"
    since = datetime.fromisoformat(str(email["date"])).astimezone(UTC).isoformat()
    values: Item = {"email_id": email_id, "since": since, "order": f"{since}#{email_id}"}
    if kind is not None:
        values["kind"] = kind
    earlier = deps.nudges.set_waiting(tenant_id, thread_id, values, pending=kind is not None)
    if earlier is None:
        return "stale"
    nudged = earlier.get("nudged")
    if nudged and nudged != email_id:
        deps.nudges.delete_nudge(tenant_id, str(nudged))
    return "waiting" if kind is not None else "cleared"


# ---------------------------------------------------------------------------------- daily run


def fan_out(deps: NudgeDeps, at: datetime | None = None) -> int:
    """The daily run (the schedule's `NudgeScan` without a tenant): one `NudgeScan` naming each
    tenant with nudges on and the same `at` (default now) onto the RemindersQueue, ten per
    SendMessageBatch call; returns how many it queued. A replay queues them again, which creates
    nothing twice (`scan`)."""
    at = at or deps.now()
    scans = [
        NudgeScan(kind="nudge_scan", scheduled_time=at, tenant_id=tenant_id)
        for tenant_id, _ in deps.nudges.enabled_tenants()
    ]
    if scans:
        deps.queue.send_many(scans)
    return len(scans)


def scan(tenant_id: str, deps: NudgeDeps, at: datetime | None = None) -> int:
    """Create the tenant's nudges due at `at` (default now: the schedule's scheduled time) and
    announce each with `nudge.created`; returns how many it announced (0 when nudges are off).

    Exactly once per nudge (an outbox on the thread's waiting item): the nudge is written (only
    where none exists) in one transaction with `nudged` on the thread's waiting item, which stays
    in the waiting index; after PutEvents accepted the run's events, each thread leaves the
    index. A run that fails in between (PutEvents refused, a crash) leaves the thread indexed
    with `nudged` set, and the retry announces that nudge (read back, still open) without writing
    it again; a nudge dismissed or deleted meanwhile leaves the index unannounced. The event's
    `idempotency_key` (`nudge.created:{email_id}`) is stable, so a crash after PutEvents and
    before the index update is a duplicate consumers drop."""
    item = deps.nudges.get_settings(tenant_id)
    if item is None or not item.get("enabled"):
        return 0
    return _scan_tenant(tenant_id, _settings(item), at or deps.now(), deps)


def _created(tenant_id: str, nudge: Item) -> DomainEvent:
    email_id = str(nudge["email_id"])
    return DomainEvent(
        detail_type="nudge.created",
        tenant_id=tenant_id,
        idempotency_key=f"nudge.created:{email_id}",
        data={
            "nudge_id": email_id,
            "kind": nudge["kind"],
            "email_id": email_id,
            "thread_id": nudge["thread_id"],
            "since": nudge["since"],
            "due_at": nudge["due_at"],
        },
    )


def _scan_tenant(tenant_id: str, settings: NudgeSettings, at: datetime, deps: NudgeDeps) -> int:
    tz: ZoneInfo = zone(settings.time_zone)
    events: list[DomainEvent] = []
    announced: list[tuple[str, str]] = []  # (thread, email) to take out of the waiting index
    for waiting in deps.nudges.waiting(tenant_id):
        since = datetime.fromisoformat(str(waiting["since"]))
        due_at = add_business_days(
            since,
            settings.business_days,
            tz,
            working_days=settings.working_days,
            holidays=settings.holidays,
        )
        if due_at > at:
            break  # the index is in `since` order, and a later start is never due earlier
        email_id, thread_id, kind = str(waiting["email_id"]), str(waiting["thread_id"]), str(waiting["kind"])
        if waiting.get("nudged") == email_id:
            # Written by an earlier run that did not get to announce it.
            existing = deps.nudges.get_nudge(tenant_id, email_id)
            if existing is None or existing.get("state") != "open":
                deps.nudges.stop_waiting(tenant_id, thread_id, email_id)
                continue
            events.append(_created(tenant_id, existing))
            announced.append((thread_id, email_id))
            continue
        if kind == "needs_reply":
            email = deps.emails.get_email(tenant_id, email_id)
            if email is None or email.get("deleted") or email.get("needs_reply") is False:
                deps.nudges.stop_waiting(tenant_id, thread_id, email_id)
                continue
        values: Item = {
            "email_id": email_id,
            "kind": kind,
            "since": since.isoformat(),
            "due_at": due_at.isoformat(),
            "state": "open",
            "created_at": at.astimezone(UTC).isoformat(),
        }
        if not deps.nudges.create_nudge(tenant_id, thread_id, values):
            continue
        events.append(_created(tenant_id, {**values, "thread_id": thread_id}))
        announced.append((thread_id, email_id))
    if events:
        deps.publisher.publish(events)
    for thread_id, email_id in announced:
        deps.nudges.stop_waiting(tenant_id, thread_id, email_id)
    return len(events)


# ------------------------------------------------------------------------------------ the API


def to_nudge(item: Item) -> Nudge:
    return Nudge.model_validate(
        {
            "id": item["email_id"],
            "kind": item["kind"],
            "email_id": item["email_id"],
            "thread_id": item["thread_id"],
            "since": item["since"],
            "due_at": item["due_at"],
            "state": item["state"],
            "created_at": item["created_at"],
            "dismissed_at": item.get("dismissed_at"),
        }
    )


def list_nudges(
    ctx: TenantContext, kind: NudgeKind | None, deps: NudgeDeps, *, cursor: str | None, limit: int
) -> Page[Nudge]:
    """Open nudges (of `kind` when given), in id order; a page holds `limit` whenever that many match.
    Nudges about mail private to the caller (mailbridge.access) are left out."""
    keep = about_visible_mail(
        access_of(ctx),
        lambda ids: deps.emails.batch_get_emails(ctx.tenant_id, ids, projection=ACCESS_ATTRIBUTES),
    )
    items, next_cursor = deps.nudges.list_nudges(ctx.tenant_id, kind, cursor=cursor, limit=limit, keep=keep)
    return Page[Nudge](items=[to_nudge(i) for i in items], next_cursor=next_cursor)


def dismiss(ctx: TenantContext, nudge_id: str, deps: NudgeDeps) -> Nudge:
    """Dismiss an open nudge (member or above): it leaves `GET /nudges` and the daily run does not
    bring it back; 404 `nudge_not_found` when there is no open nudge of that id."""
    ctx.require(Role.MEMBER)
    item = deps.nudges.dismiss(ctx.tenant_id, nudge_id, deps.now()) if EMAIL_ID.fullmatch(nudge_id) else None
    if item is None:
        raise NotFound("no open nudge with this id", code="nudge_not_found")
    return to_nudge(item)
