"""Incremental, resumable Graph (Microsoft 365 / Outlook.com) sync of one account.

Per folder (Inbox, Sent Items, then the account's selected folders, by well-known name or id),
one `messages/delta` round at a time (delta-query-messages; notes.md, Graph):
  1. a page of changes arrives (in no particular order, possibly with replays and duplicates);
  2. `@removed` entries drop the folder's location of the message (the email is marked deleted
     when no mailbox holds it any more);
  3. entries already stored here (their location exists: a replay, a change of `isRead` or
     `flag`, a full round after a reset) only update the flags when they differ; nothing is
     downloaded or stored again;
  4. the others are downloaded as MIME (`$value` in JSON batches, bounded concurrency) and stored
     by the shared batched ingest (`ingest_batch`): the location is the immutable message id, the
     thread the `conversationId`; new emails are announced;
  5. only then is the page's `@odata.nextLink` (or, on the last page, the `@odata.deltaLink`)
     saved as the folder's cursor, so a crash repeats a page (harmlessly) and never skips one.
A `DeltaReset` (410 Gone, syncStateNotFound, resyncRequired) clears the cursor and restarts the
folder with a full round, which by 3. stores nothing twice. Work stops when the run's budget is
spent (messages or deadline: no page starts after it) and the caller queues a continuation. A
rate limit (`ProviderRateLimited`, from Graph or from the account's request budget) is raised to
the caller with what is stored kept, to be retried after its `retry_after`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mailbridge.errors import ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.models.account import Account, FolderPresence, FolderState, SyncStage
from mailbridge.observability import logger
from mailbridge.providers.graph.client import GraphClient
from mailbridge.providers.graph.errors import DeltaReset, MessageNotFound
from mailbridge.providers.graph.models import DeltaMessage
from mailbridge.providers.graph.wiring import client_for
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.store.keys import location_sk
from mailbridge.sync.engine import (
    Budget,
    FlagUpdate,
    FolderReport,
    SyncDeps,
    SyncReport,
    announce_ingested,
    apply_flag_updates,
)
from mailbridge.sync.ingest import Mailbox, ingest_batch
from mailbridge.sync.messages import PushFlags, SyncRequest

if TYPE_CHECKING:
    from mailbridge.sync.service import SyncServiceDeps

INBOX, SENT_ITEMS = "inbox", "sentitems"
GRAPH_UIDVALIDITY = 0  # Graph ids do not renumber: one generation of locations per folder


@dataclass(frozen=True)
class GraphFolder:
    name: str  # the folder's key in our store: a well-known name, or the id for others
    id: str
    is_sent: bool = False


def plan_folders(client: GraphClient, account: Account) -> list[GraphFolder]:
    """Inbox, Sent Items, then the selected folders (well-known names or ids), each once."""
    names = list(dict.fromkeys([INBOX, SENT_ITEMS, *account.folders]))
    folders: list[GraphFolder] = []
    for name in names:
        folder = client.folder(name)
        if any(f.id == folder.id for f in folders):
            continue
        folders.append(GraphFolder(name=name, id=folder.id, is_sent=name == SENT_ITEMS))
    return folders


def sync_graph_account(client: GraphClient, account: Account, deps: SyncDeps, budget: Budget) -> SyncReport:
    report = SyncReport()
    for folder in plan_folders(client, account):
        if budget.exhausted():
            report.folders.append(FolderReport(name=folder.name, complete=False))
            continue
        mailbox = Mailbox(
            account.tenant_id,
            account.account_id,
            account.address,
            folder.name,
            GRAPH_UIDVALIDITY,
            folder.is_sent,
        )
        report.folders.append(sync_graph_folder(client, folder, mailbox, deps, budget))
    return report


def sync_graph_folder(
    client: GraphClient, folder: GraphFolder, mailbox: Mailbox, deps: SyncDeps, budget: Budget
) -> FolderReport:
    tenant, account_id = mailbox.tenant_id, mailbox.account_id
    report = FolderReport(name=folder.name)
    state = deps.accounts.folder_state(tenant, account_id, folder.name)
    state = state.model_copy(update={"state": FolderPresence.ACTIVE, "reason": None})
    for attempt in range(2):
        try:
            _rounds(client, folder, mailbox, state, deps, budget, report)
            return report
        except DeltaReset:
            if attempt:
                raise
            logger.info("graph delta reset; the folder restarts with a full round")
            state.delta_link = None
            deps.accounts.save_folder_state(tenant, account_id, state)
    return report


def _rounds(
    client: GraphClient,
    folder: GraphFolder,
    mailbox: Mailbox,
    state: FolderState,
    deps: SyncDeps,
    budget: Budget,
    report: FolderReport,
) -> None:
    """Pages from the saved link until the round's deltaLink, or until the budget is spent."""
    for page in client.delta_pages(folder.id, state.delta_link):
        _apply_page(client, page.messages, mailbox, state, deps, report)
        budget.spent += len(page.messages)
        state.delta_link = page.next_link or page.delta_link
        state.last_synced_at = datetime.now(UTC)
        deps.accounts.save_folder_state(mailbox.tenant_id, mailbox.account_id, state)
        if page.next_link and budget.exhausted():
            report.complete = False
            return


