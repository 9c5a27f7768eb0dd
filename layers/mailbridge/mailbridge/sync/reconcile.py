"""Completeness reconciler: proves, per folder, that what we store is what the server holds, and
repairs what differs.

One `Reconcile` record of the SyncQueue (in the account's message group, so it never runs beside a
sync of the same account) lists each synced folder's ids on the server with the cheapest call the
provider has, and the folder's stored locations (`EmailStore.folder_locations`, a paged query):
  * IMAP: `UID SEARCH ALL` (`MailFolderSource.list_uids`) in the folder's current UIDVALIDITY;
  * Gmail: `users.messages.list` ids (`fields=messages(id,threadId),nextPageToken`, 500 a page,
    5 quota units each, through the account's quota budget) against the `[Gmail]/All Mail`
    anchors, the listing the full sync stores from (SPAM and TRASH left out; an anchor the user
    moved there is not extra); then per synced label (INBOX, SENT, the selected labels) the
    listing with `labelIds=<label id>` against the label's folder locations, one verdict each;
  * Graph: `GET /me/mailFolders/{id}/messages?$select=id,...&$top=1000` pages.
Then:
  * missing (on the server, not stored) are backfilled through the sync's own storing code:
    IMAP `fetch_new` by runs of consecutive server UIDs into `ingest_batch` + `announce_ingested`
    (as `engine._store_batch`); Gmail `GmailSync.fetch_and_store` (a stored message a label
    misses or holds wrongly gets its labels from `messages.get?format=minimal`, placed by
    `GmailSync.place`); Graph `graph._apply_page`;
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
from mailbridge.store.keys import location_prefix, location_sk
from mailbridge.sync.engine import Budget, SyncDeps, announce_ingested
from mailbridge.sync.ingest import Mailbox, ingest_batch
from mailbridge.sync.messages import Reconcile

if TYPE_CHECKING:
    from mailbridge.providers.gmail.client import GmailClient
    from mailbridge.providers.graph.client import GraphClient
    from mailbridge.providers.imap.protocol import MailFolderSource
    from mailbridge.sync.gmail import GmailSync
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


@contextmanager
def _recorded_on_failure(tally: Tally, account: Account, deps: SyncDeps) -> Iterator[None]:
    """`_guarded` around a folder whose comparison records its own findings when it completes:
    when it fails instead, the failure (`error`, the counts found so far) is recorded on the folder,
    so `GET /accounts/{id}/status` shows it (verdict `failed`) rather than the last good run."""
    done = False
    with _guarded(tally):
        yield
        done = True
    if not done:
        _record(tally, account, deps)


# ---------------------------------------------------------------------- IMAP


def reconcile_imap(source: MailFolderSource, account: Account, deps: SyncDeps, budget: Budget) -> list[Tally]:
    from mailbridge.sync.engine import plan_folders

    tallies = []
    for name, is_sent in plan_folders(source, account).wanted:
        state = deps.accounts.folder_state(account.tenant_id, account.account_id, name)
        if state.uidvalidity is None:
            continue  # never synced: the sync stores it
        tally = Tally(name)
        with _recorded_on_failure(tally, account, deps):
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


GMAIL_LISTED = "messages(id,threadId),nextPageToken"
"""`fields` of the reconcile's `messages.list` pages: the ids are all it reads."""
GMAIL_LABELS = ("INBOX", "SENT")
"""The labels every Gmail account syncs; the user's selected labels (`Account.folders`) follow."""


@dataclass
class GmailFolder:
    """A Gmail folder compared before any repair: `[Gmail]/All Mail` (`label` None) or a synced
    label. `stored` maps the folder's stored location uids to their email ids; `missing` are the
    listed Gmail ids not stored there (ascending), `extra` the stored uids not listed."""

    tally: Tally
    label: str | None
    stored: dict[int, str]
    missing: list[str]
    extra: list[int]
    backfilled: int = 0


def gmail_labels(account: Account) -> list[str]:
    """The folder names of the labels a Gmail account syncs, each once: INBOX, SENT, then the
    user's selected labels (system labels by id, user labels by name, as the sync names folders)."""
    return list(dict.fromkeys([*GMAIL_LABELS, *account.folders]))


