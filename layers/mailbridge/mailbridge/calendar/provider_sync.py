"""Pull a connected account's provider calendar into our events (issue 16 point 6): Google
Calendar as below; Microsoft Graph by `calendarView/delta` (`pull_graph`, with the same stores,
echo suppression, messages and schedule; dispatch by the account's provider in `pull_account`
and `handle_push`).

Source: "Synchronize resources efficiently" (developers.google.com/calendar/api/guides/sync).
A pull reads `events.list` on `primary` page by page from the account's saved sync token (none:
the full listing), applies each page, and saves the last page's `nextSyncToken` only after every
page is stored, so a pull that fails is repeated from the same token (applying a page twice
changes nothing). A 410 on the token (`SyncTokenExpired`) drops it and lists everything again.
After a full listing the account's stored events whose Google ids it did not return are deleted
(`_reconcile`, the code path of Graph's full round), so an event deleted and purged while the
token was dead does not stay here.

Per page:
- a deleted event (`status: cancelled`, no `recurringEventId`) deletes ours, found through the
  provider link (Google sends only `id` and `status` for it);
- the other events are written as one VCALENDAR (`calendar.google`) and stored like an import
  (`service.upsert`, source `google`): matched by iCalUID; a recurring master brings its RRULE /
  RDATE / EXDATE; exceptions (`recurringEventId`) become overrides of their series, merged with
  the overrides already stored by RECURRENCE-ID (an incremental page carries only the
  occurrences that changed, and they are read against the stored series, `_stored_series`); a
  cancelled occurrence is an override with status `cancelled`;
- echo suppression: an event whose `etag` equals the one stored in its provider link (the
  version we already read, or wrote ourselves) is skipped without a write;
- Google is the source of truth on a pull: its SEQUENCE is never refused as stale (a local edit
  raises ours; the provider's version replaces it).

Push-back (`push_google`): a change made through `/calendar/events` to a pulled series or single
event is queued (`PushCalendar`) and sent with `events.patch` / `events.delete` and `If-Match`;
the etag Google answers is stored, so the next pull skips it as an echo. Conflicts: last writer
by time (our change's time against Google's `updated`), see `push_google`. An event created
through `POST /calendar/events` goes to its organizer's calendar account (`wiring.calendar_account`:
the creator's own Gmail or Microsoft account at the organizer's address, calendar granted, flag
on; else it stays local) by `events.insert` with our UID, or Graph `POST /me/events`. A PUT
changing the overrides of a Google series pushes each new or changed occurrence to its instance
id (`events.patch`, or `events.delete` for a cancelled one; `_push_occurrence`), the series
itself only when something else changed; the edits Google cannot take, and every override of an
Outlook event, are refused (422 `provider_override_unsupported`,
`service.check_pushable_overrides`).

Runs only for an account whose grant holds `calendar.events` (`models.account.calendar_access`)
while the tenant's `calendar` flag is on; otherwise the report says why and nothing is read.

When: on the existing SyncQueue (`SyncCalendar` messages), not a queue of its own. Its FIFO group
is the account, so two pulls of one account never run at once (the sync token is read, then
replaced after the last page) and a pull never overlaps that account's mail sync; its DLQ,
partial batch reports and retry policy apply as they are. A 15-minute schedule fans out one
message per active Gmail and Graph account (deduplicated per account and 15-minute window), and
connecting or reconnecting with the calendar scope queues the first pull. Google also offers push channels
(`events.watch`); they would be a hint like Gmail's pushes, the sync token stays the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal, TypeVar

from mailbridge.bus import DomainEvent
from mailbridge.calendar import google, graph, ics, service, times
from mailbridge.calendar.models import Event, EventFields, EventSource, Override
from mailbridge.calendar.service import CalendarDeps
from mailbridge.errors import NotFound, ProviderAuthError
from mailbridge.models.account import Account, calendar_access
from mailbridge.observability import logger
from mailbridge.providers.calendar_errors import EtagMismatch, ProviderEventGone
from mailbridge.providers.google_calendar.client import (
    EventExists,
    GoogleCalendarClient,
    SyncTokenExpired,
    instance_id,
)
from mailbridge.providers.google_calendar.models import GoogleEvent
from mailbridge.providers.graph.calendar import DeltaReset, GraphCalendarClient, GraphEvent, window
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


def _graph_client(account: Account) -> GraphCalendarClient:
    from mailbridge.config import get_settings
    from mailbridge.oauth.tokens import token_source
    from mailbridge.providers.graph.budget import budget_for

    settings = get_settings().microsoft
    return GraphCalendarClient(
        token_source(account),
        base_url=settings.graph_url,
        ca_file=settings.ca_bundle or None,
        budget=budget_for(f"{account.tenant_id}#{account.account_id}"),
    )


def pull_account(account: Account, deps: CalendarDeps, *, enabled: bool) -> PullReport:
    """Pull with the account's provider: Graph accounts by calendarView delta, others by Google."""
    if account.provider == "graph":
        return pull_graph(account, _graph_client(account), deps, enabled=enabled, now=datetime.now(UTC))
    return pull_google(account, _client(account), deps, enabled=enabled)


