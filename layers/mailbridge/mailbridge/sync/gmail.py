"""Gmail sync of one account, stored through the shared ingest (`mailbridge.sync.ingest`).

Where a Gmail message lives (the `Mailbox`/location model the IMAP engine uses):
  * every message has one anchor location in the folder `[Gmail]/All Mail` (the name Gmail's own
    IMAP gives the folder that holds every message), keyed by its Gmail message id: the id's 16
    hex digits read as the location's `uid` (Gmail ids are 64-bit numbers; they never change, so
    every Gmail location has one `uidvalidity`): `providers/gmail/locations.py`, the contract
    the write-back and the outbox read too. The anchor is what `ingest_batch` writes; it
    also keeps the Gmail `id`, `threadId` and `labelIds` (`provider_id`, `provider_thread_id`,
    `labels`) for write-back and send;
  * every label that is a folder (INBOX, SENT, TRASH, SPAM, DRAFT, and user labels under their
    names) adds a location of the same message in that folder, so folder listings and the
    email's `folders` work as they do for IMAP. UNREAD and STARRED are flags, not folders
    (\\Seen when UNREAD is absent, \\Flagged when STARRED is present); IMPORTANT, CATEGORY_* and
    CHAT are neither;
  * the Gmail `threadId` is the provider thread id: a message whose relatives (In-Reply-To,
    References) are not known yet joins the thread named by it (`sync.threads.assign_thread`).

Runs (Gmail API guide "Synchronize clients with Gmail", developers.google.com/workspace/gmail/api/
guides/sync):
  * full sync (first run, or after `history.list` answered 404 for a stale `startHistoryId`):
    `getProfile`'s historyId is taken *before* listing, `messages.list` (every page), then the ids
    in ascending order, in batches: anchors already stored are skipped (a resync stores nothing
    twice and fetches nothing it has), the rest by `get_raw_many` (bounded concurrency), stored
    by `ingest_batch`, announced, and only then the batch's last id is saved as the cursor
    (`FolderState.last_uid`, forward only). When every batch is stored, anchors no longer listed
    are removed (deleted while history could not say so) and the historyId taken first becomes
    the cursor (`FolderState.history_id`);
  * incremental: `history.list` from the cursor, every page, no ceiling on the gap;
    `messageAdded` -> fetched and ingested, `messageDeleted` -> the message's locations in this
    mailbox removed (the email is marked deleted when no mailbox holds it any more),
    `labelAdded`/`labelRemoved` -> applied in history order to the stored labels, then flags and
    folder locations follow; a read or flagged state that changes, and an archive or trash
    (INBOX / TRASH removed or added: `moved_state`) that differs from the email's stored
    `archived`/`trashed` (which `PATCH /emails/{id}` sets, so its echo is not announced twice),
    is announced as `email.updated` (`mailbridge.sync.engine.announce_updates`) before the labels
    (and the new `archived`/`trashed`) are stored.
    The cursor moves to the answer's historyId once all of it is stored; a run cut short keeps
    the old cursor and the next one reads the history again (stored ids are skipped, label
    changes are set operations).
Work stops when the budget is spent (no batch starts after its deadline); the caller queues a
continuation. Errors are the adapter's (`providers/gmail/errors.py`); the caller decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbridge.errors import ProviderError
from mailbridge.models.account import Account, FolderState
from mailbridge.observability import logger
from mailbridge.providers.gmail import locations
from mailbridge.providers.gmail.client import GmailClient
from mailbridge.providers.gmail.errors import HistoryExpired
from mailbridge.providers.gmail.models import History, RawMessage
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.store.emails import EmailWrites
from mailbridge.store.keys import location_sk
from mailbridge.sync.engine import Budget, SyncDeps, announce_ingested, announce_updates
from mailbridge.sync.ingest import Mailbox, flag_state, ingest_batch

ALL_MAIL = locations.FOLDER
LOCATION_VALIDITY = locations.UIDVALIDITY
SEEN, FLAGGED, DRAFT_FLAG = "\\Seen", "\\Flagged", "\\Draft"
UNREAD, STARRED, SENT, DRAFT = "UNREAD", "STARRED", "SENT", "DRAFT"
INBOX, TRASH = "INBOX", "TRASH"
SYSTEM_FOLDERS = frozenset({"INBOX", "SENT", "TRASH", "SPAM", "DRAFT"})
"""System labels that are folders, named by their label id (Gmail API "Manage labels" guide)."""


def gmail_uid(message_id: str) -> int:
    """A Gmail message id (16 hex digits, a 64-bit number) as a location `uid`; `ProviderError`
    `protocol_error` when Gmail names a message with anything else."""
    try:
        return locations.uid_for(message_id)
    except ValueError:
        raise ProviderError(
            "Gmail named a message with an id that is not hex", code="protocol_error"
        ) from None


def flags_of(labels: Iterable[str]) -> tuple[str, ...]:
    """IMAP-style flags from Gmail labels: \\Seen unless UNREAD, \\Flagged for STARRED, \\Draft."""
    present = set(labels)
    flags = [] if UNREAD in present else [SEEN]
    if STARRED in present:
        flags.append(FLAGGED)
    if DRAFT in present:
        flags.append(DRAFT_FLAG)
    return tuple(flags)


def moved_state(before: set[str], after: set[str]) -> dict[str, bool]:
    """The `archived`/`trashed` change (as `PATCH /emails/{id}` names it) of a label change:
    TRASH added or removed -> `trashed` (Gmail's trash also takes INBOX away, and untrash puts it
    back: not an archive); otherwise INBOX removed or added -> `archived` true or false (Gmail
    Help "Archive or mute Gmail messages": archiving removes the INBOX label); else nothing."""
    if (TRASH in before) != (TRASH in after):
        return {"trashed": TRASH in after}
    if (INBOX in before) != (INBOX in after):
        return {"archived": INBOX not in after}
    return {}


@dataclass
class GmailReport:
    stored: int = 0
    deleted: int = 0
    relabeled: int = 0
    full_sync: bool = False
    complete: bool = True


class Labels:
    """Label id -> folder name, read with `labels.list` when a user label is first met (and again
    when one is unknown: it was created since)."""

    def __init__(self, client: GmailClient) -> None:
        self.client = client
        self.names: dict[str, str] | None = None

    def folders(self, labels: Iterable[str]) -> set[str]:
        folders: set[str] = set()
        for label in labels:
            if label in SYSTEM_FOLDERS:
                folders.add(label)
            elif label.startswith("Label_"):
                name = self._name(label)
                if name is not None:
                    folders.add(name)
        return folders

    def id_of(self, folder: str) -> str | None:
        """The label id of a folder name (`messages.list?labelIds=` takes ids, never names): a
        system folder is its own id, a user label is looked up by its exact name (`labels.list`,
        read again when it is not known); None when the mailbox has no such label."""
        if folder in SYSTEM_FOLDERS:
            return folder
        found = self._id_named(folder)
        if found is None:  # not read yet, or created since
            self.names = {item.id: item.name for item in self.client.list_labels() if item.type == "user"}
            found = self._id_named(folder)
        return found

    def _id_named(self, folder: str) -> str | None:
        return next((i for i, name in (self.names or {}).items() if name == folder), None)

    def _name(self, label: str) -> str | None:
        if self.names is None or label not in self.names:
            self.names = {item.id: item.name for item in self.client.list_labels() if item.type == "user"}
        return self.names.get(label)


class GmailSync:
    """One run over one account (see the module docstring)."""

    def __init__(self, client: GmailClient, account: Account, deps: SyncDeps, budget: Budget) -> None:
        self.client = client
        self.account = account
        self.deps = deps
        self.budget = budget
        self.labels = Labels(client)
        self.report = GmailReport()

    @property
    def tenant(self) -> str:
        return self.account.tenant_id

    def run(self) -> GmailReport:
        accounts = self.deps.accounts
        state = accounts.folder_state(self.tenant, self.account.account_id, ALL_MAIL)
        if state.history_id is None:
            self.full_sync(state)
            if not self.report.complete:
                return self.report
        try:
            self.incremental(state)
        except HistoryExpired:
            logger.info("gmail history expired; full resync")
            # A new cursor generation: the one legitimate reset of `last_uid` (forward only within one).
            state = FolderState(name=ALL_MAIL, uidvalidity=(state.uidvalidity or 0) + 1)
            self._save(state)
            self.full_sync(state)
            if self.report.complete:
                self.incremental(state)
        return self.report

    # ------------------------------------------------------------------ full sync
    def full_sync(self, state: FolderState) -> None:
        self.report.full_sync = True
        if state.uidvalidity is None:
            state.uidvalidity = 1
        if state.pending_history_id is None:
            # Before listing: whatever changes after it is in the history from this id.
            state.pending_history_id = self.client.get_profile().history_id
            self._save(state)
        listing = self.client.list_messages()
        ids = sorted({ref.id for ref in listing.messages}, key=gmail_uid)
        state.messages_on_server = len(ids)
        todo = [i for i in ids if gmail_uid(i) > state.last_uid]
        start = 0
        while start < len(todo):
            if self.budget.exhausted():
                self.report.complete = False
                self._save(state)
                return
            chunk = todo[start : start + self.budget.allowance()]
            done, error = self.fetch_and_store(chunk)
            self.budget.spent += done
            start += done
            if done:
                state.last_uid = gmail_uid(chunk[done - 1])
                state.messages_stored += done
                state.last_synced_at = self.deps.now()
                self._save(state)
            if error is not None:
                raise error
        listed = {gmail_uid(i) for i in ids}
        top = max(listed, default=0)
        for location in list(
            self.deps.emails.folder_locations(
                self.tenant, self.account.account_id, ALL_MAIL, LOCATION_VALIDITY
            )
        ):
            uid = int(location["uid"])
            if uid <= top and uid not in listed and self.remove(str(location["email_id"]), uid):
                self.report.deleted += 1
        state.history_id = state.pending_history_id
        state.pending_history_id = None
        state.last_synced_at = self.deps.now()
        self._save(state)

    # ------------------------------------------------------------------ incremental
    def incremental(self, state: FolderState) -> None:
        assert state.history_id is not None
        history = self.client.list_history(state.history_id)
        added, deleted, changes, last_record = _changes(history)
        new = [i for i in added if i not in deleted]
        start = 0
        while start < len(new):
            if self.budget.exhausted():
                self.report.complete = False  # the cursor stays: the next run reads this history again
                return
            chunk = new[start : start + self.budget.allowance()]
            done, error = self.fetch_and_store(chunk)
            self.budget.spent += done
            start += done
            if error is not None:
                raise error
        for message_id in deleted:
            if self.remove_message(message_id):
                self.report.deleted += 1
        relabel: list[tuple[dict[str, Any], set[str], set[str] | None]] = []
        updates: list[tuple[str, tuple[str, ...], str]] = []
        moves: dict[str, dict[str, bool]] = {}
        for message_id, anchor in self._anchors([i for i in changes if i not in deleted]).items():
            before = set(anchor.get("labels") or ())
            labels = set(before)
            for add, remove in changes[message_id]:
                labels = (labels | add) - remove
            if labels != before:
                relabel.append((anchor, labels, before))
                change = f"{message_id}#{last_record[message_id]}"
                updates.append((str(anchor["email_id"]), flags_of(labels), change))
                if moved := moved_state(before, labels):
                    moves[str(anchor["email_id"])] = moved
        # Before the new labels are stored: a run cut short after it announces them again.
        announce_updates(self.tenant, self.account.account_id, updates, self.deps, moves)
        self.place(relabel, moves)
        self.report.relabeled += len(relabel)
        state.history_id = max(history.history_id, state.history_id)
        state.last_synced_at = self.deps.now()
        self._save(state)

    # ------------------------------------------------------------------ storing
    def fetch_and_store(self, ids: Sequence[str]) -> tuple[int, ProviderError | None]:
        """Store the messages of `ids` not stored yet; how many of `ids` (a prefix) are done, and
        the error that stopped the fetch after them, if any."""
        stored = self._anchors(ids)
        wanted = [i for i in ids if i not in stored]
        fetched = self.client.get_raw_many(wanted)
        if fetched.messages:
            self.store(fetched.messages)
        have = set(stored) | {m.id for m in fetched.messages} | set(fetched.missing)
        done = 0
        for message_id in ids:
            if message_id not in have:
                break
            done += 1
        return done, fetched.error

    def store(self, messages: Sequence[RawMessage]) -> None:
        """Ingest a fetch batch into the anchor folder (SENT mail as the Sent folder, so it is
        outbound), add the label locations, announce; the caller then saves the cursor."""
        account = self.account
        for is_sent in (False, True):
            group = [m for m in messages if (SENT in m.label_ids) == is_sent]
            if not group:
                continue
            mailbox = Mailbox(
                self.tenant, account.account_id, account.address, ALL_MAIL, LOCATION_VALIDITY, is_sent
            )
            batch = [_fetched(m, self.deps.now()) for m in group]
            results = ingest_batch(mailbox, batch, self.deps.emails, self.deps.blobs)
            self.report.stored += sum(1 for r in results if r.new_location)
            anchors = self._anchors([m.id for m, r in zip(group, results, strict=True) if r.email_id])
            self.place([(anchor, set(anchor.get("labels") or ()), None) for anchor in anchors.values()])
            announce_ingested(self.tenant, account.account_id, results, self.deps)

    def place(
        self,
        changes: Sequence[tuple[dict[str, Any], set[str], set[str] | None]],
        moves: dict[str, dict[str, bool]] | None = None,
    ) -> None:
        """Give each message (anchor, labels, labels before or None when just stored) its labels:
        the anchor and one location per folder label carry them and their flags (BatchWriteItem),
        the email gains the locations and takes the flags and its `moves` (`moved_state`, by
        email id) (transactions of 100), then folder locations of labels that are gone are
        removed."""
        moves = moves or {}
        account_id = self.account.account_id
        items: list[tuple[str, dict[str, Any]]] = []
        writes = EmailWrites(self.tenant)
        gone: list[tuple[str, str]] = []
        for anchor, labels, before in changes:
            uid, email_id = int(anchor["uid"]), str(anchor["email_id"])
            flags = flags_of(labels)
            base = {k: v for k, v in anchor.items() if k not in ("pk", "sk")}
            base |= {"labels": sorted(labels), "flags": sorted(flags)}
            folders = self.labels.folders(labels)
            mine = [(str(anchor["sk"]), base)]
            mine += [
                (location_sk(account_id, folder, LOCATION_VALIDITY, uid), base | {"folder": folder})
                for folder in sorted(folders)
            ]
            items += mine
            writes.attach(email_id, {sk for sk, _ in mine}, flag_state(flags) | moves.get(email_id, {}))
            if before is not None:
                gone += [
                    (email_id, location_sk(account_id, folder, LOCATION_VALIDITY, uid))
                    for folder in sorted(self.labels.folders(before) - folders)
                ]
        if not items:
            return
        self.deps.emails.put_items(self.tenant, items)
        self.deps.emails.write(writes)
        for email_id, sk in gone:
            self.deps.emails.delete_location(self.tenant, sk)
            self.deps.emails.detach_location(self.tenant, email_id, sk)

    def remove_message(self, message_id: str) -> bool:
        anchor = self._anchors([message_id]).get(message_id)
        return anchor is not None and self.remove(str(anchor["email_id"]), int(anchor["uid"]))

    def remove(self, email_id: str, uid: int) -> bool:
        """Remove every location of the message in this mailbox (the anchor last); True when the
        anchor was there. The email is marked deleted when no mailbox holds it any more."""
        item = self.deps.emails.get_email(self.tenant, email_id)
        if item is None:
            return False
        prefix = f"LOC#{self.account.account_id}#"
        suffix = f"#{LOCATION_VALIDITY}#{uid:010d}"
        anchor = location_sk(self.account.account_id, ALL_MAIL, LOCATION_VALIDITY, uid)
        keys = [
            str(k)
            for k in item.get("loc_keys") or ()
            if str(k).startswith(prefix) and str(k).endswith(suffix)
        ]
        for sk in sorted(keys, key=lambda k: k == anchor):
            self.deps.emails.delete_location(self.tenant, sk)
            self.deps.emails.detach_location(self.tenant, email_id, sk)
        return anchor in keys

    # ------------------------------------------------------------------ helpers
    def _anchors(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stored anchor locations by Gmail id."""
        keys = {
            location_sk(self.account.account_id, ALL_MAIL, LOCATION_VALIDITY, gmail_uid(i)): i for i in ids
        }
        if not keys:
            return {}
        # Consistent: the anchors a batch just wrote are read back to place their labels.
        found = self.deps.emails.batch_get_sks(self.tenant, list(keys), consistent=True)
        return {keys[str(item["sk"])]: item for item in found if str(item["sk"]) in keys}

    def _save(self, state: FolderState) -> None:
        self.deps.accounts.save_folder_state(self.tenant, self.account.account_id, state)


