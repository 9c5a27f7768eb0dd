"""The digest email (issue 15 point 4): once a day (the DigestSchedule's `DigestRun`), every user
with `email_digest` notifications not yet sent gets ONE email listing their titles, queued through
the outbox (`mailbridge.outbox.service.queue_send`) from the tenant's digest sender account.

- Who: the users with a pending-digest marker (`store.notifications`, written with each digest
  item): one index Query, no notification is read for a user without any.
- When: `daily` users on every run; `weekly` users on the run that falls on the tenant's first
  working day of the week (the lowest ISO weekday of the nudge settings' `working_days`, in their
  `time_zone`: `mailbridge.nudges`; Monday, UTC, while the tenant saved none). A user not due keeps
  the marker and the items for a later run.
- Period: `YYYY-MM-DD` (daily) or `YYYY-Www` (weekly, ISO 8601 week) of the run's scheduled time
  in the tenant's time zone. The period's `DIGEST#...` item is written only if absent, before the
  email is queued: at most one digest per user and period. (If queueing then fails, that period's
  digest is lost, never doubled; its items stay pending and go out in the next period's digest.)
- To: the address of the mailbox the user connected (`Account.created_by`); with several, the one
  connected first (`created_at`, then the account id). A user without a mailbox gets no digest
  (the items stay pending).
- From: the tenant's `digest_sender_account_id`. None set: `no_sender`; the account removed:
  `sender_not_found`; in both cases nothing is sent and the items stay pending. The status and the
  run's time are kept on the tenant's settings (`GET /notifications/settings`).
- What: subject and a short text and HTML body listing the notifications' titles (fixed texts per
  type, `service.title`) and dates; never a message body, subject or another person's address.
  The items sent are taken out of the digest index (`digest_period`).

Requests per run: one Query page per 1 MB of markers; per tenant two GetItem (settings, nudge
settings), one GetItem (sender), one Query of accounts, one UpdateItem (status); per user due one GetItem
(preferences), one Query (items), one conditional PutItem, the outbox's own writes, one
UpdateItem per item and one conditional DeleteItem (the marker).
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mailbridge.errors import Invalid, NotFound
from mailbridge.models.account import Account
from mailbridge.notifications.models import DigestFrequency, DigestStatus
from mailbridge.notifications.service import NotificationDeps, preferences_of
from mailbridge.observability import logger
from mailbridge.snooze.presets import zone
from mailbridge.store.base import Item
from mailbridge.store.notifications import RETENTION_DAYS
from mailbridge.tenancy import Role, TenantContext

DIGEST_SUBJECT = "digest"  # `requested_by` of the queued email (no user asked for it)
MAX_LISTED = 50  # titles listed in one email; the rest are counted


@dataclass
class DigestRunResult:
    sent: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Week:
    """The tenant's week as the digest needs it: its time zone and first working day (ISO 1-7)."""

    time_zone: str = "UTC"
    first_day: int = 1


def week_of(item: Item | None) -> Week:
    """The tenant's stored nudge settings (or none: Monday, UTC) as a `Week`."""
    from mailbridge.nudges.models import NudgeSettings

    settings = NudgeSettings.model_validate(item or {})
    return Week(time_zone=settings.time_zone, first_day=min(settings.working_days, default=1))


def period_of(frequency: DigestFrequency, day: date, week: Week) -> str | None:
    """The digest period the run of local `day` sends for `frequency`: `YYYY-MM-DD` every day,
    `YYYY-Www` (ISO 8601 week) on the tenant's first working day; None when a weekly digest is
    not due."""
    if frequency == "daily":
        return day.isoformat()
    if day.isoweekday() != week.first_day:
        return None
    year, number, _ = day.isocalendar()
    return f"{year}-W{number:02d}"


def user_address(accounts: list[Account], user_id: str) -> str | None:
    """The address of the mailbox the user connected first (see the module docstring)."""
    own = sorted((a for a in accounts if a.created_by == user_id), key=lambda a: (a.created_at, a.account_id))
    return own[0].address if own else None


def compose(items: list[Item]) -> tuple[str, str, str]:
    """(subject, text, html) of a digest listing `items`' titles, oldest first."""
    count = len(items)
    subject = f"Your notifications digest: {count} new notification{'s' if count != 1 else ''}"
    lines = [f"{str(i['created_at'])[:10]}  {i['title']}" for i in items[:MAX_LISTED]]
    more = count - len(lines)
    text = "\n".join(["Notifications since your last digest:", "", *(f"- {line}" for line in lines)])
    if more:
        text += f"\n... and {more} more"
    rows = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    body = f"<p>Notifications since your last digest:</p><ul>{rows}</ul>"
    if more:
        body += f"<p>... and {more} more</p>"
    return subject, text + "\n", body