def reconcile_gmail(client: GmailClient, account: Account, deps: SyncDeps, budget: Budget) -> list[Tally]:
    """All Mail, then each synced label (`gmail_labels`): every folder is listed and compared
    before anything is repaired, so each verdict says what that folder had lost; then All Mail's
    gaps are repaired (extra removed, missing fetched and stored with all their labels), then the
    labels' (see `_repair_labels`). A label the mailbox does not have is recorded with the error
    `folder_not_found`. Quota: `messages.list` costs 5 units a page of 500 ids, `labels.list` 1,
    `messages.get` 5 (Gmail "Usage limits"), all through the client's `QuotaBudget`."""
    from mailbridge.sync.gmail import ALL_MAIL, GmailSync

    state = deps.accounts.folder_state(account.tenant_id, account.account_id, ALL_MAIL)
    if state.history_id is None:
        return []  # the full sync has not completed: it is the reconcile of a first sync
    sync = GmailSync(client, account, deps, budget)
    tallies = [Tally(ALL_MAIL), *(Tally(name) for name in gmail_labels(account))]
    compared: dict[str, GmailFolder] = {}
    for tally in tallies:
        with _guarded(tally):
            label = None if tally.name == ALL_MAIL else sync.labels.id_of(tally.name)
            if tally.name != ALL_MAIL and label is None:
                tally.error = "folder_not_found"
            else:
                compared[tally.name] = _gmail_compare(sync, tally, label)
    removed: set[str] = set()
    backfilled: set[str] = set()
    all_mail = compared.get(ALL_MAIL)
    if all_mail is not None:
        with _guarded(all_mail.tally):
            _repair_all_mail(sync, all_mail, removed, backfilled)
    labels = [folder for folder in compared.values() if folder.label is not None]
    guard = Tally("labels")
    with _guarded(guard):
        guard.complete = _repair_labels(sync, labels, removed, backfilled)
    for tally in tallies:
        folder = compared.get(tally.name)
        if folder is not None and folder.label is not None:
            if guard.error is not None and (folder.missing or folder.extra):
                tally.error = guard.error
            tally.complete = tally.complete and guard.complete
        _record_gmail(sync, tally, folder)
    return tallies


def _gmail_compare(sync: GmailSync, tally: Tally, label: str | None) -> GmailFolder:
    """List the folder's ids (every page of `messages.list`, `labelIds=label` for a label) and
    read its stored locations; set the tally's counts."""
    from mailbridge.sync.gmail import LOCATION_VALIDITY, gmail_uid

    account = sync.account
    listing = sync.client.list_messages(label_ids=(label,) if label else (), fields=GMAIL_LISTED)
    on_server = {gmail_uid(ref.id): ref.id for ref in listing.messages}
    stored = {
        int(loc["uid"]): str(loc["email_id"])
        for loc in sync.deps.emails.folder_locations(
            account.tenant_id, account.account_id, tally.name, LOCATION_VALIDITY
        )
    }
    missing = [on_server[uid] for uid in sorted(on_server) if uid not in stored]
    extra = sorted(uid for uid in stored if uid not in on_server)
    if label is None:
        # An anchor labelled SPAM or TRASH is still on the server, only not in the default listing.
        anchors = sync._anchors(f"{uid:x}" for uid in extra)
        extra = sorted(
            gmail_uid(gid)
            for gid, anchor in anchors.items()
            if not NOT_STORED_FOLDERS & set(anchor.get("labels") or ())
        )
    tally.server, tally.stored, tally.missing, tally.extra = (
        len(on_server),
        len(stored),
        len(missing),
        len(extra),
    )
    return GmailFolder(tally, label, stored, missing, extra)


def _repair_all_mail(sync: GmailSync, folder: GmailFolder, removed: set[str], backfilled: set[str]) -> None:
    """Remove the extra messages (every location of each), fetch and store the missing ones;
    their Gmail ids are added to `removed` and `backfilled`."""
    tally, budget = folder.tally, sync.budget
    for uid in folder.extra:
        if sync.remove(folder.stored[uid], uid):
            tally.repaired += 1
        removed.add(f"{uid:x}")
    start = 0
    missing = folder.missing
    while start < len(missing):
        if budget.exhausted():
            tally.complete = False
            break
        chunk = missing[start : start + budget.allowance()]
        stored, error = sync.fetch_and_store(chunk)
        budget.spent += stored
        backfilled.update(chunk[:stored])
        start += stored
        tally.repaired += stored
        folder.backfilled += stored
        if error is not None:
            raise error