def handle_calendar(message: SyncCalendar, accounts: AccountStore, queue: SyncQueue) -> PullReport | None:
    """The schedule's message (no account): queue one per active account of its provider (of
    Gmail and Graph when it names none); an account's: pull its calendar. ProviderAuthError
    (reauth_required, insufficient_scope) ends the pull quietly (a retry cannot help); other
    ProviderErrors go back to the queue."""
    if message.tenant_id is None or message.account_id is None:
        slot = datetime.now(UTC).strftime("%Y%m%d%H") + f"{datetime.now(UTC).minute // 15}"
        requests: list[SyncCalendar] = []
        ids: list[str] = []
        providers: tuple[Literal["gmail", "graph"], ...] = (
            (message.provider,) if message.provider else ("gmail", "graph")
        )
        for provider in providers:
            for tenant_id, account_id in accounts.pollable(provider):
                requests.append(SyncCalendar(provider=provider, tenant_id=tenant_id, account_id=account_id))
                ids.append(f"calendar-{tenant_id}-{account_id}-{slot}"[:128])
        if requests:
            queue.send_many(requests, ids)
        return None
    try:
        account = accounts.get_account(message.tenant_id, message.account_id)
    except NotFound:
        return None
    from mailbridge.calendar.wiring import calendar_deps

    try:
        report = pull_account(account, calendar_deps(), enabled=_enabled(account.tenant_id))
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
    seen: set[str] = set()
    page_token: str | None = None
    for _ in range(MAX_PAGES):
        page = client.list_events(token, page_token)
        report.pages += 1
        _apply(account, page.items, deps, report)
        seen.update(e.id for e in page.items if e.status != "cancelled" or e.recurring_event_id)
        if page.next_page_token:
            page_token = page.next_page_token
            continue
        if report.full:
            _reconcile(account, deps, seen, report)
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
    stored = _store(account, google.parse(members, _stored_series(tenant_id, members, deps)), deps, report)
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


def _stored_series(tenant_id: str, members: list[google.Member], deps: CalendarDeps) -> dict[str, bytes]:
    """The stored series VEVENT of each UID whose exceptions come without their series (an
    incremental page), so the exceptions are read as overrides of it (`google.parse`)."""
    masters = {m.uid for m in members if m.event.recurring_event_id is None}
    orphans = sorted({m.uid for m in members if m.event.recurring_event_id is not None} - masters)
    if not orphans:
        return {}
    found = deps.store.events_by_uid(tenant_id, orphans)
    return {
        uid: google.series_vevent(uid, event.sequence, event.fields(), event.updated_at)
        for uid, event in found.items()
    }


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


def _store(
    account: Account,
    parsed: ics.ParsedFile,
    deps: CalendarDeps,
    report: PullReport,
    source: EventSource = "google",
) -> set[str]:
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
            source=source,
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


# ------------------------------------------------------------------------- Microsoft Graph


def pull_graph(
    account: Account, client: GraphCalendarClient, deps: CalendarDeps, *, enabled: bool, now: datetime
) -> PullReport:
    """Pull the account's Outlook calendar view (`calendarView/delta`, see `calendar.graph` and
    `providers.graph.calendar`): from the saved `@odata.deltaLink`, or without one a full round
    of the window around `now` (90 days back, 365 ahead). The deltaLink of the round's last page
    is saved only after every page is stored. A reset (410, `syncStateNotFound`,
    `resyncRequired`) drops the link and runs a full round; after every full round the account's
    stored events that the round did not return are deleted (reconciled by provider id), so an
    event deleted while the link was dead does not stay here. Raises the client's other
    ProviderErrors (the queue retries the retryable ones)."""
    if not enabled or account.provider != "graph":
        return PullReport(status="off")
    if calendar_access(account.provider, account.oauth.scopes if account.oauth else None) != "granted":
        return PullReport(status="reconnect_required")
    link = deps.store.calendar_sync_token(account.tenant_id, account.account_id)
    try:
        return _pull_graph(account, client, deps, link, now)
    except DeltaReset:
        deps.store.save_calendar_sync_token(account.tenant_id, account.account_id, None)
        return _pull_graph(account, client, deps, None, now)


