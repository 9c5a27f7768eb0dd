"""Completeness reconciler: proves, per folder, that what we store is what the server holds, and
repairs what differs.

One `Reconcile` record of the SyncQueue (in the account's message group, so it never runs beside a
sync of the same account) lists each synced folder's ids on the server with the cheapest call the
provider has, and the folder's stored locations (`EmailStore.folder_locations`, a paged query):
  * IMAP: `UID SEARCH ALL` (`MailFolderSource.list_uids`) in the folder's current UIDVALIDITY;
  * Gmail: `users.messages.list` ids (`fields=messages(id,threadId),nextPageToken`, 500 a page,
    5 quota units each, through the account's quota budget) against the `[Gmail]/All Mail`
    anchors, the listing the full sync stores from (SPAM and TRASH left out; an anchor the user
    moved there is not extra);
  * Graph: `GET /me/mailFolders/{id}/messages?$select=id,...&$top=1000` pages.
Then:
  * missing (on the server, not stored) are backfilled through the sync's own storing code:
    IMAP `fetch_new` by runs of consecutive server UIDs into `ingest_batch` + `announce_ingested`
    (as `engine._store_batch`); Gmail `GmailSync.fetch_and_store`; Graph `graph._apply_page`;
  * extra (stored, no longer on the server) are removed as the sync removes them: IMAP
    `engine._expunge`, Gmail `GmailSync.remove`, Graph `_apply_page` with `@removed` entries (the
    email is marked deleted when no mailbox holds it any more);
  * the folder's counts are set to what is now true, and `FolderState.reconcile`
    (`ReconcileFindings`) records the counts before repair, missing, extra, repaired, the time,
    and the code of an error that stopped it; one metric per figure (EMF, Powertools).
A folder never synced yet (no cursor) is left to the sync. Backfills stop at the run's budget
(messages or deadline); what is left is recorded as found but not repaired, and a continuation
record carries on. `reconcile_queued_at` (the account's sync state) is set while a reconcile is
queued or running: `POST /accounts/{id}/reconcile` queues no second one meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from mailbridge.errors import MailbridgeError, NotFound, ProviderAuthError, ProviderError, ProviderRateLimited
from mailbridge.models.account import REAUTH_REQUIRED, Account, FolderState, ReconcileFindings
from mailbridge.observability import logger, metrics
from mailbridge.store.keys import location_prefix
from mailbridge.sync.engine import Budget, SyncDeps, announce_ingested
from mailbridge.sync.ingest import Mailbox, ingest_batch
from mailbridge.sync.messages import Reconcile

if TYPE_CHECKING:
    from mailbridge.providers.gmail.client import GmailClient
    from mailbridge.providers.graph.client import GraphClient
    from mailbridge.providers.imap.protocol import MailFolderSource
    from mailbridge.sync.service import SyncServiceDeps

PROVIDERS = ("imap", "gmail", "graph")
NOT_STORED_FOLDERS = frozenset({"SPAM", "TRASH"})
"""Gmail labels whose messages `messages.list` leaves out by default, as the full sync does."""


@dataclass
class Tally:
    """One folder's comparison, filled as it goes."""

    name: str
    server: int = 0
    stored: int = 0
    missing: int = 0
    extra: int = 0
    repaired: int = 0
    error: str | None = None
    complete: bool = True

    def findings(self, at: datetime) -> ReconcileFindings:
        return ReconcileFindings(
            at=at,
            server_count=self.server,
            stored_count=self.stored,
            missing=self.missing,
            extra=self.extra,
            repaired=self.repaired,
            error=self.error,
        )