def _fetched(message: RawMessage, now: datetime) -> FetchedMessage:
    return FetchedMessage(
        uid=gmail_uid(message.id),
        flags=flags_of(message.label_ids),
        internal_date=message.received_at or now,
        modseq=message.history_id,
        size=len(message.raw),
        raw=message.raw,
        provider_id=message.id,
        provider_thread_id=message.thread_id,
        labels=tuple(sorted(message.label_ids)),
    )


LabelChanges = dict[str, list[tuple[set[str], set[str]]]]


def _changes(history: History) -> tuple[list[str], set[str], LabelChanges, dict[str, int]]:
    """Added ids (in order), deleted ids, per id its label changes (add, remove) in order, and per
    id the last history record that changed its labels."""
    added: dict[str, None] = {}
    deleted: set[str] = set()
    changes: LabelChanges = {}
    last_record: dict[str, int] = {}
    for record in history.records:
        for change in (*record.labels_added, *record.labels_removed):
            last_record[change.message.id] = max(record.id, last_record.get(change.message.id, 0))
        for item in record.messages_added:
            added[item.message.id] = None
        for item in record.messages_deleted:
            deleted.add(item.message.id)
        for change in record.labels_added:
            changes.setdefault(change.message.id, []).append((set(change.label_ids), set()))
        for change in record.labels_removed:
            changes.setdefault(change.message.id, []).append((set(), set(change.label_ids)))
    return list(added), deleted, changes, last_record


def sync_gmail(client: GmailClient, account: Account, deps: SyncDeps, budget: Budget) -> GmailReport:
    """One run of the Gmail sync of `account` (see the module docstring)."""
    return GmailSync(client, account, deps, budget).run()
