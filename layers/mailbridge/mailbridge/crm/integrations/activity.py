"""Email activity logging to Salesforce and HubSpot (issue 18 point 5).

When an email is linked to contacts (`mailbridge.crm.matching.match_email`, and a manual link
through `POST /emails/{email_id}/links`), the linker announces `email.linked` on the bus with
`data = {email_id, contact_ids}`, once per email. The CrmActivityRule routes it to the
CrmActivityQueue, whose consumer (functions/crm_activity) hands a whole batch to `log_linked`:

1. per tenant, the integrations that are `connected` and have `log_activity` on (one Query; an
   integration waiting for `reauth_required` to be fixed is skipped without a provider request);
2. the batch's emails in one BatchGetItem, grouped by RFC 5322 Message-ID (the same message
   in two mailboxes, or under two email ids, is one activity);
3. per integration, the contacts' CRM records in one `RemoteIdStore.by_contacts` (a contact is
   "synced" there when it has a `RemoteLink`); emails with no synced contact are left alone;
4. per integration, the Message-IDs it logged already in one BatchGetItem
   (`store/crm_activity.py`): a retry, a redelivery or a second mailbox costs no provider request;
5. `CrmProvider.log_email` for each remaining email (the adapters dedupe at the provider too:
   Salesforce Task with the Message-ID field, HubSpot email with a unique Message-ID property),
   the logged ones recorded in one BatchWriteItem, and the run in the sync log (`kind`
   `activity`, direction `push`), so `GET /crm/integrations/{id}/logs` shows it.

What is logged: subject, direction, date, from/to/cc addresses and the linked contacts' remote
ids. The body is left out unless the integration's `log_body` is on (default off): the CRM is
another system, with its own users, sharing rules and retention, and a mail body often holds
what its sender never meant for a company-wide record (personal details, quoted threads,
attachments' text); the subject and participants are what an activity timeline needs (GDPR
art. 5(1)(c), data minimisation). With `log_body` on, the stored plain-text snippet goes, never
HTML.

The CRM is read by the whole tenant, so an email goes at what the tenant's members see of it
(`mailbridge.access`, issue 19 point 2: the highest visibility of the mailboxes holding it, as a
member who owns none of them sees it): an activity from `subject` up (its Message-ID, which
deduplicates it, is a `subject`-level header); nothing of mail shared at `metadata` or kept
`private`; the body only at `full` (and with `log_body` on).

An email is logged once per integration and Message-ID, with the contacts synced when it is
first logged; a contact linked or synced later does not add it to an already logged activity.
Mail linked by a backfill (a contact created after the mail arrived) is not announced: old mail
is not pushed into the CRM when a contact appears. An email without a Message-ID cannot be
deduplicated and is not logged.

Failures: `ProviderRateLimited` (Salesforce `REQUEST_LIMIT_EXCEEDED`, HubSpot 429) stops the
integration's calls for this batch and returns the unlogged emails' messages for redelivery after
the provider's `retry_after` or an exponential backoff by attempt, whichever is longer
(`retry_delay`); other retryable provider errors do the same for the one email. `ProviderAuthError`
(`reauth_required`) drops the integration's emails with that error code in the run: retrying cannot
help until someone connects again. `CrmRecordRejected` fails that email's record (its code in the
run), not retried.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from mailbridge.access import ACCESS_ATTRIBUTES, Access, MailboxDirectory, PrivacyStore, load_access
from mailbridge.crm.integrations.models import Integration, SyncRecord, SyncRun
from mailbridge.crm.integrations.service import IntegrationDeps, provider_for
from mailbridge.crm.remote.protocol import CrmProvider, CrmRecordRejected, EmailActivity
from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.models.base import Model
from mailbridge.observability import logger
from mailbridge.store.crm_activity import LoggedEmailStore, message_digest
from mailbridge.store.emails import EmailStore
from mailbridge.tenancy import Role, TenantContext

BASE_DELAY_SECONDS = 60
MAX_DELAY_SECONDS = 43_200  # SQS's longest visibility timeout
EMAIL_ATTRIBUTES = (
    "message_id",
    "subject",
    "date",
    "direction",
    "from",
    "to",
    "cc",
    "snippet",
    *ACCESS_ATTRIBUTES,
)
TENANT_VIEW = "crm-activity"
"""The subject of the member-who-owns-no-mailbox view the CRM gets (`tenant_view`)."""


class LinkedEmail(Model):
    """One `email.linked` announcement as the consumer reads it."""

    key: str = Field(description="The queue record's message id: failures are reported by it")
    tenant_id: str
    email_id: str
    contact_ids: list[str]
    attempt: int = Field(default=1, description="SQS ApproximateReceiveCount")


@dataclass
class ActivityDeps:
    integrations: IntegrationDeps
    emails: EmailStore
    logged: LoggedEmailStore
    mailboxes: MailboxDirectory
    privacy: PrivacyStore
    provider: Callable[[IntegrationDeps, str, str], CrmProvider] = provider_for
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass
class ActivityOutcome:
    """`retry`: queue record key -> seconds before it comes back; the rest are done."""

    retry: dict[str, int] = field(default_factory=dict)
    logged: int = 0
    already: int = 0
    dropped: int = 0
    private: int = 0


@dataclass
class _Message:
    """One Message-ID of the batch: its email items, the records announcing it, its contacts."""

    message_id: str
    items: list[dict[str, Any]]
    keys: set[str]
    contact_ids: dict[str, None]
    attempt: int


def retry_delay(attempt: int, retry_after: float | None) -> int:
    """Seconds before a record comes back: the provider's `retry_after` (Salesforce's daily
    `REQUEST_LIMIT_EXCEEDED` is answered with the adapter's hour; HubSpot sends none) or
    `BASE_DELAY_SECONDS * 2**(attempt-1)`, whichever is longer, at most SQS's 12 hours."""
    backoff = BASE_DELAY_SECONDS * 2 ** max(0, attempt - 1)
    return int(min(MAX_DELAY_SECONDS, max(backoff, math.ceil(retry_after or 0))))