def handle_reconcile(message: Reconcile, deps: SyncServiceDeps, budget: Budget) -> list[Tally]:
    """A `Reconcile` record: fanned out from the schedule, or one account (see module docstring)."""
    if message.tenant_id is None or message.account_id is None:
        fan_out(deps)
        return []
    accounts = deps.sync.accounts
    try:
        account = accounts.get_account(message.tenant_id, message.account_id)
    except NotFound:
        return []
    if account.sync.reason in (REAUTH_REQUIRED, "auth_failed"):
        # Nothing can be listed until the user reconnects; the status says so already.
        accounts.clear_reconcile_queued(account.tenant_id, account.account_id)
        return []
    tallies: list[Tally] = []
    try:
        tallies = reconcile_account(account, deps, budget)
    except ProviderRateLimited:
        raise  # the record comes back after retry_after (functions/sync); still queued
    except ProviderAuthError as exc:
        from mailbridge.sync.service import _failed

        _failed(account, deps, exc)  # the verdict says reauth_required
    except ProviderError as exc:
        if exc.retryable:
            raise  # unreachable, timeout ...: the queue redelivers it
        logger.warning("reconcile refused", extra={"code": exc.code})
    except MailbridgeError as exc:  # Invalid: host_not_allowed, insecure_not_allowed (the sync reports it)
        logger.warning("reconcile refused", extra={"code": exc.code})
    if any(not t.complete for t in tallies):
        deps.queue.send(
            Reconcile(tenant_id=account.tenant_id, account_id=account.account_id, reason="continuation")
        )
    else:
        accounts.clear_reconcile_queued(account.tenant_id, account.account_id)
    return tallies


def fan_out(deps: SyncServiceDeps) -> int:
    """One `Reconcile` per active account of every provider, shown as queued; a dedupe id per
    day collapses a repeated schedule."""
    from mailbridge.accounts import RECONCILE_STALE_AFTER

    accounts = deps.sync.accounts
    day = deps.sync.now().strftime("%Y%m%d")
    messages, ids = [], []
    for provider in PROVIDERS:
        for tenant_id, account_id in accounts.pollable(provider):
            message = Reconcile(tenant_id=tenant_id, account_id=account_id, reason="nightly")
            if not accounts.mark_reconcile_queued(
                tenant_id, account_id, message.requested_at, message.requested_at - RECONCILE_STALE_AFTER
            ):
                continue  # one is queued already, or the account is gone
            messages.append(message)
            ids.append(f"reconcile-{tenant_id}-{account_id}-{day}"[:128])
    if messages:
        deps.queue.send_many(messages, ids)
    return len(messages)


def reconcile_account(account: Account, deps: SyncServiceDeps, budget: Budget) -> list[Tally]:
    if account.provider == "graph":
        from mailbridge.providers.graph.wiring import client_for

        graph = (deps.graph_client or client_for)(account)
        return reconcile_graph(graph, account, deps.sync, budget)
    if account.provider == "gmail":
        from mailbridge.sync.service import _gmail_client

        return reconcile_gmail(_gmail_client(account, deps), account, deps.sync, budget)
    from mailbridge.accounts import imap_settings
    from mailbridge.sync.service import _password

    if account.imap is None:
        return []
    settings = imap_settings(
        account.imap,
        _password(account, deps),
        allow_private=deps.allow_private_hosts,
        deadline=budget.session_deadline,
    )
    with deps.connect(settings) as source:
        return reconcile_imap(source, account, deps.sync, budget)


# ---------------------------------------------------------------------- shared steps