def _repair_labels(
    sync: GmailSync, folders: Sequence[GmailFolder], removed: set[str], backfilled: set[str]
) -> bool:
    """Bring every message with a label gap (and not dealt with by All Mail) to its labels on
    the server, one call each: a message not stored at all is fetched and stored
    (`fetch_and_store`); a stored one is read with `messages.get?format=minimal` and its labels
    placed (`GmailSync.place`: its folder locations follow, those of labels it lost removed), or
    removed when Gmail no longer has it (404); a label location with no anchor is deleted.
    False when the run's budget stopped it (the rest is left to the continuation)."""
    from mailbridge.providers.gmail.errors import MessageNotFound
    from mailbridge.sync.gmail import LOCATION_VALIDITY, gmail_uid

    emails, tenant, budget = sync.deps.emails, sync.tenant, sync.budget
    stale: dict[str, set[str]] = {}  # Gmail id -> labels it is stored under but not listed in
    orphans: dict[str, list[tuple[str, str]]] = {}  # Gmail id -> (email id, location sk)
    wanted: list[str] = []
    for folder in folders:
        assert folder.label is not None
        wanted += folder.missing
        for uid in folder.extra:
            gid = f"{uid:x}"
            wanted.append(gid)
            stale.setdefault(gid, set()).add(folder.label)
            orphans.setdefault(gid, []).append(
                (
                    folder.stored[uid],
                    location_sk(sync.account.account_id, folder.tally.name, LOCATION_VALIDITY, uid),
                )
            )
    # Removed by All Mail: no location is left. Backfilled: stored with the labels Gmail gave, but
    # a label location the store kept from before (the anchor alone was lost) is not removed then.
    todo = [
        gid for gid in dict.fromkeys(wanted) if gid not in removed and (gid not in backfilled or gid in stale)
    ]
    anchors = sync._anchors(todo)
    for gid in todo:
        if budget.exhausted():
            return False
        anchor = anchors.get(gid)
        if anchor is None and gid in stale:
            for email_id, sk in orphans[gid]:  # a label location left without its message
                emails.delete_location(tenant, sk)
                emails.detach_location(tenant, email_id, sk)
            continue
        if anchor is None:
            _, error = sync.fetch_and_store([gid])
            if error is not None:
                raise error
        else:
            try:
                message = sync.client.get_message(gid, "minimal")
            except MessageNotFound:
                sync.remove(str(anchor["email_id"]), gmail_uid(gid))
            else:
                before = set(anchor.get("labels") or ()) | stale.get(gid, set())
                sync.place([(anchor, set(message.label_ids), before)])
        budget.spent += 1
    return True


def _record_gmail(sync: GmailSync, tally: Tally, folder: GmailFolder | None) -> None:
    """Save a Gmail folder's findings: a label's stored count and repairs are read back from the
    store (what its locations hold now against what the listing found)."""
    from mailbridge.sync.gmail import LOCATION_VALIDITY, gmail_uid

    account, deps = sync.account, sync.deps
    if folder is None:
        _record(tally, account, deps)
        return
    if folder.label is None:
        stored_now = tally.stored - len(folder.extra) + folder.backfilled
        _record(tally, account, deps, messages_on_server=tally.server, messages_stored=stored_now)
        return
    now = {
        int(loc["uid"])
        for loc in deps.emails.folder_locations(
            account.tenant_id, account.account_id, tally.name, LOCATION_VALIDITY
        )
    }
    tally.repaired = sum(1 for gid in folder.missing if gmail_uid(gid) in now) + sum(
        1 for uid in folder.extra if uid not in now
    )
    _record(tally, account, deps, messages_on_server=tally.server, messages_stored=len(now))


# ---------------------------------------------------------------------- Graph


def reconcile_graph(client: GraphClient, account: Account, deps: SyncDeps, budget: Budget) -> list[Tally]:
    from mailbridge.sync.graph import plan_folders

    tallies = []
    for folder in plan_folders(client, account):
        state = deps.accounts.folder_state(account.tenant_id, account.account_id, folder.name)
        if state.delta_link is None and state.last_synced_at is None:
            continue  # never synced: the sync stores it
        tally = Tally(folder.name)
        with _recorded_on_failure(tally, account, deps):
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