def _pull_graph(
    account: Account, client: GraphCalendarClient, deps: CalendarDeps, link: str | None, now: datetime
) -> PullReport:
    report = PullReport(full=link is None)
    seen: set[str] = set()
    for page in client.calendar_delta(window(now), link):
        report.pages += 1
        for _ in range(page.skipped):
            report.skip("unreadable_event")
        _apply_graph(account, page.events, deps, report, seen)
        if page.delta_link is not None:
            if report.full:
                _reconcile(account, deps, seen, report)
            deps.store.save_calendar_sync_token(account.tenant_id, account.account_id, page.delta_link)
            return report
        if report.pages >= MAX_PAGES:
            break
    report.skip("too_many_pages")  # the link is not saved: the next pull starts from the old one
    return report


def _apply_graph(
    account: Account, items: list[GraphEvent], deps: CalendarDeps, report: PullReport, seen: set[str]
) -> None:
    tenant_id, account_id = account.tenant_id, account.account_id
    links = deps.store.provider_links(tenant_id, account_id, {e.id for e in items})
    members: list[graph.Member] = []
    for item in items:
        link = links.get(item.id)
        if item.removed is not None:
            seen.discard(item.id)
            _remove(tenant_id, account_id, link, deps, report)
            continue
        seen.add(item.id)
        if item.type == "seriesMaster":
            report.skip("series_master")  # a calendar view holds occurrences, not masters
        elif link is not None and item.etag is not None and link.etag == item.etag:
            report.echoes += 1
        else:
            # the stored link first: an event created here has our UID, Graph its own iCalUId
            uid = (link.uid if link else None) or item.ical_uid or f"{item.id}@outlook.graph"
            members.append(graph.Member(item, uid))
    stored = _store(account, graph.parse(members), deps, report, source="microsoft")
    for member in members:
        if member.uid in stored:
            item = member.event
            saved = ProviderLink(
                provider_id=item.id,
                uid=member.uid,
                etag=item.etag,
                updated=item.last_modified.isoformat() if item.last_modified else None,
            )
            deps.store.save_provider_link(tenant_id, account_id, saved, series=True)


def _reconcile(account: Account, deps: CalendarDeps, seen: set[str], report: PullReport) -> None:
    """After a full round (Google after a 410 or a first listing, Graph after a reset): delete
    the stored events of provider ids the round did not return. A link the round did not return
    whose event is held by a returned id (a Google exception no longer listed while its series
    is) loses only the link, not the series."""
    tenant_id, account_id = account.tenant_id, account.account_id
    for link in deps.store.account_provider_links(tenant_id, account_id):
        if link.provider_id in seen:
            continue
        holder = deps.store.provider_of(tenant_id, link.uid)
        if holder is not None and holder[0] == account_id and holder[1] in seen:
            deps.store.delete_provider_link(tenant_id, account_id, link)
        else:
            _remove(tenant_id, account_id, link, deps, report)


# ---------------------------------------------------------------------------------- push-back


@dataclass(frozen=True)
class Written:
    """A provider event as a write or read answered it: its id, etag and last change time."""

    provider_id: str
    etag: str | None
    updated: datetime | None


@dataclass(frozen=True)
class Writer:
    """One provider's side of the push-back: the body of our event, and patch / read / delete
    by provider id with an `If-Match` etag (raising EtagMismatch on 412, ProviderEventGone)."""

    body: Callable[[EventFields], dict[str, object]]
    patch: Callable[[str, dict[str, object], str | None], Written]
    read: Callable[[str], Written]
    delete: Callable[[str, str | None], None]
    # create with our UID (None: this provider's create is not wired)
    insert: Callable[[str, dict[str, object]], Written] | None = None
    # one occurrence: its provider id from the series' id and its RECURRENCE-ID, and the body of
    # its patch (None: occurrences are not pushed to this provider)
    instance_id: Callable[[str, date | datetime], str] | None = None
    occurrence_body: Callable[[EventFields, Override], dict[str, object]] | None = None


def google_writer(client: GoogleCalendarClient) -> Writer:
    def written(event: GoogleEvent) -> Written:
        return Written(event.id, event.etag, event.updated)

    return Writer(
        body=google.to_google,
        patch=lambda pid, body, etag: written(client.patch_event(pid, dict(body), etag)),
        read=lambda pid: written(client.get_event(pid)),
        delete=client.delete_event,
        insert=lambda uid, body: written(_insert_google(client, uid, body)),
        instance_id=instance_id,
        occurrence_body=google.to_google_occurrence,
    )