def _all_accounts(tenant_id: str, deps: NotificationDeps) -> list[Account]:
    accounts: list[Account] = []
    cursor: str | None = None
    while True:
        page, cursor = deps.accounts.list_accounts(tenant_id, cursor=cursor, limit=100)
        accounts.extend(page)
        if cursor is None:
            return accounts


def run_digests(deps: NotificationDeps, at: datetime | None = None) -> DigestRunResult:
    """Send the digests due at `at` (default now), see the module docstring."""
    at = (at or deps.now()).astimezone(UTC)
    by_tenant: dict[str, list[Item]] = defaultdict(list)
    for marker in deps.notifications.pending_digests():
        by_tenant[str(marker["tenant_id"])].append(marker)
    result = DigestRunResult()
    for tenant_id, markers in by_tenant.items():
        _run_tenant(tenant_id, markers, at, deps, result)
    return result


def _sender(tenant_id: str, deps: NotificationDeps) -> tuple[DigestStatus, str | None]:
    sender_id = (deps.notifications.get_settings(tenant_id) or {}).get("digest_sender_account_id")
    if not sender_id:
        return "no_sender", None
    try:
        deps.accounts.get_account(tenant_id, str(sender_id))
    except NotFound:
        return "sender_not_found", str(sender_id)
    return "ok", str(sender_id)


def _run_tenant(
    tenant_id: str, markers: list[Item], at: datetime, deps: NotificationDeps, result: DigestRunResult
) -> None:
    status, sender_id = _sender(tenant_id, deps)
    deps.notifications.update_digest_status(
        tenant_id,
        {"digest_status": status, "digest_last_run_at": at.isoformat()},
    )
    if status != "ok" or sender_id is None:
        logger.info("digest not sent", extra={"code": status, "users": len(markers)})
        result.skipped += len(markers)
        return
    accounts = _all_accounts(tenant_id, deps)
    week = week_of(deps.nudges.get_settings(tenant_id) if deps.nudges else None)
    day = at.astimezone(zone(week.time_zone)).date()
    for marker in markers:
        if _send_one(
            tenant_id,
            str(marker["user_id"]),
            int(marker.get("pending") or 0),
            sender_id,
            accounts,
            at,
            day,
            week,
            deps,
        ):
            result.sent += 1
        else:
            result.skipped += 1


def _send_one(
    tenant_id: str,
    user_id: str,
    pending: int,
    sender_id: str,
    accounts: list[Account],
    at: datetime,
    day: date,
    week: Week,
    deps: NotificationDeps,
) -> bool:
    frequency = preferences_of(deps.notifications.get_preferences(tenant_id, user_id)).digest_frequency
    period = period_of(frequency, day, week)
    if period is None:
        return False  # weekly, not due today: the marker stays
    items = deps.notifications.digest_items(tenant_id, user_id)
    if not items:
        deps.notifications.clear_pending(tenant_id, user_id, pending)
        return False
    address = user_address(accounts, user_id)
    if address is None:
        logger.info("digest not sent", extra={"code": "no_user_mailbox"})
        return False
    ttl = int((at + timedelta(days=RETENTION_DAYS)).timestamp())
    claimed = deps.notifications.claim_digest(
        tenant_id,
        user_id,
        period,
        {"period": period, "items": len(items), "created_at": at.isoformat()},
        ttl=ttl,
    )
    if not claimed:
        return False  # this period's digest went out already; newer items wait for the next one
    from mailbridge.outbox.models import Recipient, SendRequest
    from mailbridge.outbox.service import queue_send

    subject, text, body = compose(items)
    request = SendRequest(
        account_id=sender_id,
        to=[Recipient.model_validate({"address": address})],
        subject=subject,
        text=text,
        html=body,
    )
    ctx = TenantContext(tenant_id=tenant_id, role=Role.MEMBER, subject=DIGEST_SUBJECT)
    assert deps.outbox is not None
    try:
        accepted: Any = queue_send(ctx, request, deps.outbox(), auto_generated=True)
    except (Invalid, NotFound) as exc:
        logger.warning("digest not queued", extra={"code": exc.code})
        return False
    deps.notifications.set_digest_email(tenant_id, user_id, period, str(accepted.email_id))
    for item in items:
        deps.notifications.mark_digested(tenant_id, user_id, str(item["notification_id"]), period, at)
    deps.notifications.clear_pending(tenant_id, user_id, pending)
    return True