def _group(messages: Sequence[LinkedEmail], items: Mapping[str, dict[str, Any]]) -> dict[str, _Message]:
    groups: dict[str, _Message] = {}
    for message in messages:
        item = items.get(message.email_id)
        message_id = str((item or {}).get("message_id") or "").strip()
        if item is None or not message_id:
            continue
        group = groups.setdefault(message_id, _Message(message_id, [], set(), {}, 1))
        if all(i["email_id"] != item["email_id"] for i in group.items):
            group.items.append(item)
        group.keys.add(message.key)
        group.contact_ids.update(dict.fromkeys(message.contact_ids))
        group.attempt = max(group.attempt, message.attempt)
    return groups


def _addresses(values: Iterable[Any]) -> list[str]:
    return [str(v.get("address")) for v in values or () if isinstance(v, dict) and v.get("address")]


def activity_of(group: _Message, remote_ids: list[str], integration: Integration) -> EmailActivity:
    """The activity for one Message-ID (the first stored copy's headers)."""
    item = group.items[0]
    sender = _addresses(item.get("from") or ())
    return EmailActivity(
        message_id=group.message_id,
        subject=str(item.get("subject") or "")[:255],
        sent_at=datetime.fromisoformat(str(item["date"])),
        direction="outgoing" if item.get("direction") == "outbound" else "incoming",
        from_address=sender[0] if sender else "",
        to_addresses=[*_addresses(item.get("to") or ()), *_addresses(item.get("cc") or ())],
        body_preview=str(item.get("snippet") or "")[:2000] if integration.log_body else "",
        remote_contact_ids=remote_ids,
    )


def tenant_view(tenant_id: str, deps: ActivityDeps) -> Access:
    """What a member who owns none of the tenant's mailboxes sees (the CRM's audience): each
    mailbox at its visibility or the tenant default. One GetItem and the owners' Queries per
    tenant of a batch."""
    member = TenantContext(tenant_id=tenant_id, role=Role.MEMBER, subject=TENANT_VIEW)
    return load_access(member, deps.mailboxes, deps.privacy)


def log_linked(messages: Sequence[LinkedEmail], deps: ActivityDeps) -> ActivityOutcome:
    """Log a batch of `email.linked` announcements (see the module docstring). Raises only for
    our own storage's errors (the whole batch is then retried)."""
    outcome = ActivityOutcome()
    by_tenant: dict[str, list[LinkedEmail]] = {}
    for message in messages:
        by_tenant.setdefault(message.tenant_id, []).append(message)
    for tenant_id, batch in by_tenant.items():
        integrations = [
            i
            for i in deps.integrations.store.all_integrations(tenant_id)
            if i.state == "connected" and i.log_activity
        ]
        if not integrations:
            continue
        items = deps.emails.batch_get_emails(
            tenant_id, [m.email_id for m in batch], projection=EMAIL_ATTRIBUTES
        )
        view = tenant_view(tenant_id, deps)
        shared = {
            email_id: seen for email_id, item in items.items() if (seen := view.visible(item)) is not None
        }
        outcome.private += len(items) - len(shared)
        groups = _group(batch, shared)
        for integration in integrations:
            _log_for(tenant_id, integration, groups, deps, outcome)
    return outcome