def _insert_google(client: GoogleCalendarClient, uid: str, body: dict[str, object]) -> GoogleEvent:
    """`events.insert` with our UID as `iCalUID`; a 409 `duplicate` means an earlier insert of
    this event succeeded and its link was not stored (the message is being retried): the event
    found by `events.list?iCalUID=` is the one to link (EventExists again when none is live)."""
    try:
        return client.insert_event({**body, "iCalUID": uid})
    except EventExists:
        found = client.find_by_ical_uid(uid)
        if found is None:
            raise
        return found


def graph_writer(client: GraphCalendarClient) -> Writer:
    def written(event: GraphEvent) -> Written:
        return Written(event.id, event.etag, event.last_modified)

    return Writer(
        body=graph.to_graph,
        patch=lambda pid, body, etag: written(client.update_event(pid, dict(body), etag)),
        read=lambda pid: written(client.get_event(pid)),
        delete=client.delete_event,
        insert=lambda _uid, body: written(client.create_event(dict(body))),  # Graph assigns iCalUId
    )


def handle_push(message: PushCalendar, accounts: AccountStore) -> str:
    """Run one queued push (see `push`) with the account's provider; ProviderAuthError ends it
    quietly (a retry cannot help: the account needs a reconnect); other ProviderErrors go back to
    the queue."""
    try:
        account = accounts.get_account(message.tenant_id, message.account_id)
    except NotFound:
        return "account_gone"
    from mailbridge.calendar.wiring import calendar_deps

    writer = (
        graph_writer(_graph_client(account))
        if account.provider == "graph"
        else google_writer(_client(account))
    )
    try:
        outcome = push(message, writer, calendar_deps())
    except ProviderAuthError as exc:
        logger.warning("calendar push stopped", extra={"code": exc.code})
        return "auth_failed"
    logger.info("calendar push", extra={"outcome": outcome, "deleted": message.deleted})
    return outcome


def push_google(message: PushCalendar, client: GoogleCalendarClient, deps: CalendarDeps) -> str:
    """`push` to Google Calendar (`events.patch` / `events.delete`)."""
    return push(message, google_writer(client), deps)


def push_graph(message: PushCalendar, client: GraphCalendarClient, deps: CalendarDeps) -> str:
    """`push` to Outlook (`PATCH` / `DELETE /me/events/{id}`, conflicts by `lastModifiedDateTime`)."""
    return push(message, graph_writer(client), deps)


def push(message: PushCalendar, writer: Writer, deps: CalendarDeps) -> str:
    """Push an API change of a pulled event to its provider: patch (or delete) with `If-Match`
    set to the etag we last saw, then store the etag the provider answers, so the next pull
    recognises the change as ours (echo suppression) instead of importing it again.

    Conflicts, last writer wins by time: a 412 means the provider changed the event after we read
    it; its last change time (Google `updated`, Graph `lastModifiedDateTime`) is compared with
    `message.at` (when our change was made). The provider's later change wins (nothing is pushed;
    the next pull brings it); ours wins otherwise (sent again with the etag just read). An event
    already deleted at the provider (404/410) is left deleted.

    An event created here (`provider_id` None) is created at the provider (Google
    `events.insert` with our UID as `iCalUID`; Graph `POST /me/events`, which assigns its own
    `iCalUId`, so the pull matches the link before the UID), its id and etag stored as a link,
    so the next pull recognises it as an echo instead of importing a duplicate; when a link exists already (a
    repeated message) it is patched instead. When the insert succeeded but the link write did
    not, the retried insert gets 409 `duplicate` and the event found by its `iCalUID` is linked.

    Returns `created`, `patched`, `deleted`, `provider_newer`, `gone`, `event_gone` or
    `unsupported` (a create for a provider without one)."""
    if message.provider_id is None:
        return _push_new(message, writer, deps)
    return _push_existing(message, message.provider_id, writer, deps)


T = TypeVar("T")


def _last_writer(
    message: PushCalendar, provider_id: str, writer: Writer, etag: str | None, send: Callable[[str | None], T]
) -> T | None:
    """`send(etag)`; on a 412 the provider's version decides (see `push`): None when its last
    change is later than ours (nothing sent), else `send` again with the etag just read."""
    try:
        return send(etag)
    except EtagMismatch:
        theirs = writer.read(provider_id)
        if theirs.updated is not None and theirs.updated > message.at:
            return None
        return send(theirs.etag)