def _apply_page(
    client: GraphClient,
    entries: Sequence[DeltaMessage],
    mailbox: Mailbox,
    state: FolderState,
    deps: SyncDeps,
    report: FolderReport,
) -> None:
    tenant = mailbox.tenant_id
    # The last entry of an id in the page is its newest state (replays repeat earlier ones).
    latest = {entry.id: entry for entry in entries}
    keys = {mid: _loc_sk(mailbox, mid) for mid in latest}
    stored = {str(loc["sk"]): loc for loc in deps.emails.batch_get_sks(tenant, sorted(keys.values()))}
    new: list[DeltaMessage] = []
    updates: list[FlagUpdate] = []
    # The link that returned this page names its changes (the same on a replay, new each round).
    change = hashlib.sha256((state.delta_link or "").encode()).hexdigest()[:16]
    for message_id, entry in latest.items():
        location = stored.get(keys[message_id])
        if entry.removed:
            if location is not None:
                deps.emails.delete_location(tenant, keys[message_id])
                deps.emails.detach_location(tenant, str(location["email_id"]), keys[message_id])
                state.messages_stored = max(0, state.messages_stored - 1)
                report.expunged += 1
        elif location is None:
            new.append(entry)
        elif sorted(location.get("flags") or []) != sorted(entry.flags):
            updates.append(
                FlagUpdate(keys[message_id], str(location["email_id"]), tuple(entry.flags), None, change)
            )
    apply_flag_updates(tenant, mailbox.account_id, updates, deps)
    report.flag_updates += len(updates)
    if not new:
        return
    downloaded = client.get_mime_many([entry.id for entry in new])
    fetched = [
        FetchedMessage(
            uid=0,
            flags=entry.flags,
            internal_date=entry.received or datetime.now(UTC),
            modseq=None,
            size=len(downloaded.mime[entry.id]),
            raw=downloaded.mime[entry.id],
            location_id=entry.id,
            provider_thread_id=entry.conversation_id,
        )
        for entry in new
        if entry.id in downloaded.mime
    ]
    if fetched:
        results = ingest_batch(mailbox, fetched, deps.emails, deps.blobs)
        for result in results:
            if result.quarantined:
                report.quarantined += 1
                continue
            state.messages_stored += 1
            if result.new_location:
                report.stored += 1
        announce_ingested(tenant, mailbox.account_id, results, deps)
    if downloaded.throttled:
        # What arrived is stored; the page is asked for again (its link is not saved) later.
        raise ProviderRateLimited(
            "Graph throttled message downloads of this mailbox", retry_after=downloaded.retry_after
        )


def _loc_sk(mailbox: Mailbox, message_id: str) -> str:
    return location_sk(mailbox.account_id, mailbox.folder, mailbox.uidvalidity, message_id)


def _pick_up_drafts(client: Any, account: Account, deps: Any) -> None:
    """Drafts written in Outlook become drafts here (`mailbridge.drafts.pickup`); a failure there
    (other than a revoked grant) never fails the mail sync."""
    from mailbridge.drafts.pickup import pick_up_graph_drafts
    from mailbridge.store.drafts import DraftStore

    try:
        pick_up_graph_drafts(
            client, account, DraftStore(deps.sync.emails.table_name), deps.sync.blobs, deps.sync.now
        )
    except ProviderAuthError:
        raise
    except ProviderError as exc:
        logger.warning("outlook drafts not picked up", extra={"code": exc.code})


