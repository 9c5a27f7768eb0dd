"""Incremental, resumable IMAP sync of one account.

Per folder (INBOX, the SPECIAL-USE Sent folder, and the user's selection; a selected folder the
server does not have is recorded as `missing` with its reason and the others carry on):
  1. STATUS; a changed UIDVALIDITY drops the old generation's locations and restarts the folder
     (emails are keyed by Message-ID, so re-fetching duplicates nothing);
  2. flag changes and expunges of what is already stored: CHANGEDSINCE when the server has
     CONDSTORE, VANISHED when it has QRESYNC; without VANISHED, a UID diff when the message count
     says something went away, checked before the fetch and again after it (new mail can hide an
     expunge from the count);
  3. new mail in UID order, in batches bounded by count and by bytes (one huge message is a batch
     of its own), each ingested as a batch (`mailbridge.sync.ingest`); after each batch the new
     emails are announced (PutEvents, 10 a call) and only then the cursor moves (conditional,
     forward only), so a crash never skips an announcement. The next batch is fetched and
     normalized in a worker thread while the current one is stored, at most one batch ahead
     (`_fetch_and_store`). A flag change that changes an email's read or flagged state is
     announced as `email.updated` (`apply_flag_updates`).
Work stops when the budget is spent (messages, or its deadline: no batch starts after it); the
caller queues a continuation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import ProviderError
from mailbridge.models.account import Account, FolderPresence, FolderState, is_inbox
from mailbridge.observability import logger
from mailbridge.providers.imap.models import FetchBatch, FlagChanges, FolderStatus
from mailbridge.providers.imap.protocol import MailFolderSource
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.keys import location_sk
from mailbridge.sync.ingest import Ingested, Mailbox, PreparedBatch, flag_state, ingest_batch, prepare_batch

INBOX = "INBOX"


@dataclass
class Budget:
    """How much one invocation may do before handing over to a continuation.

    `deadline` (a `time.monotonic()` instant): no batch starts after it. `session_deadline`: the
    IMAP session is cut off then, whatever the server is doing (None: no cut-off), so a batch
    that started in time cannot hold the run past the Lambda timeout either. A batch holds at
    most `batch_size` messages and, past its first message, `batch_bytes` bytes of them.
    """

    max_messages: int = 1000
    deadline: float = float("inf")  # time.monotonic() value
    batch_size: int = 50
    batch_bytes: int | None = None
    session_deadline: float | None = None
    spent: int = 0

    def exhausted(self) -> bool:
        return self.spent >= self.max_messages or time.monotonic() >= self.deadline

    def cut_off(self) -> bool:
        """The session deadline has passed: whatever failed now failed because it was cut off."""
        return self.session_deadline is not None and time.monotonic() >= self.session_deadline

    def allowance(self) -> int:
        return max(1, min(self.batch_size, self.max_messages - self.spent))


@dataclass
class FolderReport:
    name: str
    stored: int = 0
    quarantined: int = 0
    flag_updates: int = 0
    expunged: int = 0
    complete: bool = True


@dataclass
class SyncReport:
    folders: list[FolderReport] = field(default_factory=list)
    cut_off: bool = False  # the session deadline ended the run: a continuation carries on

    @property
    def complete(self) -> bool:
        return not self.cut_off and all(f.complete for f in self.folders)

    @property
    def stored(self) -> int:
        return sum(f.stored for f in self.folders)


@dataclass
class SyncDeps:
    accounts: AccountStore
    emails: EmailStore
    blobs: BlobStore
    publisher: EventPublisher
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


FOLDER_NOT_FOUND = "folder_not_found"
FOLDER_NOT_SELECTABLE = "folder_not_selectable"


@dataclass
class FolderPlan:
    wanted: list[tuple[str, bool]]  # (folder, is_sent) in sync order
    missing: dict[str, str]  # selected folder -> why it cannot be synced


def plan_folders(source: MailFolderSource, account: Account) -> FolderPlan:
    """INBOX, the Sent folder, then the user's selection; INBOX (any case, RFC 3501 section 5.1)
    or the Sent folder selected again is synced once. A selected folder the server does not list
    is `folder_not_found`, one it lists as \\Noselect is `folder_not_selectable`."""
    listed = {f.name: f for f in source.list_folders()}
    wanted: list[tuple[str, bool]] = [(INBOX, False)]
    sent = source.sent_folder()
    if sent is not None and sent.name != INBOX:
        wanted.append((sent.name, True))
    missing: dict[str, str] = {}
    for name in account.folders:
        if is_inbox(name) or any(name == w for w, _ in wanted):
            continue
        folder = listed.get(name)
        if folder is None:
            missing[name] = FOLDER_NOT_FOUND
        elif not folder.selectable:
            missing[name] = FOLDER_NOT_SELECTABLE
        else:
            wanted.append((name, False))
    return FolderPlan(wanted, missing)


def sync_account(source: MailFolderSource, account: Account, deps: SyncDeps, budget: Budget) -> SyncReport:
    report = SyncReport()
    plan = plan_folders(source, account)
    for name, reason in plan.missing.items():
        mark_missing(account, name, reason, deps)
    for name, is_sent in plan.wanted:
        if budget.exhausted():
            report.folders.append(FolderReport(name=name, complete=False))
            continue
        mailbox = Mailbox(account.tenant_id, account.account_id, account.address, name, 0, is_sent)
        try:
            report.folders.append(sync_folder(source, mailbox, deps, budget))
        except ProviderError as exc:
            if exc.code != FOLDER_NOT_FOUND or name == INBOX:
                raise
            # Deleted on the server since the LIST: the other folders carry on.
            mark_missing(account, name, FOLDER_NOT_FOUND, deps)
            report.folders.append(FolderReport(name=name))
    return report


def mark_missing(account: Account, name: str, reason: str, deps: SyncDeps) -> None:
    """Show in the account status that a selected folder is not synced, and why (its cursor and
    counts stay: if the folder comes back with the same UIDVALIDITY, the sync resumes)."""
    state = deps.accounts.folder_state(account.tenant_id, account.account_id, name)
    if state.state is FolderPresence.MISSING and state.reason == reason:
        return
    missing = state.model_copy(update={"state": FolderPresence.MISSING, "reason": reason})
    deps.accounts.save_folder_state(account.tenant_id, account.account_id, missing)


def sync_folder(source: MailFolderSource, mailbox: Mailbox, deps: SyncDeps, budget: Budget) -> FolderReport:
    tenant, account_id, name = mailbox.tenant_id, mailbox.account_id, mailbox.folder
    report = FolderReport(name=name)
    status = source.folder_status(name)
    previous = deps.accounts.folder_state(tenant, account_id, name)
    state = previous.model_copy(update={"state": FolderPresence.ACTIVE, "reason": None})

    if previous.uidvalidity is not None and previous.uidvalidity != status.uidvalidity:
        logger.info(
            "uidvalidity changed; re-syncing folder", extra={"folder_uidvalidity": status.uidvalidity}
        )
        for loc in deps.emails.folder_locations(tenant, account_id, name, previous.uidvalidity):
            deps.emails.delete_location(tenant, str(loc["sk"]))
            deps.emails.detach_location(tenant, str(loc["email_id"]), str(loc["sk"]))
        state = FolderState(name=name)
    if state.uidvalidity is None:
        state = FolderState(name=name, uidvalidity=status.uidvalidity)
        deps.accounts.save_folder_state(tenant, account_id, state)

    mailbox = Mailbox(tenant, account_id, mailbox.address, name, status.uidvalidity, mailbox.is_sent_folder)

    # Whether expunges still have to be found by the message count after the fetch (no VANISHED).
    count_check = False
    if state.last_uid > 0:
        count_check = _apply_changes(
            source, mailbox, state, status.highestmodseq, status.messages, deps, report
        )
    late = _fetch_and_store(source, mailbox, state, status, deps, budget, report)

    if count_check and report.complete and state.messages_stored - late > status.messages:
        # Everything below UIDNEXT is stored, yet more is stored than the server counted at
        # STATUS: an expunge that new mail hid from the count before the fetch.
        _expunge_all(mailbox, _uid_diff(source, mailbox, state, deps), state, deps, report)
    if report.complete:
        # Safe to remember: changes after STATUS have higher modseqs and are fetched next time.
        state.highestmodseq = status.highestmodseq
    state.messages_on_server = status.messages
    state.last_synced_at = deps.now()
    deps.accounts.save_folder_state(tenant, account_id, state)
    return report


def _fetch_and_store(
    source: MailFolderSource,
    mailbox: Mailbox,
    state: FolderState,
    status: FolderStatus,
    deps: SyncDeps,
    budget: Budget,
    report: FolderReport,
) -> int:
    """Fetch and store the folder's new mail, batch after batch, until it is all stored or the
    budget is spent (`report.complete` False then). Returns how many stored messages arrived
    after STATUS (UID >= UIDNEXT: not in its count).

    The next batch is fetched while the current one is stored: as soon as batch N is read (its
    last UID is the next batch's lower bound), one worker thread fetches batch N+1 on the same
    IMAP session, which nothing else uses meanwhile, and normalizes it (`prepare_batch`: CPU
    only, nothing read or written, so it does not depend on N being stored), while this thread
    writes N to S3 and DynamoDB, announces it and only then moves the cursor past it: the
    normalizing runs while this thread waits for AWS's answers. A batch fetched after the
    deadline, or under another UIDVALIDITY, is not normalized there: either is left for a later
    run. At most one fetch runs ahead, so at most two batches are held. The fetch of N+1 starts
    only when the budget would let the loop start it after N (`_may_fetch_after`); a fetched
    batch that finds the budget spent once N is stored (its deadline passed meanwhile) is
    dropped unread, as the loop would not have fetched it: the cursor still points before it,
    so the continuation fetches it again. Whatever happens to N, the worker is waited for
    before this returns or raises, so the session is never used by two threads at once; a
    fetch that failed raises when its batch is taken, after N is durable and its cursor saved.
    """
    tenant, account_id, name = mailbox.tenant_id, mailbox.account_id, mailbox.folder
    late = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap-fetch") as worker:
        ahead: Future[tuple[FetchBatch, PreparedBatch | None]] | None = None
        while True:
            if budget.exhausted():
                report.complete = False
                break
            prepared: PreparedBatch | None = None
            if ahead is None:
                batch = source.fetch_new(
                    name, state.last_uid, budget.allowance(), max_bytes=budget.batch_bytes
                )
            else:
                (batch, prepared), ahead = ahead.result(), None
            if batch.uidvalidity != status.uidvalidity:
                # Renumbered between STATUS and FETCH: leave it for the next run, which resets cleanly.
                report.complete = False
                break
            if batch.has_more and _may_fetch_after(budget, len(batch.messages)):
                after = batch.last_uid if batch.last_uid is not None else state.last_uid
                limit = max(
                    1, min(budget.batch_size, budget.max_messages - budget.spent - len(batch.messages))
                )
                ahead = worker.submit(_fetch_ahead, source, mailbox, after, limit, budget)
            _store_batch(batch, mailbox, state, deps, report, prepared)
            late += sum(1 for m in batch.messages if m.uid >= status.uidnext)
            budget.spent += len(batch.messages)
            if batch.last_uid is not None:
                state.last_uid = batch.last_uid
            state.last_synced_at = deps.now()
            state.messages_on_server = status.messages
            deps.accounts.save_folder_state(tenant, account_id, state)
            if not batch.has_more:
                break
    return late


def _fetch_ahead(
    source: MailFolderSource, mailbox: Mailbox, after: int, limit: int, budget: Budget
) -> tuple[FetchBatch, PreparedBatch | None]:
    """The worker's part of `_fetch_and_store`: the batch after UID `after`, normalized unless it
    came after the deadline (it is dropped then) or under another UIDVALIDITY (left for the next
    run)."""
    batch = source.fetch_new(mailbox.folder, after, limit, max_bytes=budget.batch_bytes)
    if batch.uidvalidity != mailbox.uidvalidity or time.monotonic() >= budget.deadline:
        return batch, None
    return batch, prepare_batch(mailbox, batch.messages)


def _may_fetch_after(budget: Budget, batch_messages: int) -> bool:
    """Whether the budget would still let a batch start once `batch_messages` more are spent (the
    deadline as of now: it is checked again before the fetched batch is stored)."""
    return budget.spent + batch_messages < budget.max_messages and time.monotonic() < budget.deadline


def _store_batch(
    batch: FetchBatch,
    mailbox: Mailbox,
    state: FolderState,
    deps: SyncDeps,
    report: FolderReport,
    prepared: PreparedBatch | None = None,
) -> None:
    results = ingest_batch(mailbox, batch.messages, deps.emails, deps.blobs, prepared=prepared)
    for result in results:
        if result.quarantined:
            report.quarantined += 1
            continue
        # Everything past the cursor is new to this folder's count, even when its location was
        # already written (by the outbox filing a sent copy, or by a crashed earlier attempt whose
        # state, saved with the cursor after the batch, was never stored).
        state.messages_stored += 1
        if result.new_location:
            report.stored += 1
    announce_ingested(mailbox.tenant_id, mailbox.account_id, results, deps)


def announce_ingested(tenant_id: str, account_id: str, results: list[Ingested], deps: SyncDeps) -> None:
    """Announce what a batch stored that is not announced yet, from what the ingest read."""
    pending: dict[str, dict[str, Any]] = {}
    for result in results:
        if result.needs_announcement and result.email_id and result.announcement is not None:
            pending.setdefault(result.email_id, result.announcement)
    _publish(tenant_id, account_id, pending, deps)


def announce(tenant_id: str, account_id: str, email_ids: list[str], deps: SyncDeps) -> None:
    """Publish `email.received` (`email.sent` for outbound mail) once per email; consumers
    dedupe on the idempotency key anyway."""
    if not email_ids:
        return
    unique = list(dict.fromkeys(email_ids))
    items = deps.emails.batch_get_emails(tenant_id, unique)
    pending = {e: items[e] for e in unique if e in items and not items[e].get("announced")}
    _publish(tenant_id, account_id, pending, deps)


def _publish(tenant_id: str, account_id: str, pending: dict[str, dict[str, Any]], deps: SyncDeps) -> None:
    """Events in PutEvents calls of 10 (`EventPublisher`), then `announced` set on the emails in
    transactions of 100: a crash in between announces again on replay, never not at all."""
    if not pending:
        return
    events = []
    for email_id, item in pending.items():
        detail_type = "email.sent" if item.get("direction") == "outbound" else "email.received"
        events.append(
            DomainEvent(
                detail_type=detail_type,
                tenant_id=tenant_id,
                idempotency_key=f"{detail_type}:{email_id}",
                data={
                    "email_id": email_id,
                    "account_id": account_id,
                    "thread_id": item.get("thread_id"),
                    "message_id": item.get("message_id"),
                    "direction": item.get("direction"),
                    "date": item.get("date"),
                    **_automation_chain(item),
                },
            )
        )
    deps.publisher.publish(events)
    deps.emails.mark_announced(tenant_id, list(pending))


EMAIL_UPDATED = "email.updated"
UPDATED_STATE = ("read", "flagged")
"""What a server's flag change may change of an email, as `PATCH /emails/{id}` names it."""
MOVED_STATE = ("archived", "trashed")
"""What a server's folder change may change of an email, as `PATCH /emails/{id}` names it."""


@dataclass(frozen=True)
class FlagUpdate:
    """A stored location (`sk`) of `email_id` whose flags the server changed to `flags`. `change`
    names the change, the same when the sync replays it and different for a later one (IMAP: the
    MODSEQ, RFC 7162 section 3.1.1; Graph: the delta link that returned it)."""

    sk: str
    email_id: str
    flags: tuple[str, ...]
    modseq: int | None
    change: str


def apply_flag_updates(tenant_id: str, account_id: str, updates: list[FlagUpdate], deps: SyncDeps) -> None:
    """Store the server's flag changes of stored mail and announce `email.updated` for each email
    whose read or flagged state they change (`announce_updates`); the events go out before the
    locations and emails are written. Requests: one BatchGetItem per 100 emails, then per
    location two UpdateItem."""
    if not updates:
        return
    found = announce_updates(tenant_id, account_id, [(u.email_id, u.flags, u.change) for u in updates], deps)
    for update in updates:
        deps.emails.set_location_flags(tenant_id, update.sk, update.flags, update.modseq)
        if update.email_id in found:
            deps.emails.update_email(tenant_id, update.email_id, **flag_state(update.flags))


def announce_updates(
    tenant_id: str,
    account_id: str,
    updates: list[tuple[str, tuple[str, ...], str]],
    deps: SyncDeps,
    moves: dict[str, dict[str, bool]] | None = None,
) -> set[str]:
    """Announce `email.updated` for each email of `updates` (email id, its flags on the server
    now, the change's name: see `FlagUpdate`) whose read or flagged state differs from its stored
    item, with the detail `PATCH /emails/{id}` announces (`data = {email_id, account_id,
    thread_id, changes}`, `changes` holding only what changed). `moves` (by email id) holds the
    `archived`/`trashed` state a folder change on the server gave an email of `updates`; each is
    announced when it differs from the item's (absent: false; `PATCH /emails/{id}` stores what it
    asked for, so the server's echo of it is not announced again). Returns the ids of the emails
    that exist. Call it before writing the new state (the caller writes the moves too).

    Comparing with the email item, a change the API made and pushed to the server, seen again
    here, is not announced twice, and an email in two folders is announced once. The caller
    writes after the events went out (PutEvents, 10 a call): a failure in between finds the same
    changes on the replay (its cursor did not move) and announces them again under the same
    `idempotency_key` (`email.updated:{email_id}:{change}`), which consumers drop; a replay after
    the writes finds nothing changed and announces nothing. One BatchGetItem per 100 emails."""
    if not updates:
        return set()
    items = deps.emails.batch_get_emails(
        tenant_id,
        [email_id for email_id, _, _ in updates],
        projection=(*UPDATED_STATE, *MOVED_STATE, "thread_id", "deleted"),
    )
    moves = moves or {}
    latest = {email_id: (flags, change) for email_id, flags, change in updates}  # the last is the state now
    events = []
    for email_id, (flags, change) in latest.items():
        item = items.get(email_id)
        if item is None or item.get("deleted"):
            continue
        state = flag_state(flags)
        changes = {name: state[name] for name in UPDATED_STATE if bool(item.get(name)) != state[name]}
        changes |= {name: on for name, on in moves.get(email_id, {}).items() if bool(item.get(name)) != on}
        if changes:
            events.append(
                DomainEvent(
                    detail_type=EMAIL_UPDATED,
                    tenant_id=tenant_id,
                    idempotency_key=f"{EMAIL_UPDATED}:{email_id}:{change}",
                    data={
                        "email_id": email_id,
                        "account_id": account_id,
                        "thread_id": item.get("thread_id"),
                        "changes": changes,
                    },
                )
            )
    if events:
        deps.publisher.publish(events)
    return set(items)


def _automation_chain(item: dict[str, Any]) -> dict[str, Any]:
    """`{"automation": {depth, rule_id, run_id}}` for mail an automation run sent (the outbox keeps
    the run's chain on the email), so the rules its `email.sent` triggers see how deep the chain
    is (`mailbridge.automations.execution`); nothing for other mail."""
    chain = item.get("automation")
    if not isinstance(chain, dict) or "depth" not in chain:
        return {}
    return {
        "automation": {
            "depth": int(chain["depth"]),
            "rule_id": str(chain.get("rule_id", "")),
            "run_id": str(chain.get("run_id", "")),
        }
    }


def _apply_changes(
    source: MailFolderSource,
    mailbox: Mailbox,
    state: FolderState,
    server_modseq: int | None,
    server_messages: int,
    deps: SyncDeps,
    report: FolderReport,
) -> bool:
    """Apply flag changes and expunges of stored mail. Returns True when expunges are found by
    the message count (no VANISHED) and a UID diff was not run yet: the caller checks the count
    again once the new mail is stored.

    An unmoved HIGHESTMODSEQ means no flag changed (RFC 7162 section 3.1), so nothing is asked
    for; it is no proof that nothing was expunged: only QRESYNC reports expunges (VANISHED,
    section 3.2.10), and a CONDSTORE-only server need not raise HIGHESTMODSEQ for them. So expunges
    are left to the count check (free: STATUS gave the count) as on servers without CONDSTORE.
    """
    changes: FlagChanges | None = None
    if state.highestmodseq is not None and server_modseq is not None and server_modseq > state.highestmodseq:
        changes = source.fetch_flag_changes(mailbox.folder, state.highestmodseq)
    if changes is not None:
        updates = []
        for change in changes.changed:
            if change.uid > state.last_uid:
                continue  # not stored yet: the fetch below brings it with its flags
            update = _flag_update(mailbox, change.uid, change.flags, change.modseq, deps)
            if update is not None:
                updates.append(update)
        apply_flag_updates(mailbox.tenant_id, mailbox.account_id, updates, deps)
        report.flag_updates += len(updates)
    if changes is not None and changes.vanished is not None:
        _expunge_all(mailbox, [uid for uid in changes.vanished if uid <= state.last_uid], state, deps, report)
        return False
    if server_messages < state.messages_stored:
        # No VANISHED: diff UIDs, a full listing on both sides, only when the count says
        # something went away.
        _expunge_all(mailbox, _uid_diff(source, mailbox, state, deps), state, deps, report)
        return False
    return True


def _expunge_all(
    mailbox: Mailbox, vanished: list[int], state: FolderState, deps: SyncDeps, report: FolderReport
) -> None:
    for uid in vanished:
        if _expunge(mailbox, uid, deps):
            report.expunged += 1
            state.messages_stored = max(0, state.messages_stored - 1)


def _uid_diff(source: MailFolderSource, mailbox: Mailbox, state: FolderState, deps: SyncDeps) -> list[int]:
    on_server = set(source.list_uids(mailbox.folder))
    stored = deps.emails.folder_locations(
        mailbox.tenant_id, mailbox.account_id, mailbox.folder, mailbox.uidvalidity
    )
    return [
        int(loc["uid"])
        for loc in stored
        if int(loc["uid"]) not in on_server and int(loc["uid"]) <= state.last_uid
    ]


def _flag_update(
    mailbox: Mailbox, uid: int, flags: tuple[str, ...], modseq: int | None, deps: SyncDeps
) -> FlagUpdate | None:
    """The update of a stored location whose flags differ from the server's (None: not stored, or
    the same flags)."""
    sk = location_sk(mailbox.account_id, mailbox.folder, mailbox.uidvalidity, uid)
    location = deps.emails.get_location(mailbox.tenant_id, sk)
    if location is None:
        return None
    if sorted(location.get("flags") or []) == sorted(flags):
        return None
    change = f"{sk}#{modseq}" if modseq is not None else f"{sk}#{','.join(sorted(flags))}"
    return FlagUpdate(sk, str(location["email_id"]), tuple(flags), modseq, change)


def _expunge(mailbox: Mailbox, uid: int, deps: SyncDeps) -> bool:
    sk = location_sk(mailbox.account_id, mailbox.folder, mailbox.uidvalidity, uid)
    location = deps.emails.get_location(mailbox.tenant_id, sk)
    if location is None:
        return False
    deps.emails.delete_location(mailbox.tenant_id, sk)
    deps.emails.detach_location(mailbox.tenant_id, str(location["email_id"]), sk)
    return True