def _log_for(
    tenant_id: str,
    integration: Integration,
    groups: Mapping[str, _Message],
    deps: ActivityDeps,
    outcome: ActivityOutcome,
) -> None:
    integration_id = integration.integration_id
    contact_ids = {c for group in groups.values() for c in group.contact_ids}
    remote_ids = deps.integrations.remote_ids
    links = remote_ids.by_contacts(tenant_id, integration_id, contact_ids) if contact_ids else {}
    synced = {
        mid: [links[c].remote_id for c in group.contact_ids if c in links] for mid, group in groups.items()
    }
    pending = [mid for mid, remote in synced.items() if remote]
    if not pending:
        return
    done = deps.logged.logged(tenant_id, integration_id, pending)
    outcome.already += len(done)
    todo = [mid for mid in pending if mid not in done]
    if not todo:
        return
    run = deps.integrations.logs.start_run(tenant_id, integration_id, "activity", "push", now=deps.now())
    push = _Push(groups, outcome)
    try:
        provider = deps.provider(deps.integrations, tenant_id, integration_id)
    except ProviderError as exc:  # reauth_required: dropped; a refresh elsewhere, a 5xx: retried
        push.give_up(todo, exc, retry=exc.retryable)
        _finish(tenant_id, run, push.entries, deps, exc.code)
        return
    for n, mid in enumerate(todo):
        paused = push.log(provider, mid, activity_of(groups[mid], synced[mid], integration))
        if paused is not None:  # the provider wants a pause: this one and the rest wait
            push.give_up(todo[n:], paused, retry=True)
            break
        if push.run_error is not None:
            push.give_up(todo[n + 1 :], None, retry=False)
            break
    deps.logged.mark(tenant_id, integration_id, push.logged, deps.now())
    outcome.logged += len(push.logged)
    _finish(tenant_id, run, push.entries, deps, push.run_error)


@dataclass
class _Push:
    """One integration's provider calls for a batch: the sync-log entries and what got logged."""

    groups: Mapping[str, _Message]
    outcome: ActivityOutcome
    entries: list[SyncRecord] = field(default_factory=list)
    logged: dict[str, str] = field(default_factory=dict)
    run_error: str | None = None
    code: str = ""

    def failed(self, mid: str, code: str) -> None:
        self.entries.append(
            SyncRecord(
                remote_id="mid_" + message_digest(mid)[:32],
                local_id=self.groups[mid].items[0]["email_id"],
                direction="push",
                state="failed",
                error_code=code,
            )
        )

    def give_up(self, mids: Sequence[str], exc: ProviderError | None, *, retry: bool) -> None:
        """Fail these records: back on the queue (`retry`) or dropped."""
        code = exc.code if exc is not None else self.code
        for mid in mids:
            self.failed(mid, code)
            if retry:
                _retry(self.groups[mid], getattr(exc, "retry_after", None), self.outcome)
        if not retry:
            self.outcome.dropped += len(mids)

    def log(self, provider: CrmProvider, mid: str, activity: EmailActivity) -> ProviderRateLimited | None:
        """One `log_email`; the rate-limit error when the integration's calls must stop for
        this batch (the caller puts this one and the rest back on the queue)."""
        try:
            result = provider.log_email(activity)
        except ProviderRateLimited as exc:
            return exc
        except ProviderAuthError as exc:  # the refresh was refused: nothing more can go through
            self.give_up([mid], exc, retry=False)
            self.run_error = self.code = exc.code
            return None
        except CrmRecordRejected as exc:
            self.give_up([mid], exc, retry=False)
            return None
        except ProviderError as exc:
            self.give_up([mid], exc, retry=exc.retryable)
            return None
        self.logged[mid] = result.remote_id
        self.entries.append(
            SyncRecord(
                remote_id=result.remote_id,
                local_id=self.groups[mid].items[0]["email_id"],
                direction="push",
                state="succeeded",
            )
        )
        return None


def _retry(group: _Message, retry_after: float | None, outcome: ActivityOutcome) -> None:
    delay = retry_delay(group.attempt, retry_after)
    for key in group.keys:
        outcome.retry[key] = max(outcome.retry.get(key, 0), delay)


def _finish(
    tenant_id: str, run: SyncRun, entries: list[SyncRecord], deps: ActivityDeps, error_code: str | None
) -> None:
    logs = deps.integrations.logs
    logs.record(tenant_id, run, entries)
    finished = logs.finish_run(tenant_id, run, error_code=error_code, now=deps.now())
    logger.info(
        "crm activity run",
        extra={"integration_id": run.integration_id, "state": finished.state, "total": finished.total},
    )