def run_graph_sync(
    request: SyncRequest, account: Account, deps: SyncServiceDeps, budget: Budget
) -> SyncReport | None:
    """One SyncQueue record of a Graph account: sync, then idle or a continuation. Credentials
    refused -> failed (`reauth_required`), no retry; a rate limit -> the state says so and
    ProviderRateLimited goes up for the record to come back after `retry_after`
    (`functions/sync`); other provider errors go up for the queue's retry."""
    from mailbridge.sync.service import _failed, _state, continuation_of

    if account.sync.reason == "reauth_required" and request.reason == "poll":
        deps.sync.accounts.clear_sync_queued(account.tenant_id, account.account_id, request.requested_at)
        return None
    _state(account, deps, stage=SyncStage.SYNCING, reason=None)
    deps.sync.accounts.clear_sync_queued(account.tenant_id, account.account_id, request.requested_at)
    client = (deps.graph_client or client_for)(account)
    try:
        report = sync_graph_account(client, account, deps.sync, budget)
        _pick_up_drafts(client, account, deps)
    except ProviderAuthError as exc:
        _failed(account, deps, exc)
        logger.warning("graph sync stopped: credentials rejected", extra={"code": exc.code})
        return None
    except ProviderRateLimited as exc:
        _state(account, deps, stage=SyncStage.SYNCING, reason="rate_limited")
        logger.info(
            "graph sync rate limited; the record comes back later", extra={"retry_after": exc.retry_after}
        )
        raise
    except ProviderError as exc:
        if not exc.retryable:
            _failed(account, deps, exc)
            return None
        raise
    if report.complete:
        _state(account, deps, stage=SyncStage.IDLE, reason=None, last_success_at=deps.sync.now())
    else:
        deps.queue.send(continuation_of(request))
    logger.info("graph sync run", extra={"stored": report.stored, "complete": report.complete})
    return report


def push_graph_flags(
    message: PushFlags, account: Account, locations: list[dict[str, Any]], deps: SyncServiceDeps
) -> None:
    """Write read/flagged changes made through the API to the Graph mailbox: one `PATCH
    /me/messages/{id}` (isRead, flag.flagStatus) per location of the email in the account, then
    the location's flags as the mailbox now has them; archive/trash: `POST
    /me/messages/{id}/move` with a well-known `destinationId` (see `_move_target`), and the
    location re-keyed to that folder and the id Graph answers. A message gone from the mailbox is
    skipped (the next delta reports it removed)."""
    client = (deps.graph_client or client_for)(account)
    is_read = _wanted(message, "\\Seen")
    flagged = _wanted(message, "\\Flagged")
    for loc in locations:
        provider_id = loc.get("provider_id")
        if not provider_id:
            continue
        try:
            if is_read is not None or flagged is not None:
                client.update(str(provider_id), is_read=is_read, flagged=flagged)
            target = _move_target(message, str(loc["folder"]))
            moved_id = client.move(str(provider_id), target) if target else None
        except MessageNotFound:
            continue
        flags = (set(loc.get("flags") or []) | set(message.add)) - set(message.remove)
        if target is None or moved_id is None:
            deps.sync.emails.set_location_flags(message.tenant_id, str(loc["sk"]), sorted(flags), None)
            continue
        # The message is in `target` now, under the id Graph answered: the location follows, so
        # the next delta of either folder sees nothing new and nothing removed.
        emails, new_sk = (
            deps.sync.emails,
            location_sk(account.account_id, target, GRAPH_UIDVALIDITY, moved_id),
        )
        kept = {k: v for k, v in loc.items() if k not in ("pk", "sk")}
        item = {**kept, "folder": target, "provider_id": moved_id, "flags": sorted(flags)}
        emails.create_location(message.tenant_id, new_sk, item)
        emails.attach_location(message.tenant_id, message.email_id, new_sk, account.account_id, target)
        emails.delete_location(message.tenant_id, str(loc["sk"]))
        emails.detach_location(message.tenant_id, message.email_id, str(loc["sk"]))


ARCHIVE, DELETED_ITEMS = "archive", "deleteditems"


def _move_target(message: PushFlags, folder: str) -> str | None:
    """The well-known folder (Graph mailFolder doc: `archive`, `deleteditems`, `inbox`) a location
    in `folder` moves to for the message's archived/trashed change, or None to stay.

    archived true: inbox -> archive; false: archive -> inbox. trashed true: any folder but
    deleteditems -> deleteditems; false: deleteditems -> inbox."""
    if message.trashed is not None:
        if message.trashed:
            return DELETED_ITEMS if folder != DELETED_ITEMS else None
        return INBOX if folder == DELETED_ITEMS else None
    if message.archived is not None:
        if message.archived:
            return ARCHIVE if folder == INBOX else None
        return INBOX if folder == ARCHIVE else None
    return None


def _wanted(message: PushFlags, flag: str) -> bool | None:
    if flag in message.add:
        return True
    if flag in message.remove:
        return False
    return None