def _record(tally: Tally, account: Account, deps: SyncDeps, **counts: Any) -> None:
    """Save the findings and the folder's true counts on its state; emit the figures."""
    state = deps.accounts.folder_state(account.tenant_id, account.account_id, tally.name)
    state = state.model_copy(update={"reconcile": tally.findings(deps.now()), **counts})
    deps.accounts.save_folder_state(account.tenant_id, account.account_id, state)
    for name, value in (
        ("ReconcileServerCount", tally.server),
        ("ReconcileStoredCount", tally.stored),
        ("ReconcileMissing", tally.missing),
        ("ReconcileExtra", tally.extra),
        ("ReconcileRepaired", tally.repaired),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if tally.missing or tally.extra:
        logger.info(
            "reconcile found a gap",
            extra={"missing": tally.missing, "extra": tally.extra, "repaired": tally.repaired},
        )


@contextmanager
def _guarded(tally: Tally) -> Iterator[None]:
    """Around a folder's comparison: a provider error other than a rate limit or refused
    credentials is recorded on the folder (`error`) and the other folders carry on."""
    try:
        yield
    except (ProviderRateLimited, ProviderAuthError):
        raise
    except (ProviderError, MailbridgeError) as exc:
        tally.error = exc.code
        logger.warning("reconcile of a folder failed", extra={"code": exc.code})


# ---------------------------------------------------------------------- IMAP


def reconcile_imap(source: MailFolderSource, account: Account, deps: SyncDeps, budget: Budget) -> list[Tally]:
    from mailbridge.sync.engine import plan_folders

    tallies = []
    for name, is_sent in plan_folders(source, account).wanted:
        state = deps.accounts.folder_state(account.tenant_id, account.account_id, name)
        if state.uidvalidity is None:
            continue  # never synced: the sync stores it
        tally = Tally(name)
        with _guarded(tally):
            _imap_folder(source, account, state, is_sent, tally, deps, budget)
        tallies.append(tally)
    return tallies


def _imap_folder(
    source: MailFolderSource,
    account: Account,
    state: FolderState,
    is_sent: bool,
    tally: Tally,
    deps: SyncDeps,
    budget: Budget,
) -> None:
    from mailbridge.sync.engine import _expunge

    tenant, account_id, name = account.tenant_id, account.account_id, tally.name
    status = source.folder_status(name)
    if status.uidvalidity != state.uidvalidity:
        tally.error = "uidvalidity_changed"  # the next sync renumbers the folder's locations
        tally.complete = True
        _record(tally, account, deps)
        return
    mailbox = Mailbox(tenant, account_id, account.address, name, status.uidvalidity, is_sent)
    on_server = source.list_uids(name)
    stored = {
        int(loc["uid"]) for loc in deps.emails.folder_locations(tenant, account_id, name, status.uidvalidity)
    }
    server_set = set(on_server)
    missing = [uid for uid in on_server if uid not in stored]
    extra = sorted(stored - server_set)
    tally.server, tally.stored, tally.missing, tally.extra = (
        len(on_server),
        len(stored),
        len(missing),
        len(extra),
    )
    for uid in extra:
        if _expunge(mailbox, uid, deps):
            tally.repaired += 1
    backfilled, tally.complete = _imap_backfill(source, mailbox, on_server, missing, deps, budget)
    tally.repaired += backfilled
    counts: dict[str, Any] = {
        "messages_on_server": len(on_server),
        "messages_stored": len(stored) - len(extra) + backfilled,
    }
    if tally.complete and on_server:
        # Everything the server holds up to its highest UID is stored now: the cursor may move
        # there (forward only), so the sync does not fetch the backfilled mail again.
        counts["last_uid"] = max(state.last_uid, on_server[-1])
    _record(tally, account, deps, **counts)


def _imap_backfill(
    source: MailFolderSource,
    mailbox: Mailbox,
    on_server: Sequence[int],
    missing: Sequence[int],
    deps: SyncDeps,
    budget: Budget,
) -> tuple[int, bool]:
    """Fetch the missing UIDs by runs of consecutive server UIDs (one `fetch_new` after the UID
    before each run) and store them as the sync stores a batch (a message that cannot be parsed
    is quarantined, as there). How many were stored, and False when the budget stopped it."""
    wanted = set(missing)
    position = {uid: i for i, uid in enumerate(on_server)}
    runs: list[list[int]] = []
    for uid in missing:
        if runs and position[uid] == position[runs[-1][-1]] + 1:
            runs[-1].append(uid)
        else:
            runs.append([uid])
    done = 0
    for whole in runs:
        run = whole
        while run:
            if budget.exhausted():
                return done, False
            before = on_server[position[run[0]] - 1] if position[run[0]] else 0
            batch = source.fetch_new(
                mailbox.folder, before, min(len(run), budget.allowance()), budget.batch_bytes
            )
            if batch.uidvalidity != mailbox.uidvalidity or not batch.messages:
                return done, True  # renumbered or expunged meanwhile: the next sync or reconcile
            messages = [m for m in batch.messages if m.uid in wanted]
            results = ingest_batch(mailbox, messages, deps.emails, deps.blobs)
            announce_ingested(mailbox.tenant_id, mailbox.account_id, results, deps)
            done += len(results)
            budget.spent += len(messages)
            last = batch.messages[-1].uid
            run = [uid for uid in run if uid > last]
    return done, True


# ---------------------------------------------------------------------- Gmail


def reconcile_gmail(client: GmailClient, account: Account, deps: SyncDeps, budget: Budget) -> list[Tally]:
    from mailbridge.sync.gmail import ALL_MAIL

    state = deps.accounts.folder_state(account.tenant_id, account.account_id, ALL_MAIL)
    if state.history_id is None:
        return []  # the full sync has not completed: it is the reconcile of a first sync
    tally = Tally(ALL_MAIL)
    with _guarded(tally):
        _gmail_folder(client, account, tally, deps, budget)
    return [tally]


def _gmail_folder(
    client: GmailClient, account: Account, tally: Tally, deps: SyncDeps, budget: Budget
) -> None:
    from mailbridge.sync.gmail import ALL_MAIL, LOCATION_VALIDITY, GmailSync, gmail_uid

    tenant, account_id = account.tenant_id, account.account_id
    listing = client.list_messages(fields="messages(id,threadId),nextPageToken")
    on_server = {gmail_uid(ref.id): ref.id for ref in listing.messages}
    stored = {
        int(loc["uid"]): str(loc["email_id"])
        for loc in deps.emails.folder_locations(tenant, account_id, ALL_MAIL, LOCATION_VALIDITY)
    }
    sync = GmailSync(client, account, deps, budget)
    missing = [on_server[uid] for uid in sorted(on_server) if uid not in stored]
    unlisted = [uid for uid in stored if uid not in on_server]
    anchors = sync._anchors(f"{uid:016x}" for uid in unlisted)
    # An anchor labelled SPAM or TRASH is still on the server, only not in the default listing.
    extra = [
        gmail_uid(gid)
        for gid, anchor in anchors.items()
        if not NOT_STORED_FOLDERS & set(anchor.get("labels") or ())
    ]
    tally.server, tally.stored, tally.missing, tally.extra = (
        len(on_server),
        len(stored),
        len(missing),
        len(extra),
    )
    for uid in extra:
        if sync.remove(stored[uid], uid):
            tally.repaired += 1
    start = 0
    while start < len(missing):
        if budget.exhausted():
            tally.complete = False
            break
        chunk = missing[start : start + budget.allowance()]
        done, error = sync.fetch_and_store(chunk)
        budget.spent += done
        start += done
        tally.repaired += done
        if error is not None:
            raise error
    _record(
        tally,
        account,
        deps,
        messages_on_server=len(on_server),
        messages_stored=len(stored) - len(extra) + start,
    )


# ---------------------------------------------------------------------- Graph


def reconcile_graph(client: GraphClient, account: Account, deps: SyncDeps, budget: Budget) -> list[Tally]:
    from mailbridge.sync.graph import plan_folders

    tallies = []
    for folder in plan_folders(client, account):
        state = deps.accounts.folder_state(account.tenant_id, account.account_id, folder.name)
        if state.delta_link is None and state.last_synced_at is None:
            continue  # never synced: the sync stores it
        tally = Tally(folder.name)
        with _guarded(tally):
            _graph_folder(client, account, folder.id, folder.is_sent, tally, deps, budget)
        tallies.append(tally)
    return tallies


def _graph_folder(
    client: GraphClient,
    account: Account,
    folder_id: str,
    is_sent: bool,
    tally: Tally,
    deps: SyncDeps,
    budget: Budget,
) -> None:
    from mailbridge.providers.graph.models import DeltaMessage
    from mailbridge.sync.engine import FolderReport
    from mailbridge.sync.graph import GRAPH_UIDVALIDITY, _apply_page

    tenant, account_id, name = account.tenant_id, account.account_id, tally.name
    mailbox = Mailbox(tenant, account_id, account.address, name, GRAPH_UIDVALIDITY, is_sent)
    entries = {entry.id: entry for entry in client.list_messages(folder_id)}
    prefix = location_prefix(account_id, name, GRAPH_UIDVALIDITY)
    stored = {
        str(loc["sk"])[len(prefix) :]
        for loc in deps.emails.folder_locations(tenant, account_id, name, GRAPH_UIDVALIDITY)
    }
    missing = [entry for message_id, entry in entries.items() if message_id not in stored]
    extra = sorted(stored - set(entries))
    tally.server, tally.stored, tally.missing, tally.extra = (
        len(entries),
        len(stored),
        len(missing),
        len(extra),
    )
    state = deps.accounts.folder_state(tenant, account_id, name)
    report = FolderReport(name=name)
    removed = [DeltaMessage(id=message_id, removed=True) for message_id in extra]
    _apply_page(client, removed, mailbox, state, deps, report)
    start = 0
    while start < len(missing):
        if budget.exhausted():
            tally.complete = False
            break
        chunk = missing[start : start + budget.allowance()]
        _apply_page(client, chunk, mailbox, state, deps, report)
        budget.spent += len(chunk)
        start += len(chunk)
    tally.repaired = report.expunged + report.stored
    _record(
        tally,
        account,
        deps,
        messages_on_server=len(entries),
        messages_stored=len(stored) - report.expunged + report.stored,
    )
