"""Nudges (issue 15 point 3): settings, what each thread waits for, the daily run, list, dismiss.

Design (no scan of the emails table): every `email.received` / `email.sent` (the RemindersRule)
records the thread's latest message in one `NUDGEWAIT#{thread}` item (`store/nudges.py`):
outbound mail makes the thread wait for an answer from them (`awaiting_reply`); inbound mail from
a CRM contact (the sender's address has a CRM email lookup) makes it wait for ours
(`needs_reply`); any other message in the thread waits for nothing. The newer message replaces
the older, so a reply clears the thread's waiting state and deletes its nudge at once.

The daily run (`scan`) reads the tenants with nudges on from a sparse index, and for each its
waiting threads, oldest first, from another; `due_at` = `business_days` business days after the
message (`mailbridge.nudges.business_days`, the tenant's time zone, working days and holidays).
It stops at the first thread not due yet (later messages are due later). Requests per tenant per
run: one Query (per 1 MB page) of each index; per nudge: one TransactWriteItems (the nudge, put
only if absent, and the thread taken out of the waiting index), plus for `needs_reply` one
GetItem of the email (the categorizer's `needs_reply`, when stored False, drops the thread), and
a tenth of a PutEvents (`nudge.created`, ten a call). Per message received or sent: one GetItem
of the email, one of the settings, one of the CRM lookup (inbound only), one PutItem; with
nudges off, a GetItem of the thread's item instead of the write unless a waiting state is there
to clear.

Idempotent: a nudge is written only where none exists for that email, and its thread leaves the
waiting index in the same transaction, so a second run finds nothing; a dismissed nudge stays
(dismissed) and its thread waits no more, so it never comes back for that email.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.emails import EMAIL_ID
from mailbridge.errors import NotFound
from mailbridge.nudges.business_days import add_business_days
from mailbridge.nudges.models import Nudge, NudgeKind, NudgeSettings, NudgeSettingsRequest
from mailbridge.snooze.presets import zone
from mailbridge.store.base import Item
from mailbridge.store.crm import CrmStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.nudges import NudgeStore
from mailbridge.store.pagination import Page
from mailbridge.tenancy import Role, TenantContext


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NudgeDeps:
    nudges: NudgeStore
    emails: EmailStore
    crm: CrmStore
    publisher: EventPublisher
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


def scan(deps: NudgeDeps, at: datetime | None = None) -> int:
    """Create the nudges due at `at` (default now: the schedule's scheduled time) for every tenant
    with nudges on, and announce each with `nudge.created`; returns how many it created."""
    at = at or deps.now()
    created = 0
    for tenant_id, item in deps.nudges.enabled_tenants():
        created += _scan_tenant(tenant_id, _settings(item), at, deps)
    return created


def _scan_tenant(tenant_id: str, settings: NudgeSettings, at: datetime, deps: NudgeDeps) -> int:
    tz: ZoneInfo = zone(settings.time_zone)
    events: list[DomainEvent] = []
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
        events.append(
            DomainEvent(
                detail_type="nudge.created",
                tenant_id=tenant_id,
                idempotency_key=f"nudge.created:{email_id}",
                data={
                    "nudge_id": email_id,
                    "kind": kind,
                    "email_id": email_id,
                    "thread_id": thread_id,
                    "since": values["since"],
                    "due_at": values["due_at"],
                },
            )
        )
    if events:
        deps.publisher.publish(events)
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
    """Open nudges (of `kind` when given), in id order; a page holds `limit` whenever that many match."""
    items, next_cursor = deps.nudges.list_nudges(ctx.tenant_id, kind, cursor=cursor, limit=limit)
    return Page[Nudge](items=[to_nudge(i) for i in items], next_cursor=next_cursor)


def dismiss(ctx: TenantContext, nudge_id: str, deps: NudgeDeps) -> Nudge:
    """Dismiss an open nudge (member or above): it leaves `GET /nudges` and the daily run does not
    bring it back; 404 `nudge_not_found` when there is no open nudge of that id."""
    ctx.require(Role.MEMBER)
    item = deps.nudges.dismiss(ctx.tenant_id, nudge_id, deps.now()) if EMAIL_ID.fullmatch(nudge_id) else None
    if item is None:
        raise NotFound("no open nudge with this id", code="nudge_not_found")
    return to_nudge(item)