def _link(written: Written, uid: str) -> ProviderLink:
    return ProviderLink(
        provider_id=written.provider_id,
        uid=uid,
        etag=written.etag,
        updated=written.updated.isoformat() if written.updated else None,
    )


def _push_existing(message: PushCalendar, provider_id: str, writer: Writer, deps: CalendarDeps) -> str:
    tenant_id, account_id = message.tenant_id, message.account_id
    link = deps.store.provider_links(tenant_id, account_id, [provider_id]).get(provider_id)
    etag = link.etag if link else None
    if message.deleted:
        try:
            return _push_delete(message, provider_id, writer, deps, link, etag)
        except ProviderEventGone:
            return "gone"
    event = deps.store.get_event(tenant_id, message.event_id)
    if event is None:
        return "event_gone"
    outcome = "patched"
    if message.series:
        body = writer.body(event.fields())
        try:
            sent = _last_writer(
                message, provider_id, writer, etag, lambda tag: writer.patch(provider_id, body, tag)
            )
        except ProviderEventGone:
            return "gone"  # the series is gone, and its occurrences with it
        if sent is None:
            outcome = "provider_newer"
        else:
            deps.store.save_provider_link(tenant_id, account_id, _link(sent, event.uid), series=True)
    overrides = {times.order_key(o.recurrence_id): o for o in event.overrides}
    for key in message.occurrences:
        override = overrides.get(key)
        if override is None:
            continue  # no longer overridden here (a pull replaced the event since)
        pushed = _push_occurrence(message, provider_id, event, override, writer, deps)
        outcome = pushed if outcome == "patched" else outcome
    return outcome


def _push_occurrence(
    message: PushCalendar,
    series_id: str,
    event: Event,
    override: Override,
    writer: Writer,
    deps: CalendarDeps,
) -> str:
    """Push one overridden occurrence to its instance id (Google `events.patch`, or
    `events.delete` for a cancelled one), conflicts decided as the series' are (`push`). The
    instance's answered etag is stored as a link of the series' UID that is not the series
    (`series=False`), so the next pull recognises the exception it lists as our echo, and
    otherwise merges it into this override by RECURRENCE-ID (`_merged_overrides`)."""
    if writer.instance_id is None or writer.occurrence_body is None:
        return "unsupported"
    tenant_id, account_id = message.tenant_id, message.account_id
    provider_id = writer.instance_id(series_id, override.recurrence_id)
    link = deps.store.provider_links(tenant_id, account_id, [provider_id]).get(provider_id)
    etag = link.etag if link else None
    try:
        if override.status == "cancelled":

            def cancel(tag: str | None) -> Written:
                writer.delete(provider_id, tag)
                return writer.read(provider_id)  # the cancelled exception, with its etag

            sent = _last_writer(message, provider_id, writer, etag, cancel)
        else:
            body = writer.occurrence_body(event.fields(), override)
            sent = _last_writer(
                message, provider_id, writer, etag, lambda tag: writer.patch(provider_id, body, tag)
            )
    except ProviderEventGone:
        return "gone"  # not an occurrence at the provider, or cancelled there already
    if sent is None:
        return "provider_newer"
    deps.store.save_provider_link(tenant_id, account_id, _link(sent, event.uid), series=False)
    return "patched"


def _push_new(message: PushCalendar, writer: Writer, deps: CalendarDeps) -> str:
    event = deps.store.get_event(message.tenant_id, message.event_id)
    if event is None:
        return "event_gone"
    ref = deps.store.provider_of(message.tenant_id, event.uid)
    if ref is not None and ref[0] == message.account_id:
        return _push_existing(message, ref[1], writer, deps)  # created by an earlier message
    if writer.insert is None:
        return "unsupported"
    sent = writer.insert(event.uid, writer.body(event.fields()))
    saved = ProviderLink(
        provider_id=sent.provider_id,
        uid=event.uid,
        etag=sent.etag,
        updated=sent.updated.isoformat() if sent.updated else None,
    )
    deps.store.save_provider_link(message.tenant_id, message.account_id, saved, series=True)
    return "created"


def _push_delete(
    message: PushCalendar,
    provider_id: str,
    writer: Writer,
    deps: CalendarDeps,
    link: ProviderLink | None,
    etag: str | None,
) -> str:
    def delete(tag: str | None) -> bool:
        writer.delete(provider_id, tag)
        return True

    if _last_writer(message, provider_id, writer, etag, delete) is None:
        return "provider_newer"  # the next pull finds a changed etag and brings it back
    if link is not None:
        deps.store.delete_provider_link(message.tenant_id, message.account_id, link)
    return "deleted"
