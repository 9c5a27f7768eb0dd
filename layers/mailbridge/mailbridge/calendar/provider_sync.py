"""Pull a connected account's Google Calendar into our events (issue 16 point 6).

Source: "Synchronize resources efficiently" (developers.google.com/calendar/api/guides/sync).
A pull reads `events.list` on `primary` page by page from the account's saved sync token (none:
the full listing), applies each page, and saves the last page's `nextSyncToken` only after every
page is stored, so a pull that fails is repeated from the same token (applying a page twice
changes nothing). A 410 on the token (`SyncTokenExpired`) drops it and lists everything again.

Per page:
- a deleted event (`status: cancelled`, no `recurringEventId`) deletes ours, found through the
  provider link (Google sends only `id` and `status` for it);
- the other events are written as one VCALENDAR (`calendar.google`) and stored like an import
  (`service.upsert`, source `google`): matched by iCalUID; a recurring master brings its RRULE /
  RDATE / EXDATE; exceptions (`recurringEventId`) become overrides of their series, merged with
  the overrides already stored (an incremental page carries only the occurrences that changed);
  a cancelled occurrence is an override with status `cancelled`;
- echo suppression: an event whose `etag` equals the one stored in its provider link (the
  version we already read, or wrote ourselves) is skipped without a write;
- Google is the source of truth on a pull: its SEQUENCE is never refused as stale (a local edit
  raises ours; the provider's version replaces it).

Push-back (`push_google`): a change made through `/calendar/events` to a pulled series or single
event is queued (`PushCalendar`) and sent with `events.patch` / `events.delete` and `If-Match`;
the etag Google answers is stored, so the next pull skips it as an echo. Conflicts: last writer
by time (our change's time against Google's `updated`), see `push_google`.

Runs only for an account whose grant holds `calendar.events` (`models.account.calendar_access`)
while the tenant's `calendar` flag is on; otherwise the report says why and nothing is read.

When: on the existing SyncQueue (`SyncCalendar` messages), not a queue of its own. Its FIFO group
is the account, so two pulls of one account never run at once (the sync token is read, then
replaced after the last page) and a pull never overlaps that account's mail sync; its DLQ,
partial batch reports and retry policy apply as they are. A 15-minute schedule fans out one
message per active Gmail account (deduplicated per account and 15-minute window), and connecting
or reconnecting with the calendar scope queues the first pull. Google also offers push channels
(`events.watch`); they would be a hint like Gmail's pushes, the sync token stays the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailbridge.bus import DomainEvent
from mailbridge.calendar import google, ics, service
from mailbridge.calendar.models import EventFields, Override
from mailbridge.calendar.service import CalendarDeps
from mailbridge.errors import NotFound, ProviderAuthError
from mailbridge.models.account import Account, calendar_access
from mailbridge.observability import logger
from mailbridge.providers.google_calendar.client import (
    EtagMismatch,
    GoogleCalendarClient,
    ProviderEventGone,
    SyncTokenExpired,
)
from mailbridge.providers.google_calendar.models import GoogleEvent
from mailbridge.queues import SyncQueue
from mailbridge.store.accounts import AccountStore
from mailbridge.store.calendar import ProviderLink
from mailbridge.sync.messages import PushCalendar, SyncCalendar
from mailbridge.tenancy import Role, TenantContext

SYSTEM_SUBJECT = "mailbridge:calendar-sync"
MAX_PAGES = 200  # 200 pages of 2500: a bound on one pull, not a limit any real calendar reaches


@dataclass
class PullReport:
    """What one pull did. `status`: `synced`, `reconnect_required` (no calendar scope), `off`
    (flag off or not a Google account)."""

    status: str = "synced"
    full: bool = False
    pages: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    echoes: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _enabled(tenant_id: str) -> bool:
    from mailbridge.config import get_settings
    from mailbridge.store.settings import DynamoFeatureStore

    stored = DynamoFeatureStore(get_settings().tables.settings).get_features(tenant_id)
    return stored is not None and stored.flags.calendar


def _client(account: Account) -> GoogleCalendarClient:
    from mailbridge.config import get_settings
    from mailbridge.oauth.tokens import token_source

    return GoogleCalendarClient(get_settings().google.calendar_api_url, token_source(account))


def handle_calendar(message: SyncCalendar, accounts: AccountStore, queue: SyncQueue) -> PullReport | None:
    """The schedule's message (no account): queue one per active Gmail account; an account's:
    pull its calendar. ProviderAuthError (reauth_required, insufficient_scope) ends the pull
    quietly (a retry cannot help); other ProviderErrors go back to the queue."""
    if message.tenant_id is None or message.account_id is None:
        window = datetime.now(UTC).strftime("%Y%m%d%H") + f"{datetime.now(UTC).minute // 15}"
        requests: list[SyncCalendar] = []
        ids: list[str] = []
        for tenant_id, account_id in accounts.pollable(message.provider):
            requests.append(SyncCalendar(tenant_id=tenant_id, account_id=account_id))
            ids.append(f"calendar-{tenant_id}-{account_id}-{window}"[:128])
        if requests:
            queue.send_many(requests, ids)
        return None
    try:
        account = accounts.get_account(message.tenant_id, message.account_id)
    except NotFound:
        return None
    from mailbridge.calendar.wiring import calendar_deps

    try:
        report = pull_google(account, _client(account), calendar_deps(), enabled=_enabled(account.tenant_id))
    except ProviderAuthError as exc:
        logger.warning("calendar pull stopped", extra={"code": exc.code})
        return None
    logger.info(
        "calendar pull",
        extra={
            "status": report.status,
            "full": report.full,
            "pages": report.pages,
            "imported": report.imported,
            "updated": report.updated,
            "removed": report.removed,
            "echoes": report.echoes,
            "skipped": report.skipped,
        },
    )
    return report


def pull_google(
    account: Account, client: GoogleCalendarClient, deps: CalendarDeps, *, enabled: bool
) -> PullReport:
    """Pull the account's primary calendar (see the module docstring). Raises the client's
    ProviderErrors other than SyncTokenExpired (the queue retries the retryable ones)."""
    if not enabled or account.provider != "gmail":
        return PullReport(status="off")
    if calendar_access(account.provider, account.oauth.scopes if account.oauth else None) != "granted":
        return PullReport(status="reconnect_required")
    token = deps.store.calendar_sync_token(account.tenant_id, account.account_id)
    try:
        return _pull(account, client, deps, token)
    except SyncTokenExpired:
        deps.store.save_calendar_sync_token(account.tenant_id, account.account_id, None)
        return _pull(account, client, deps, None)


def _pull(
    account: Account, client: GoogleCalendarClient, deps: CalendarDeps, token: str | None
) -> PullReport:
    report = PullReport(full=token is None)
    page_token: str | None = None
    for _ in range(MAX_PAGES):
        page = client.list_events(token, page_token)
        report.pages += 1
        _apply(account, page.items, deps, report)
        if page.next_page_token:
            page_token = page.next_page_token
            continue
        deps.store.save_calendar_sync_token(account.tenant_id, account.account_id, page.next_sync_token)
        return report
    report.skip("too_many_pages")  # the token is not saved: the next pull continues from the old one
    return report


def _merged_overrides(current: list[Override], incoming: list[Override]) -> list[Override]:
    by_id = {str(o.recurrence_id): o for o in current}
    by_id.update({str(o.recurrence_id): o for o in incoming})
    return sorted(by_id.values(), key=lambda o: str(o.recurrence_id))


def _apply(account: Account, items: list[GoogleEvent], deps: CalendarDeps, report: PullReport) -> None:
    tenant_id, account_id = account.tenant_id, account.account_id
    wanted = {e.id for e in items} | {e.recurring_event_id for e in items if e.recurring_event_id}
    links = deps.store.provider_links(tenant_id, account_id, wanted)
    fresh = []
    for item in items:
        link = links.get(item.id)
        if link is not None and item.etag is not None and link.etag == item.etag:
            report.echoes += 1
        else:
            fresh.append(item)
    # Deleted series and single events: Google names only the id.
    deleted = {e.id for e in fresh if e.status == "cancelled" and not e.recurring_event_id}
    for provider_id in sorted(deleted):
        _remove(tenant_id, account_id, links.get(provider_id), deps, report)
    members = _members([e for e in fresh if e.id not in deleted], deleted, links, report)
    stored = _store(account, google.parse(members), deps, report)
    for member in members:
        if member.uid in stored:
            item = member.event
            link = ProviderLink(
                provider_id=item.id,
                uid=member.uid,
                etag=item.etag,
                updated=item.updated.isoformat() if item.updated else None,
            )
            deps.store.save_provider_link(tenant_id, account_id, link, series=item.recurring_event_id is None)


def _members(
    items: list[GoogleEvent], deleted: set[str], links: dict[str, ProviderLink], report: PullReport
) -> list[google.Member]:
    """The events to write, each with its series' UID: iCalUID, else the one stored for the id."""
    series_uid: dict[str, str] = {}
    for item in items:
        if not item.recurring_event_id:
            link = links.get(item.id)
            series_uid[item.id] = item.ical_uid or (link.uid if link else f"{item.id}@google.com")
    members: list[google.Member] = []
    for item in items:
        master_id = item.recurring_event_id
        if master_id is None:
            members.append(google.Member(item, series_uid[item.id]))
            continue
        if master_id in deleted:
            continue
        master = links.get(master_id)
        uid = series_uid.get(master_id) or item.ical_uid or (master.uid if master else None)
        if uid is None:
            report.skip("series_unknown")
            continue
        members.append(google.Member(item, uid))
    return members


def _store(account: Account, parsed: ics.ParsedFile, deps: CalendarDeps, report: PullReport) -> set[str]:
    """Upsert the parsed events (overrides merged with the stored ones); the UIDs stored."""
    ctx = TenantContext(tenant_id=account.tenant_id, role=Role.MEMBER, subject=SYSTEM_SUBJECT)
    for skipped in parsed.skipped:
        report.skip(skipped.reason)
    existing = deps.store.events_by_uid(account.tenant_id, [p.uid for p in parsed.events])
    created: list[DomainEvent] = []
    stored: set[str] = set()
    for event in parsed.events:
        current = existing.get(event.uid)
        fields = event.fields
        if current is not None:
            base = current.fields() if event.partial else fields
            overrides = _merged_overrides(current.overrides, fields.overrides)
            fields = EventFields.model_validate({**base.model_dump(), "overrides": overrides})
        elif event.partial:
            report.skip("series_unknown")
            continue
        sequence = max(event.sequence, current.sequence if current is not None else 0)
        result = service.upsert(
            ctx,
            ics.ParsedEvent(uid=event.uid, sequence=sequence, fields=fields, notes=event.notes),
            current,
            deps,
            source="google",
            created=created,
        )
        if result.result == "skipped":
            report.skip(result.reason or "skipped")
            continue
        setattr(report, result.result, getattr(report, result.result) + 1)
        stored.add(event.uid)
    service.publish(deps, created)
    return stored


def _remove(
    tenant_id: str,
    account_id: str,
    link: ProviderLink | None,
    deps: CalendarDeps,
    report: PullReport,
) -> None:
    if link is None:
        return  # never stored here (created and deleted between two pulls)
    current = deps.store.events_by_uid(tenant_id, [link.uid]).get(link.uid)
    if current is not None:
        deps.store.delete_event(tenant_id, current)
        report.removed += 1
    deps.store.delete_provider_link(tenant_id, account_id, link)


# ---------------------------------------------------------------------------------- push-back


def handle_push(message: PushCalendar, accounts: AccountStore) -> str:
    """Run one queued push (see `push_google`); ProviderAuthError ends it quietly (a retry cannot
    help: the account needs a reconnect); other ProviderErrors go back to the queue."""
    try:
        account = accounts.get_account(message.tenant_id, message.account_id)
    except NotFound:
        return "account_gone"
    from mailbridge.calendar.wiring import calendar_deps

    try:
        outcome = push_google(message, _client(account), calendar_deps())
    except ProviderAuthError as exc:
        logger.warning("calendar push stopped", extra={"code": exc.code})
        return "auth_failed"
    logger.info("calendar push", extra={"outcome": outcome, "deleted": message.deleted})
    return outcome


def push_google(message: PushCalendar, client: GoogleCalendarClient, deps: CalendarDeps) -> str:
    """Push an API change of a pulled event to Google: `events.patch` (or `events.delete`) with
    `If-Match` set to the etag we last saw, then store the etag Google answers, so the next pull
    recognises the change as ours (echo suppression) instead of importing it again.

    Conflicts, last writer wins by time: a 412 means Google changed the event after we read it;
    its `updated` is compared with `message.at` (when our change was made). Google's later change
    wins (nothing is pushed; the next pull brings it); ours wins otherwise (sent again with the
    etag just read). An event already deleted in Google (404/410) is left deleted.

    Returns `patched`, `deleted`, `provider_newer`, `gone` or `event_gone`."""
    tenant_id, account_id = message.tenant_id, message.account_id
    link = deps.store.provider_links(tenant_id, account_id, [message.provider_id]).get(message.provider_id)
    etag = link.etag if link else None
    try:
        if message.deleted:
            return _push_delete(message, client, deps, link, etag)
        event = deps.store.get_event(tenant_id, message.event_id)
        if event is None:
            return "event_gone"
        body = google.to_google(event.fields())
        try:
            sent = client.patch_event(message.provider_id, body, etag)
        except EtagMismatch:
            theirs = client.get_event(message.provider_id)
            if theirs.updated is not None and theirs.updated > message.at:
                return "provider_newer"
            sent = client.patch_event(message.provider_id, body, theirs.etag)
    except ProviderEventGone:
        return "gone"
    link = ProviderLink(
        provider_id=sent.id,
        uid=event.uid,
        etag=sent.etag,
        updated=sent.updated.isoformat() if sent.updated else None,
    )
    deps.store.save_provider_link(tenant_id, account_id, link, series=True)
    return "patched"


def _push_delete(
    message: PushCalendar,
    client: GoogleCalendarClient,
    deps: CalendarDeps,
    link: ProviderLink | None,
    etag: str | None,
) -> str:
    try:
        client.delete_event(message.provider_id, etag)
    except EtagMismatch:
        theirs = client.get_event(message.provider_id)
        if theirs.updated is not None and theirs.updated > message.at:
            return "provider_newer"  # the next pull finds a changed etag and brings it back
        client.delete_event(message.provider_id, theirs.etag)
    if link is not None:
        deps.store.delete_provider_link(message.tenant_id, message.account_id, link)
    return "deleted"
