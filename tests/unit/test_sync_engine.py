"""The IMAP sync engine against an in-memory mailbox and moto (the template's accounts and emails
tables and mail bucket, created once per module; a tenant per test): what `sync_account` stores,
announces and remembers per folder. The fast tier for `make mutate MODULES=sync/engine.py`; the
IMAP adapter and a real server are tests/integration/test_sync_imap.py's business."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace, TracebackType
from typing import Any, Self

import boto3
import pytest
from moto import mock_aws

from local.resources import create_table
from local.template import load_template
from mailbridge import aws
from mailbridge.bus import DomainEvent, EventPublisher
from mailbridge.errors import EventPublishError, ProviderError, ProviderUnreachable
from mailbridge.mime import normalize
from mailbridge.models.account import Account, FolderPresence
from mailbridge.providers.imap.models import (
    FetchBatch,
    FetchedMessage,
    Flag,
    FlagChange,
    FlagChanges,
    Folder,
    FolderStatus,
)
from mailbridge.store.accounts import AccountStore
from mailbridge.store.blobs import BlobStore
from mailbridge.store.emails import EmailStore
from mailbridge.store.keys import location_sk
from mailbridge.sync import engine
from mailbridge.sync import ingest as ingest_module
from mailbridge.sync.engine import (
    FOLDER_NOT_FOUND,
    FOLDER_NOT_SELECTABLE,
    Budget,
    FolderReport,
    SyncDeps,
    announce,
    announce_updates,
    sync_account,
)
from tests.integration.sync_harness import message

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template([ROOT / "template.yaml"])
ACCOUNT = "acc_0123456789abcdef0123"
ADDRESS = "user@example.com"
WHEN = dt.datetime(2026, 11, 17, 10, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 18, 9, 30, tzinfo=dt.UTC)


# ------------------------------------------------------------------------------ the mailbox


@dataclass
class Box:
    uidvalidity: int
    messages: dict[int, bytes] = field(default_factory=dict)
    flags: dict[int, tuple[str, ...]] = field(default_factory=dict)
    modseqs: dict[int, int] = field(default_factory=dict)
    expunged: dict[int, int] = field(default_factory=dict)  # uid -> modseq of the expunge
    attributes: frozenset[str] = frozenset()
    modseq: int = 1


@dataclass
class MemoryServer:
    """Folders held in memory; implements `MailFolderSource` for what the engine calls. CONDSTORE
    (modseqs) and QRESYNC (VANISHED) can be switched off, and so can raising HIGHESTMODSEQ on
    expunge (only QRESYNC requires it: RFC 7162 section 3.2). `uid_listings` counts `list_uids`
    calls (a full UID SEARCH on a real server)."""

    boxes: dict[str, Box] = field(default_factory=dict)
    condstore: bool = True
    qresync: bool = True
    expunge_moves_modseq: bool = True
    uid_listings: int = 0
    gone: set[str] = field(default_factory=set)  # listed, then deleted before STATUS
    renumbered: set[str] = field(default_factory=set)  # renumbered between STATUS and FETCH
    fetches: list[tuple[str, int, int]] = field(default_factory=list)
    on_fetch: Callable[[int], None] | None = None  # called with `after_uid` as each fetch starts
    # Found by a fetch's UID SEARCH, then expunged before its FETCH (the batch lacks them).
    vanish_at_fetch: set[int] = field(default_factory=set)

    def add(self, folder: str, *raws: bytes, flags: tuple[str, ...] = ()) -> list[int]:
        box = self.boxes[folder]
        uids = []
        for raw in raws:
            uid = max([*box.messages, *box.expunged, 0]) + 1
            box.modseq += 1
            box.messages[uid], box.flags[uid], box.modseqs[uid] = raw, flags, box.modseq
            uids.append(uid)
        return uids

    def set_flags_on_server(self, folder: str, uid: int, flags: tuple[str, ...]) -> None:
        box = self.boxes[folder]
        box.modseq += 1
        box.flags[uid], box.modseqs[uid] = flags, box.modseq

    def expunge(self, folder: str, uid: int) -> None:
        box = self.boxes[folder]
        if self.expunge_moves_modseq:
            box.modseq += 1
        del box.messages[uid]
        box.expunged[uid] = box.modseq

    # ------------------------------------------------------------------ MailFolderSource
    def capabilities(self) -> frozenset[str]:
        return frozenset({"IMAP4REV1"})

    def list_folders(self) -> list[Folder]:
        return [Folder(name, "/", box.attributes) for name, box in self.boxes.items()]

    def sent_folder(self) -> Folder | None:
        return next((f for f in self.list_folders() if "\\Sent" in f.attributes), None)

    def folder_status(self, name: str) -> FolderStatus:
        if name in self.gone:
            raise ProviderError("no such folder", code=FOLDER_NOT_FOUND)
        box = self.boxes[name]
        uidnext = max([*box.messages, *box.expunged, 0]) + 1
        return FolderStatus(
            name, box.uidvalidity, uidnext, len(box.messages), box.modseq if self.condstore else None
        )

    def select(self, name: str) -> FolderStatus:
        return self.folder_status(name)

    def fetch_new(self, name: str, after_uid: int, limit: int, max_bytes: int | None = None) -> FetchBatch:
        """As the IMAP client's: at most `limit` UIDs after `after_uid`; with `max_bytes`, only the
        longest prefix whose sizes fit in it (at least one message)."""
        self.fetches.append((name, after_uid, limit))
        if self.on_fetch is not None:
            self.on_fetch(after_uid)
        box = self.boxes[name]
        uids = sorted(u for u in box.messages if u > after_uid)
        chosen = uids[:limit]
        if max_bytes is not None:
            total = 0
            for count, uid in enumerate(chosen):
                total += len(box.messages[uid])
                if count and total > max_bytes:
                    chosen = chosen[:count]
                    break
        for uid in self.vanish_at_fetch & set(chosen):
            self.expunge(name, uid)
        batch = [
            FetchedMessage(u, box.flags[u], WHEN, box.modseqs[u], len(box.messages[u]), box.messages[u])
            for u in chosen
            if u in box.messages
        ]
        uidvalidity = box.uidvalidity + 1 if name in self.renumbered else box.uidvalidity
        return FetchBatch(name, uidvalidity, tuple(batch), len(uids) > len(chosen))

    def fetch_flag_changes(self, name: str, since_modseq: int) -> FlagChanges | None:
        box = self.boxes[name]
        changed = tuple(
            FlagChange(u, box.flags[u], m)
            for u, m in sorted(box.modseqs.items())
            if m > since_modseq and u in box.messages
        )
        vanished = tuple(u for u, m in box.expunged.items() if m > since_modseq) if self.qresync else None
        return FlagChanges(name, box.uidvalidity, box.modseq, changed, vanished)

    def list_uids(self, name: str) -> list[int]:
        self.uid_listings += 1
        return sorted(self.boxes[name].messages)

    def set_flags(
        self, name: str, uid: int, *, add: Iterable[Flag] = (), remove: Iterable[Flag] = ()
    ) -> None:
        raise NotImplementedError

    def move(self, name: str, uid: int, target: str) -> tuple[int, int] | None:
        raise NotImplementedError

    def append(
        self, name: str, raw: bytes, *, flags: Iterable[Flag] = (), internal_date: dt.datetime | None = None
    ) -> int | None:
        raise NotImplementedError

    def logout(self) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class RecordingPublisher(EventPublisher):
    """What would reach the bus: every event, in order."""

    def __init__(self) -> None:
        super().__init__("unused")
        self.events: list[DomainEvent] = []
        self.on_publish: Callable[[Sequence[DomainEvent]], None] | None = None  # before they count

    def publish(self, events: Sequence[DomainEvent]) -> None:
        if self.on_publish is not None:
            self.on_publish(events)
        self.events.extend(events)


# ------------------------------------------------------------------------------ AWS


@pytest.fixture(scope="module")
def resources() -> Iterator[tuple[str, str, str]]:
    """The accounts and emails tables and the mail bucket, once per module."""
    with mock_aws():
        aws.reset_clients()
        TEMPLATE.physical_ids["DataKey"] = boto3.client("kms", region_name="us-east-1").create_key()[
            "KeyMetadata"
        ]["KeyId"]
        client = boto3.client("dynamodb", region_name="us-east-1")
        accounts = create_table(client, TEMPLATE, "AccountsTable")
        emails = create_table(client, TEMPLATE, "EmailsTable")
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="mail-bucket")
        yield accounts, emails, "mail-bucket"
        aws.reset_clients()


@dataclass
class World:
    tenant: str
    server: MemoryServer
    deps: SyncDeps
    publisher: RecordingPublisher
    folders: list[str] = field(default_factory=list)

    @property
    def account(self) -> Account:
        return Account.model_validate(
            {
                "account_id": ACCOUNT,
                "tenant_id": self.tenant,
                "provider": "imap",
                "address": ADDRESS,
                "folders": self.folders,
                "created_at": WHEN,
                "created_by": "user-1",
            }
        )

    def sync(self, **budget: Any) -> Any:
        return sync_account(self.server, self.account, self.deps, Budget(**budget))

    def state(self, folder: str) -> Any:
        return self.deps.accounts.folder_state(self.tenant, ACCOUNT, folder)

    def location(self, folder: str, uid: int) -> dict[str, Any] | None:
        uidvalidity = self.server.boxes[folder].uidvalidity
        return self.deps.emails.get_location(self.tenant, location_sk(ACCOUNT, folder, uidvalidity, uid))

    def email_at(self, folder: str, uid: int) -> dict[str, Any]:
        loc = self.location(folder, uid)
        assert loc is not None
        item = self.deps.emails.get_email(self.tenant, str(loc["email_id"]))
        assert item is not None
        return item

    def announced(self) -> list[tuple[str, str | None]]:
        return [(e.detail_type, e.data.get("message_id")) for e in self.publisher.events]


@pytest.fixture
def w(resources: tuple[str, str, str]) -> World:
    accounts, emails, bucket = resources
    publisher = RecordingPublisher()
    deps = SyncDeps(AccountStore(accounts), EmailStore(emails), BlobStore(bucket), publisher, now=lambda: NOW)
    server = MemoryServer({"INBOX": Box(uidvalidity=7)})
    return World("t" + uuid.uuid4().hex[:12], server, deps, publisher)


def mails(prefix: str, count: int) -> list[bytes]:
    return [message(f"{prefix} {n}", msgid=f"{prefix.lower()}-{n}@customer.example") for n in range(count)]


# ------------------------------------------------------------------------------ folders


def test_inbox_sent_and_the_selection_are_synced_once_each_and_missing_ones_reported(w: World) -> None:
    # Given INBOX, a Sent folder, a selected folder, one the server lacks and one it cannot select
    w.server.boxes["Sent Items"] = Box(uidvalidity=3, attributes=frozenset({"\\Sent"}))
    w.server.boxes["Projects"] = Box(uidvalidity=4)
    w.server.boxes["Archive"] = Box(uidvalidity=5, attributes=frozenset({"\\Noselect"}))
    w.server.add("INBOX", message("In", msgid="in@customer.example"))
    w.server.add(
        "Sent Items", message("Out", msgid="out@example.com", sender=ADDRESS, to="carol@customer.example")
    )
    w.server.add("Projects", message("Plan", msgid="plan@customer.example"))
    w.folders = ["inbox", "Sent Items", "Projects", "Gone", "Archive"]
    # When the account syncs
    report = w.sync()
    # Then each folder that exists is synced once, INBOX first, and its mail announced once
    assert [f.name for f in report.folders] == ["INBOX", "Sent Items", "Projects"]
    assert report.complete
    assert report.stored == 3
    assert sorted(w.announced()) == [
        ("email.received", "in@customer.example"),
        ("email.received", "plan@customer.example"),
        ("email.sent", "out@example.com"),
    ]
    # And the account status shows why the two others are not synced
    gone, archive = w.state("Gone"), w.state("Archive")
    assert (gone.state, gone.reason) == (FolderPresence.MISSING, FOLDER_NOT_FOUND)
    assert (archive.state, archive.reason) == (FolderPresence.MISSING, FOLDER_NOT_SELECTABLE)
    assert w.state("Projects").state is FolderPresence.ACTIVE
    # And INBOX, selected again under another case, has one state, under its own name
    stored = w.deps.accounts.folder_states(w.tenant, ACCOUNT)
    assert sorted(s.name for s in stored) == ["Archive", "Gone", "INBOX", "Projects", "Sent Items"]


def test_mail_in_the_sent_folder_is_outbound_even_from_another_address(w: World) -> None:
    # Given a Sent folder holding a message sent from an alias of the account, not its address
    w.server.boxes["Sent Items"] = Box(uidvalidity=3, attributes=frozenset({"\\Sent"}))
    w.server.add(
        "Sent Items",
        message("Alias", msgid="alias@example.com", sender="sales@example.com", to="carol@customer.example"),
    )
    # When the account syncs
    w.sync()
    # Then it is stored and announced as sent mail
    assert w.announced() == [("email.sent", "alias@example.com")]
    assert w.email_at("Sent Items", 1)["direction"] == "outbound"


def test_a_folder_deleted_after_the_listing_is_reported_missing_and_the_others_carry_on(w: World) -> None:
    # Given a selected folder the server lists but deletes before its STATUS
    w.server.boxes["Projects"] = Box(uidvalidity=4)
    w.server.boxes["Later"] = Box(uidvalidity=6)
    w.server.add("Later", message("Later", msgid="later@customer.example"))
    w.server.gone.add("Projects")
    w.folders = ["Projects", "Later"]
    # When the account syncs
    report = w.sync()
    # Then the folder is reported missing and the next one is synced
    assert [(f.name, f.complete) for f in report.folders] == [
        ("INBOX", True),
        ("Projects", True),
        ("Later", True),
    ]
    assert (w.state("Projects").state, w.state("Projects").reason) == (
        FolderPresence.MISSING,
        FOLDER_NOT_FOUND,
    )
    assert w.announced() == [("email.received", "later@customer.example")]


def test_an_inbox_that_cannot_be_read_fails_the_sync(w: World) -> None:
    w.server.gone.add("INBOX")
    with pytest.raises(ProviderError):
        w.sync()


def test_a_folder_gone_from_the_server_keeps_its_cursor_is_written_once_and_resumes_when_back(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a selected folder with two synced messages
    w.server.boxes["Projects"] = Box(uidvalidity=4)
    w.server.add("Projects", *mails("Plan", 2))
    w.folders = ["Projects"]
    w.sync()
    # When the server no longer lists it
    box = w.server.boxes.pop("Projects")
    w.sync()
    # Then it is missing, and its cursor and counts stay (mark_missing's promise)
    state = w.state("Projects")
    assert (state.state, state.reason) == (FolderPresence.MISSING, FOLDER_NOT_FOUND)
    assert (state.uidvalidity, state.last_uid, state.messages_stored) == (4, 2, 2)
    # When it stays gone, the next sync writes nothing for it
    saved: list[str] = []
    save = w.deps.accounts.save_folder_state

    def counting(tenant_id: str, account_id: str, state: Any) -> None:
        saved.append(state.name)
        save(tenant_id, account_id, state)

    monkeypatch.setattr(w.deps.accounts, "save_folder_state", counting)
    w.sync()
    assert "Projects" not in saved
    # When the server lists it again but as \Noselect, the reason follows
    w.server.boxes["Projects"] = Box(uidvalidity=4, attributes=frozenset({"\\Noselect"}))
    w.sync()
    assert (w.state("Projects").state, w.state("Projects").reason) == (
        FolderPresence.MISSING,
        FOLDER_NOT_SELECTABLE,
    )
    # When it is back with the same UIDVALIDITY and a new message, the sync resumes after the cursor
    w.server.boxes["Projects"] = box
    w.server.add("Projects", message("Plan 2", msgid="plan-2@customer.example"))
    w.server.fetches.clear()
    w.sync()
    state = w.state("Projects")
    assert (state.state, state.reason, state.last_uid, state.messages_stored) == (
        FolderPresence.ACTIVE,
        None,
        3,
        3,
    )
    assert ("Projects", 2, 50) in w.server.fetches


def test_the_session_deadline_cuts_off_at_its_instant_and_never_without_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "monotonic", lambda: 100.0)
    assert Budget().cut_off() is False
    assert Budget(session_deadline=100.5).cut_off() is False
    assert Budget(session_deadline=100.0).cut_off() is True
    assert Budget(session_deadline=99.0).cut_off() is True


def test_the_budget_is_spent_at_its_message_count_or_its_deadline_instant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "monotonic", lambda: 100.0)
    assert Budget(max_messages=2, spent=1, deadline=100.5).exhausted() is False
    assert Budget(max_messages=2, spent=2, deadline=100.5).exhausted() is True
    assert Budget(max_messages=2, spent=1, deadline=100.0).exhausted() is True


# ------------------------------------------------------------------------------ new mail


def test_new_mail_is_stored_in_batches_announced_and_the_cursor_moves(w: World) -> None:
    # Given five new messages, one of them flagged and read
    w.server.add("INBOX", *mails("Order", 4))
    w.server.add("INBOX", message("Hot", msgid="hot@customer.example"), flags=("\\Seen", "\\Flagged"))
    # When the account syncs two messages a batch
    report = w.sync(batch_size=2)
    # Then every message is stored and announced once, fetched in three batches after the cursor
    assert report.folders == [FolderReport("INBOX", stored=5)]
    assert w.server.fetches == [("INBOX", 0, 2), ("INBOX", 2, 2), ("INBOX", 4, 2)]
    assert len(w.announced()) == 5
    assert w.email_at("INBOX", 5)["read"] is True
    # And the folder remembers its cursor, counts, modseq and when it synced
    state = w.state("INBOX")
    assert (state.uidvalidity, state.last_uid, state.messages_stored, state.messages_on_server) == (
        7,
        5,
        5,
        5,
    )
    assert state.highestmodseq == w.server.boxes["INBOX"].modseq
    assert state.last_synced_at == NOW
    # And the announcement says what was stored
    event = w.publisher.events[-1]
    item = w.email_at("INBOX", 5)
    assert event.tenant_id == w.tenant
    assert event.idempotency_key == f"email.received:{item['email_id']}"
    assert event.data == {
        "email_id": item["email_id"],
        "account_id": ACCOUNT,
        "thread_id": item["thread_id"],
        "message_id": "hot@customer.example",
        "direction": "inbound",
        "date": item["date"],
    }


def test_a_second_sync_fetches_only_what_is_new(w: World) -> None:
    # Given a synced folder
    w.server.add("INBOX", *mails("Old", 2))
    w.sync()
    w.server.fetches.clear()
    # When a message arrives and the account syncs again
    w.server.add("INBOX", message("New", msgid="new@customer.example"))
    report = w.sync()
    # Then only it is fetched, stored and announced
    assert w.server.fetches == [("INBOX", 2, 50)]
    assert report.folders == [FolderReport("INBOX", stored=1)]
    assert w.announced()[-1] == ("email.received", "new@customer.example")
    assert len(w.announced()) == 3
    assert (w.state("INBOX").last_uid, w.state("INBOX").messages_stored) == (3, 3)


def test_the_budget_stops_the_run_and_the_next_run_carries_on(w: World) -> None:
    # Given five messages in INBOX and one in a selected folder
    w.server.add("INBOX", *mails("Order", 5))
    w.server.boxes["Projects"] = Box(uidvalidity=4)
    w.server.add("Projects", message("Plan", msgid="plan@customer.example"))
    w.folders = ["Projects"]
    # When a run may take three messages
    report = w.sync(max_messages=3, batch_size=2)
    # Then it stores three, fetches no more than the budget leaves, and says it is not complete
    assert w.server.fetches == [("INBOX", 0, 2), ("INBOX", 2, 1)]
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [
        ("INBOX", 3, False),
        ("Projects", 0, False),
    ]
    assert not report.complete
    state = w.state("INBOX")
    assert (state.last_uid, state.highestmodseq) == (3, None)
    # When the next run has budget enough
    report = w.sync()
    # Then it stores the rest
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [
        ("INBOX", 2, True),
        ("Projects", 1, True),
    ]
    assert len(w.announced()) == 6


def test_each_folders_first_fetch_asks_for_no_more_than_the_budget_leaves(w: World) -> None:
    # Given two messages in INBOX and three in a selected folder
    w.server.add("INBOX", *mails("Order", 2))
    w.server.boxes["Projects"] = Box(uidvalidity=4)
    w.server.add("Projects", *mails("Plan", 3))
    w.folders = ["Projects"]
    # When a run may take three messages
    report = w.sync(max_messages=3)
    # Then INBOX asks for three and the selected folder for the one left
    assert w.server.fetches == [("INBOX", 0, 3), ("Projects", 0, 1)]
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [
        ("INBOX", 2, True),
        ("Projects", 1, False),
    ]


def test_every_folder_after_the_budget_is_spent_is_reported_incomplete(w: World) -> None:
    # Given one message in INBOX and two selected folders with mail
    w.server.add("INBOX", message("In", msgid="in@customer.example"))
    for name, uidvalidity in (("Projects", 4), ("Later", 6)):
        w.server.boxes[name] = Box(uidvalidity=uidvalidity)
        w.server.add(name, message(name, msgid=f"{name.lower()}@customer.example"))
    w.folders = ["Projects", "Later"]
    # When a run may take one message
    report = w.sync(max_messages=1)
    # Then INBOX is synced and both folders after it are reported not done
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [
        ("INBOX", 1, True),
        ("Projects", 0, False),
        ("Later", 0, False),
    ]


def test_a_passed_deadline_starts_no_batch(w: World) -> None:
    w.server.add("INBOX", *mails("Order", 2))
    report = w.sync(deadline=0.0)
    assert w.server.fetches == []
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [("INBOX", 0, False)]


# The next batch is fetched in a worker thread while the current one is stored (sync/engine.py,
# `_fetch_and_store`). A wait below ends as soon as the worker gets there; its timeout only
# bounds how long a broken engine keeps the test waiting.
WORKER_WAIT_SECONDS = 10


def test_the_next_batch_is_fetched_while_the_current_one_is_stored_never_two_ahead(w: World) -> None:
    # Given six new messages fetched two a batch; each fetch notes the cursor saved when it
    # starts, and the first announcement waits for the fetch after UID 2 to have started
    w.server.add("INBOX", *mails("Order", 6))
    cursor_at_fetch: dict[int, int] = {}
    second_fetch = threading.Event()

    def on_fetch(after_uid: int) -> None:
        cursor_at_fetch[after_uid] = w.state("INBOX").last_uid
        if after_uid == 2:
            second_fetch.set()

    seen_before_first_announcement: list[bool] = []

    def on_publish(events: Sequence[DomainEvent]) -> None:
        if not seen_before_first_announcement:
            seen_before_first_announcement.append(second_fetch.wait(WORKER_WAIT_SECONDS))

    w.server.on_fetch = on_fetch
    w.publisher.on_publish = on_publish
    # When the account syncs
    report = w.sync(batch_size=2)
    # Then the second batch was being fetched before the first was announced
    assert seen_before_first_announcement == [True]
    # And no fetch ran more than one batch ahead of the saved cursor: the third started only
    # once the first batch was stored and its cursor saved
    assert cursor_at_fetch == {0: 0, 2: 0, 4: 2}
    # And everything is stored and announced once, the cursor after the last message
    assert report.folders == [FolderReport("INBOX", stored=6)]
    assert len(w.announced()) == len(set(w.announced())) == 6
    assert (w.state("INBOX").last_uid, w.state("INBOX").messages_stored) == (6, 6)


def test_the_next_batch_is_normalized_while_the_current_one_is_stored_and_only_once(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given four new messages fetched two a batch, a normalizer that notes each message it
    # normalizes, and a first announcement that waits until a message of the second batch was
    # normalized
    w.server.add("INBOX", *mails("Order", 4))
    real_normalize = normalize
    normalized: list[bytes] = []
    second_batch_normalized = threading.Event()

    def noting_normalize(raw: bytes, *args: Any, **kwargs: Any) -> Any:
        normalized.append(raw)
        if b"order-2@customer.example" in raw:
            second_batch_normalized.set()
        return real_normalize(raw, *args, **kwargs)

    monkeypatch.setattr(ingest_module, "normalize", noting_normalize)
    seen_before_first_announcement: list[bool] = []

    def on_publish(events: Sequence[DomainEvent]) -> None:
        if not seen_before_first_announcement:
            seen_before_first_announcement.append(second_batch_normalized.wait(WORKER_WAIT_SECONDS))

    w.publisher.on_publish = on_publish
    # When the account syncs
    report = w.sync(batch_size=2)
    # Then the second batch was normalized before the first was announced (while it was stored)
    assert seen_before_first_announcement == [True]
    # And each message was normalized once: the batch normalized ahead is stored as it was
    assert len(normalized) == 4
    assert report.folders == [FolderReport("INBOX", stored=4)]
    assert len(w.announced()) == len(set(w.announced())) == 4
    assert (w.state("INBOX").last_uid, w.state("INBOX").messages_stored) == (4, 4)


def test_a_batch_fetched_ahead_after_the_deadline_is_not_normalized(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given four new messages fetched two a batch, and a deadline that passes as the second
    # batch is fetched ahead
    w.server.add("INBOX", *mails("Order", 4))
    budget = Budget(batch_size=2)
    real_normalize = normalize
    normalized: list[bytes] = []

    def noting_normalize(raw: bytes, *args: Any, **kwargs: Any) -> Any:
        normalized.append(raw)
        return real_normalize(raw, *args, **kwargs)

    def deadline_passes(after_uid: int) -> None:
        if after_uid == 2:
            budget.deadline = 0.0

    monkeypatch.setattr(ingest_module, "normalize", noting_normalize)
    w.server.on_fetch = deadline_passes
    # When the account syncs
    report = sync_account(w.server, w.account, w.deps, budget)
    # Then only the first batch was normalized (and stored): the second is left for the next run
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [("INBOX", 2, False)]
    assert len(normalized) == 2
    assert w.state("INBOX").last_uid == 2


def test_a_batch_fetched_ahead_is_dropped_when_the_deadline_passes_while_the_one_before_is_stored(
    w: World,
) -> None:
    # Given four new messages fetched two a batch, and a run whose deadline passes while it
    # stores the first batch (the second is fetched meanwhile)
    w.server.add("INBOX", *mails("Order", 4))
    budget = Budget(batch_size=2)

    def deadline_passes(events: Sequence[DomainEvent]) -> None:
        budget.deadline = 0.0

    w.publisher.on_publish = deadline_passes
    # When the account syncs
    report = sync_account(w.server, w.account, w.deps, budget)
    # Then the batch fetched ahead is neither stored nor announced, and the cursor stays after
    # the first batch: the run is not complete
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [("INBOX", 2, False)]
    assert w.server.fetches == [("INBOX", 0, 2), ("INBOX", 2, 2)]
    assert w.location("INBOX", 3) is None
    assert [m for _, m in w.announced()] == ["order-0@customer.example", "order-1@customer.example"]
    assert (w.state("INBOX").last_uid, w.state("INBOX").messages_stored) == (2, 2)
    # When the next run has time
    w.publisher.on_publish = None
    report = w.sync(batch_size=2)
    # Then it fetches that batch again and stores the rest, each announced once
    assert report.folders == [FolderReport("INBOX", stored=2)]
    assert len(w.announced()) == len(set(w.announced())) == 4
    assert (w.state("INBOX").last_uid, w.state("INBOX").messages_stored) == (4, 4)


def test_a_failed_store_raises_only_after_the_fetch_ahead_ended_and_leaves_the_cursor(w: World) -> None:
    # Given four new messages fetched two a batch, a bus that refuses the first announcement,
    # and a fetch ahead that is still running when it does
    w.server.add("INBOX", *mails("Order", 4))
    refused = threading.Event()
    fetch_ahead_ended: list[bool] = []

    def on_fetch(after_uid: int) -> None:
        if after_uid == 2:
            refused.wait(WORKER_WAIT_SECONDS)
            time.sleep(0.2)  # still reading when the store has failed
            fetch_ahead_ended.append(True)

    def refuse(events: Sequence[DomainEvent]) -> None:
        refused.set()
        raise EventPublishError("1 event(s) rejected after 3 attempts")

    w.server.on_fetch = on_fetch
    w.publisher.on_publish = refuse
    # When the account syncs
    with pytest.raises(EventPublishError):
        w.sync(batch_size=2)
    # Then the error reached the caller only once the fetch ahead had ended (the caller may log
    # out of the session it used), and the cursor did not move past the unannounced batch
    assert fetch_ahead_ended == [True]
    assert w.announced() == []
    assert w.state("INBOX").last_uid == 0


def test_a_failed_fetch_ahead_raises_once_the_batch_before_it_is_stored(w: World) -> None:
    # Given four new messages fetched two a batch, and a session that fails in the second fetch
    w.server.add("INBOX", *mails("Order", 4))

    def fail_second(after_uid: int) -> None:
        if after_uid == 2:
            raise ProviderUnreachable("IMAP connection lost", code="connection_lost")

    w.server.on_fetch = fail_second
    # When the account syncs
    with pytest.raises(ProviderUnreachable):
        w.sync(batch_size=2)
    # Then the first batch is stored, announced and behind the cursor: the next run goes on from it
    assert [m for _, m in w.announced()] == ["order-0@customer.example", "order-1@customer.example"]
    assert (w.state("INBOX").last_uid, w.state("INBOX").messages_stored) == (2, 2)
    # And the state saved with that batch's cursor says when it synced and what the server counted
    assert (w.state("INBOX").last_synced_at, w.state("INBOX").messages_on_server) == (NOW, 4)


def test_batches_are_bounded_by_bytes_in_the_first_fetch_and_in_each_fetch_ahead(w: World) -> None:
    # Given three new messages, and batches of up to five messages but fewer bytes than two hold
    raws = mails("Order", 3)
    w.server.add("INBOX", *raws)
    # When the account syncs
    report = w.sync(batch_size=5, batch_bytes=len(raws[0]) + 1)
    # Then each message is a batch of its own, the first and the ones fetched ahead alike
    assert w.server.fetches == [("INBOX", 0, 5), ("INBOX", 1, 5), ("INBOX", 2, 5)]
    assert report.folders == [FolderReport("INBOX", stored=3)]
    assert (w.state("INBOX").last_uid, w.state("INBOX").messages_stored) == (3, 3)


def test_a_fetch_ahead_asks_for_no_more_than_the_budget_leaves_after_an_earlier_folder(w: World) -> None:
    # Given two messages in INBOX and five in a selected folder
    w.server.add("INBOX", *mails("Order", 2))
    w.server.boxes["Projects"] = Box(uidvalidity=4)
    w.server.add("Projects", *mails("Plan", 5))
    w.folders = ["Projects"]
    # When a run may take five messages, two a batch
    report = w.sync(max_messages=5, batch_size=2)
    # Then the selected folder's fetch ahead asks for the one message the budget leaves
    assert w.server.fetches == [("INBOX", 0, 2), ("Projects", 0, 2), ("Projects", 2, 1)]
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [
        ("INBOX", 2, True),
        ("Projects", 3, False),
    ]
    assert w.state("Projects").last_uid == 3


def test_a_batch_whose_mail_was_expunged_before_its_fetch_is_followed_from_the_cursor(w: World) -> None:
    # Given four new messages, the first two expunged between the fetch's UID SEARCH and its FETCH
    w.server.add("INBOX", *mails("Order", 4))
    w.server.vanish_at_fetch = {1, 2}
    # When the account syncs two a batch
    report = w.sync(batch_size=2)
    # Then the empty batch moves nothing, the next is fetched from the cursor and stored
    assert w.server.fetches == [("INBOX", 0, 2), ("INBOX", 0, 2)]
    assert report.folders == [FolderReport("INBOX", stored=2)]
    assert [m for _, m in w.announced()] == ["order-2@customer.example", "order-3@customer.example"]
    assert (w.state("INBOX").last_uid, w.state("INBOX").messages_stored) == (4, 2)


def test_a_batch_fetched_ahead_that_arrives_at_the_deadlines_instant_is_not_normalized(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given four new messages fetched two a batch, and a clock that reaches the run's deadline
    # exactly while the second batch is fetched ahead
    w.server.add("INBOX", *mails("Order", 4))
    clock = [0.0]
    normalized: list[bytes] = []
    real_normalize = normalize

    def noting_normalize(raw: bytes, *args: Any, **kwargs: Any) -> Any:
        normalized.append(raw)
        return real_normalize(raw, *args, **kwargs)

    def reach_deadline(after_uid: int) -> None:
        if after_uid == 2:
            clock[0] = 100.0

    monkeypatch.setattr(ingest_module, "normalize", noting_normalize)
    monkeypatch.setattr(engine, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    w.server.on_fetch = reach_deadline
    # When the account syncs two a batch with its deadline at that instant
    report = w.sync(batch_size=2, deadline=100.0)
    # Then the batch that came at the deadline is not normalized (nor stored): at the instant is past it
    assert len(normalized) == 2
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [("INBOX", 2, False)]


def test_no_batch_is_fetched_ahead_at_the_deadlines_instant(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given four new messages, and a clock that reaches the run's deadline during the first fetch
    w.server.add("INBOX", *mails("Order", 4))
    clock = [0.0]

    def reach_deadline(after_uid: int) -> None:
        clock[0] = 100.0

    w.server.on_fetch = reach_deadline
    monkeypatch.setattr(engine, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    # When the account syncs two a batch with its deadline at that instant
    report = w.sync(batch_size=2, deadline=100.0)
    # Then the first batch is stored and nothing more is fetched: no batch may start then
    assert w.server.fetches == [("INBOX", 0, 2)]
    assert [(f.name, f.stored, f.complete) for f in report.folders] == [("INBOX", 2, False)]
    assert w.state("INBOX").last_uid == 2


def test_a_folder_renumbered_between_status_and_fetch_is_left_for_the_next_run(w: World) -> None:
    # Given a folder the server renumbers while it is being synced
    w.server.add("INBOX", *mails("Order", 2))
    w.server.renumbered.add("INBOX")
    # When the account syncs
    report = w.sync()
    # Then nothing of the batch is stored and the folder is not complete
    assert [(f.stored, f.complete) for f in report.folders] == [(0, False)]
    assert w.announced() == []
    assert w.state("INBOX").last_uid == 0


def test_unparseable_mail_is_quarantined_counted_and_passed(w: World) -> None:
    w.server.add(
        "INBOX",
        b"\x00\x01 not a message \xff",
        message("Fine", msgid="fine@customer.example"),
        b"\x00\x02 nor this one \xfe",
    )
    report = w.sync()
    assert report.folders == [FolderReport("INBOX", stored=1, quarantined=2)]
    assert w.announced() == [("email.received", "fine@customer.example")]
    assert (w.state("INBOX").last_uid, w.state("INBOX").messages_stored) == (3, 1)


def test_a_message_filed_twice_counts_once_per_location(w: World) -> None:
    # Given the same message twice in the folder
    raw = message("Twice", msgid="twice@customer.example")
    w.server.add("INBOX", raw, raw)
    # When the account syncs
    report = w.sync()
    # Then both locations are stored and counted, and the email announced once
    assert report.folders == [FolderReport("INBOX", stored=2)]
    assert w.announced() == [("email.received", "twice@customer.example")]
    assert w.state("INBOX").messages_stored == 2


# ------------------------------------------------------------------------------ changes


def test_flag_changes_of_stored_mail_follow_the_server(w: World) -> None:
    # Given two stored messages
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    # When the server marks the first read and sets the second's flags to what they are
    w.server.set_flags_on_server("INBOX", 1, ("\\Seen",))
    w.server.set_flags_on_server("INBOX", 2, ())
    report = w.sync()
    # Then the first email is read, with one update counted
    assert report.folders == [FolderReport("INBOX", flag_updates=1)]
    assert w.email_at("INBOX", 1)["read"] is True
    assert w.email_at("INBOX", 2)["read"] is False
    assert (w.location("INBOX", 1) or {})["flags"] == ["\\Seen"]
    assert w.state("INBOX").highestmodseq == w.server.boxes["INBOX"].modseq


def test_a_flag_change_of_the_last_stored_message_is_applied_and_announced_under_its_modseq(
    w: World,
) -> None:
    # Given two stored messages (the cursor is at the second)
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    w.publisher.events.clear()
    # When the server flags the second, the one at the cursor
    w.server.set_flags_on_server("INBOX", 2, ("\\Flagged",))
    modseq = w.server.boxes["INBOX"].modseq
    report = w.sync()
    # Then it is stored with its flags and modseq, and announced once as email.updated keyed by the change
    assert report.folders == [FolderReport("INBOX", flag_updates=1)]
    assert w.email_at("INBOX", 2)["flagged"] is True
    location = w.location("INBOX", 2) or {}
    assert (location["flags"], location["modseq"]) == (["\\Flagged"], modseq)
    email_id = str(location["email_id"])
    sk = location_sk(ACCOUNT, "INBOX", 7, 2)
    [event] = w.publisher.events
    assert event.detail_type == "email.updated"
    assert event.idempotency_key == f"email.updated:{email_id}:{sk}#{modseq}"
    assert (event.data["account_id"], event.data["changes"]) == (ACCOUNT, {"flagged": True})


def test_flags_the_server_sets_again_unchanged_are_no_update(w: World) -> None:
    # Given a stored message that is read
    w.server.add("INBOX", message("Read", msgid="read@customer.example"), flags=("\\Seen",))
    w.sync()
    w.publisher.events.clear()
    # When the server reports the same flags under a new modseq
    w.server.set_flags_on_server("INBOX", 1, ("\\Seen",))
    report = w.sync()
    # Then nothing is updated or announced
    assert report.folders == [FolderReport("INBOX")]
    assert w.publisher.events == []


def test_a_flag_change_announces_the_email_its_thread_and_only_the_state_that_changed(w: World) -> None:
    # Given a stored message that is read
    w.server.add("INBOX", message("Read", msgid="read@customer.example"), flags=("\\Seen",))
    w.sync()
    w.publisher.events.clear()
    # When the server flags it too (read stays as it was)
    w.server.set_flags_on_server("INBOX", 1, ("\\Seen", "\\Flagged"))
    w.sync()
    # Then email.updated names the email, its account and thread, and only the flagged change
    item = w.email_at("INBOX", 1)
    assert item["thread_id"]
    [event] = w.publisher.events
    assert event.data == {
        "email_id": item["email_id"],
        "account_id": ACCOUNT,
        "thread_id": item["thread_id"],
        "changes": {"flagged": True},
    }


def test_flag_changes_of_a_deleted_email_are_not_announced_and_the_next_emails_still_are(w: World) -> None:
    # Given two stored messages, the first one's email deleted (in the API, say)
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    first, second = (str(w.email_at("INBOX", u)["email_id"]) for u in (1, 2))
    w.deps.emails.update_email(w.tenant, first, deleted=True)
    w.publisher.events.clear()
    # When the server marks both read
    w.server.set_flags_on_server("INBOX", 1, ("\\Seen",))
    w.server.set_flags_on_server("INBOX", 2, ("\\Seen",))
    w.sync()
    # Then only the email that is not deleted is announced as updated
    assert [(e.detail_type, e.data["email_id"]) for e in w.publisher.events] == [("email.updated", second)]


def test_a_folder_move_is_announced_only_for_the_state_it_changes(w: World) -> None:
    # Given a stored email that is archived already
    w.server.add("INBOX", message("Moved", msgid="moved@customer.example"))
    w.sync()
    item = w.email_at("INBOX", 1)
    email_id = str(item["email_id"])
    w.deps.emails.update_email(w.tenant, email_id, archived=True)
    w.publisher.events.clear()
    # When a sync finds it archived and trashed on the server, its flags unchanged
    found = announce_updates(
        w.tenant,
        ACCOUNT,
        [(email_id, (), "move-1")],
        w.deps,
        moves={email_id: {"archived": True, "trashed": True}},
    )
    # Then the email exists, and only trashed is announced as changed, under the change's key
    assert found == {email_id}
    [event] = w.publisher.events
    assert event.idempotency_key == f"email.updated:{email_id}:move-1"
    assert event.data["changes"] == {"trashed": True}


def test_flag_changes_answered_out_of_uid_order_are_all_applied(w: World) -> None:
    # Given a stored message, then a new one, and a server that answers the changes new mail first
    # (RFC 3501 section 7.4.2 sets no order for FETCH responses)
    w.server.add("INBOX", message("Old", msgid="old@customer.example"))
    w.sync()
    [uid] = w.server.add("INBOX", message("New", msgid="new@customer.example"))
    w.server.set_flags_on_server("INBOX", 1, ("\\Seen",))
    w.server.set_flags_on_server("INBOX", uid, ("\\Flagged",))
    changes = w.server.fetch_flag_changes

    def newest_first(name: str, since_modseq: int) -> FlagChanges | None:
        found = changes(name, since_modseq)
        assert found is not None
        return FlagChanges(
            found.folder, found.uidvalidity, found.highestmodseq, found.changed[::-1], found.vanished
        )

    w.server.fetch_flag_changes = newest_first  # type: ignore[method-assign]
    # When the account syncs
    report = w.sync()
    # Then the stored one's change is applied, and the new one stored with its flags
    assert report.folders == [FolderReport("INBOX", stored=1, flag_updates=1)]
    assert w.email_at("INBOX", 1)["read"] is True
    assert w.email_at("INBOX", uid)["flagged"] is True


def test_a_flag_change_of_mail_not_stored_yet_comes_with_the_fetch(w: World) -> None:
    # Given a stored message, then a new one whose flags change before the next sync
    w.server.add("INBOX", message("Old", msgid="old@customer.example"))
    w.sync()
    [uid] = w.server.add("INBOX", message("New", msgid="new@customer.example"))
    w.server.set_flags_on_server("INBOX", uid, ("\\Flagged",))
    # When the account syncs
    report = w.sync()
    # Then the new message is stored with its flags, and no flag update is counted
    assert report.folders == [FolderReport("INBOX", stored=1)]
    assert w.email_at("INBOX", uid)["flagged"] is True


def test_a_flag_change_of_a_message_without_a_location_is_not_counted(w: World) -> None:
    # Given a stored message whose location is gone
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    uidvalidity = w.server.boxes["INBOX"].uidvalidity
    w.deps.emails.delete_location(w.tenant, location_sk(ACCOUNT, "INBOX", uidvalidity, 1))
    # When the server changes its flags
    w.server.set_flags_on_server("INBOX", 1, ("\\Seen",))
    report = w.sync()
    # Then nothing is updated
    assert report.folders == [FolderReport("INBOX")]


def test_without_condstore_no_flag_changes_are_asked_for(w: World) -> None:
    # Given a server without CONDSTORE and a synced folder
    w.server.condstore = False
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    # When a flag changes on the server
    w.server.set_flags_on_server("INBOX", 1, ("\\Seen",))
    report = w.sync()
    # Then the sync cannot see it (a reconcile's business) and stores no modseq
    assert report.folders == [FolderReport("INBOX")]
    assert w.state("INBOX").highestmodseq is None


def test_nothing_changed_since_the_stored_modseq_asks_for_nothing(w: World) -> None:
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()

    def refuse(name: str, since_modseq: int) -> FlagChanges | None:
        raise AssertionError("no changes to ask for")

    w.server.fetch_flag_changes = refuse  # type: ignore[method-assign]
    assert w.sync().folders == [FolderReport("INBOX")]
    assert w.server.uid_listings == 0


def test_condstore_without_qresync_and_nothing_changed_lists_no_uids(w: World) -> None:
    # Given a CONDSTORE server without QRESYNC and a synced folder
    w.server.qresync = False
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    # When nothing changed on the server
    report = w.sync()
    # Then the count check alone settles it: no UID listing
    assert report.folders == [FolderReport("INBOX")]
    assert w.server.uid_listings == 0


def test_vanished_mail_is_expunged(w: World) -> None:
    # Given three stored messages
    w.server.add("INBOX", *mails("Order", 3))
    w.sync()
    # When the server expunges the second (QRESYNC reports it VANISHED)
    w.server.expunge("INBOX", 2)
    report = w.sync()
    # Then its location is gone and the folder's counts follow (no new mail: no batch stored)
    assert report.folders == [FolderReport("INBOX", expunged=1)]
    assert w.location("INBOX", 2) is None
    assert w.location("INBOX", 1) is not None
    assert (w.state("INBOX").messages_stored, w.state("INBOX").messages_on_server) == (2, 2)


def test_vanished_mail_at_the_cursor_is_expunged_and_the_email_left_without_a_location_is_deleted(
    w: World,
) -> None:
    # Given one stored message (the cursor is at it)
    w.server.add("INBOX", message("Only", msgid="only@customer.example"))
    w.sync()
    email_id = str(w.email_at("INBOX", 1)["email_id"])
    # When the server expunges it (QRESYNC reports it VANISHED)
    w.server.expunge("INBOX", 1)
    report = w.sync()
    # Then its location is gone, the folder counts none, and the email, in no folder now, is deleted
    assert report.folders == [FolderReport("INBOX", expunged=1)]
    assert w.location("INBOX", 1) is None
    assert w.state("INBOX").messages_stored == 0
    item = w.deps.emails.get_email(w.tenant, email_id) or {}
    assert item["deleted"] is True
    assert not item.get("loc_keys")


def test_vanished_mail_whose_location_is_already_gone_is_not_counted(w: World) -> None:
    # Given two stored messages, the first's location already gone
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    w.deps.emails.delete_location(w.tenant, location_sk(ACCOUNT, "INBOX", 7, 1))
    # When the server expunges it (QRESYNC reports it VANISHED)
    w.server.expunge("INBOX", 1)
    report = w.sync()
    # Then nothing is counted expunged, the folder's count stays, and VANISHED settles it: no UID listing
    assert report.folders == [FolderReport("INBOX")]
    assert w.state("INBOX").messages_stored == 2
    assert w.server.uid_listings == 0


def test_two_vanished_messages_are_both_counted(w: World) -> None:
    # Given three stored messages
    w.server.add("INBOX", *mails("Order", 3))
    w.sync()
    # When the server expunges two of them
    w.server.expunge("INBOX", 1)
    w.server.expunge("INBOX", 3)
    report = w.sync()
    # Then both are expunged and counted
    assert report.folders == [FolderReport("INBOX", expunged=2)]
    assert (w.location("INBOX", 1), w.location("INBOX", 3)) == (None, None)
    assert w.state("INBOX").messages_stored == 1


def test_without_qresync_an_expunge_is_found_by_uid_diff(w: World) -> None:
    # Given a server without QRESYNC and three stored messages
    w.server.qresync = False
    w.server.add("INBOX", *mails("Order", 3))
    w.sync()
    # When the server expunges the third
    w.server.expunge("INBOX", 3)
    report = w.sync()
    # Then the UID diff finds it
    assert report.folders == [FolderReport("INBOX", expunged=1)]
    assert w.location("INBOX", 3) is None
    assert w.state("INBOX").messages_stored == 2


def test_without_qresync_one_uid_diff_settles_a_count_that_stays_off(w: World) -> None:
    # Given a server without QRESYNC and two stored messages, the first's location already gone
    w.server.qresync = False
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    w.deps.emails.delete_location(w.tenant, location_sk(ACCOUNT, "INBOX", 7, 1))
    # When the server expunges it
    w.server.expunge("INBOX", 1)
    report = w.sync()
    # Then the UIDs are listed once, and nothing is counted expunged
    assert report.folders == [FolderReport("INBOX")]
    assert w.server.uid_listings == 1


def test_mail_arriving_between_status_and_the_fetch_lists_no_uids(w: World) -> None:
    # Given a CONDSTORE server without QRESYNC and two stored messages
    w.server.qresync = False
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    # When a message arrives after the next run's STATUS, before its fetch
    status = w.server.folder_status

    def status_then_mail(name: str) -> FolderStatus:
        seen = status(name)
        w.server.add(name, message("Late", msgid="late@customer.example"))
        return seen

    w.server.folder_status = status_then_mail  # type: ignore[method-assign]
    report = w.sync()
    # Then it is stored, and not taken for an expunge the UIDs must settle
    assert report.folders == [FolderReport("INBOX", stored=1)]
    assert w.server.uid_listings == 0


def test_condstore_without_qresync_finds_an_expunge_that_left_the_modseq_alone(w: World) -> None:
    # Given a CONDSTORE server without QRESYNC that does not raise HIGHESTMODSEQ on expunge
    w.server.qresync = False
    w.server.expunge_moves_modseq = False
    w.server.add("INBOX", *mails("Order", 3))
    w.sync()
    # When the server expunges the second
    w.server.expunge("INBOX", 2)
    report = w.sync()
    # Then the count check and the UID diff find it
    assert report.folders == [FolderReport("INBOX", expunged=1)]
    assert w.location("INBOX", 2) is None
    assert w.location("INBOX", 1) is not None
    assert w.state("INBOX").messages_stored == 2


def test_condstore_without_qresync_finds_an_expunge_hidden_by_new_mail_in_the_same_run(w: World) -> None:
    # Given a CONDSTORE server without QRESYNC and two stored messages
    w.server.qresync = False
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    # When one is expunged and one arrives (the count is unchanged, the modseq moved)
    w.server.expunge("INBOX", 1)
    w.server.add("INBOX", message("New", msgid="new@customer.example"))
    report = w.sync()
    # Then the same run stores the new one and finds the expunge
    assert report.folders == [FolderReport("INBOX", stored=1, expunged=1)]
    assert w.location("INBOX", 1) is None
    assert w.location("INBOX", 3) is not None
    assert w.state("INBOX").messages_stored == 2
    assert w.server.uid_listings == 1


def test_without_condstore_an_expunge_is_found_by_uid_diff(w: World) -> None:
    w.server.condstore = w.server.qresync = False
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    w.server.expunge("INBOX", 1)
    report = w.sync()
    assert report.folders == [FolderReport("INBOX", expunged=1)]
    assert w.location("INBOX", 1) is None
    assert w.location("INBOX", 2) is not None


def test_an_expunge_hidden_by_new_mail_is_found_in_the_same_run(w: World) -> None:
    # Given a server without CONDSTORE/QRESYNC and two stored messages
    w.server.condstore = w.server.qresync = False
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    # When one is expunged and one arrives (the count is unchanged)
    w.server.expunge("INBOX", 1)
    w.server.add("INBOX", message("New", msgid="new@customer.example"))
    first = w.sync()
    # Then this run stores the new one and finds the expunge, and the next finds nothing more
    assert first.folders == [FolderReport("INBOX", stored=1, expunged=1)]
    assert w.location("INBOX", 1) is None
    assert w.state("INBOX").messages_stored == 2
    assert w.sync().folders == [FolderReport("INBOX")]


def mail_after_status(w: World, *raws: bytes) -> None:
    """`raws` arrive in the folder after its next STATUS, before its fetch."""
    status = w.server.folder_status

    def status_then_mail(name: str) -> FolderStatus:
        seen = status(name)
        w.server.add(name, *raws)
        return seen

    w.server.folder_status = status_then_mail  # type: ignore[method-assign]


def test_mail_arriving_after_status_in_two_batches_lists_no_uids(w: World) -> None:
    # Given a server without CONDSTORE/QRESYNC and two stored messages
    w.server.condstore = w.server.qresync = False
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    # When two messages arrive after the next run's STATUS and are fetched one a batch
    mail_after_status(w, *mails("Late", 2))
    report = w.sync(batch_size=1)
    # Then both are stored, and neither is taken for an expunge the UIDs must settle
    assert report.folders == [FolderReport("INBOX", stored=2)]
    assert w.server.uid_listings == 0
    assert w.state("INBOX").messages_stored == 4


def test_an_expunge_hidden_by_new_mail_is_found_when_more_mail_arrives_after_status(w: World) -> None:
    # Given a server without CONDSTORE/QRESYNC and two stored messages
    w.server.condstore = w.server.qresync = False
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    # When one is expunged and one arrives before the next run's STATUS (the count is unchanged),
    # and another arrives after it
    w.server.expunge("INBOX", 1)
    w.server.add("INBOX", message("New", msgid="new@customer.example"))
    mail_after_status(w, message("Late", msgid="late@customer.example"))
    report = w.sync()
    # Then the run stores both and finds the expunge
    assert report.folders == [FolderReport("INBOX", stored=2, expunged=1)]
    assert w.location("INBOX", 1) is None
    assert w.state("INBOX").messages_stored == 3


def test_a_folder_whose_first_fetch_fails_remembers_the_servers_uidvalidity(w: World) -> None:
    # Given a new folder with mail, and a session that fails in the first fetch
    w.server.add("INBOX", *mails("Order", 2))

    def fail(after_uid: int) -> None:
        raise ProviderUnreachable("IMAP connection lost", code="connection_lost")

    w.server.on_fetch = fail
    # When the account syncs
    with pytest.raises(ProviderUnreachable):
        w.sync()
    # Then the folder's state already holds the UIDVALIDITY its cursor will count in
    state = w.state("INBOX")
    assert (state.uidvalidity, state.last_uid) == (7, 0)


def test_a_uidvalidity_change_is_logged_and_remembered_even_when_the_fetch_then_fails(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    # Given two stored messages, then the server renumbers the folder and the next fetch fails
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    w.server.boxes["INBOX"].uidvalidity = 8

    def fail(after_uid: int) -> None:
        raise ProviderUnreachable("IMAP connection lost", code="connection_lost")

    w.server.on_fetch = fail
    caplog.clear()
    # When the account syncs
    with pytest.raises(ProviderUnreachable):
        w.sync()
    # Then the old locations are gone and the folder restarts in the new UIDVALIDITY
    assert w.deps.emails.get_location(w.tenant, location_sk(ACCOUNT, "INBOX", 7, 1)) is None
    state = w.state("INBOX")
    assert (state.uidvalidity, state.last_uid, state.messages_stored) == (8, 0, 0)
    # And the change is logged with the new UIDVALIDITY
    records = [r for r in caplog.records if r.getMessage() == "uidvalidity changed; re-syncing folder"]
    assert [(r.levelname, getattr(r, "folder_uidvalidity", None)) for r in records] == [("INFO", 8)]


def test_a_uidvalidity_change_drops_the_old_locations_and_syncs_again(w: World) -> None:
    # Given two stored messages
    w.server.add("INBOX", *mails("Order", 2))
    w.sync()
    old = [w.location("INBOX", u) for u in (1, 2)]
    ids = {str(loc["email_id"]) for loc in old if loc}
    # When the server renumbers the folder
    box = w.server.boxes["INBOX"]
    w.server.boxes["INBOX"] = Box(
        uidvalidity=8,
        messages=dict(box.messages),
        flags=dict(box.flags),
        modseqs=dict(box.modseqs),
        modseq=box.modseq,
    )
    report = w.sync()
    # Then the old locations are gone, the same emails have the new ones, and nothing is announced again
    assert report.folders == [FolderReport("INBOX", stored=2)]
    for uid in (1, 2):
        assert w.deps.emails.get_location(w.tenant, location_sk(ACCOUNT, "INBOX", 7, uid)) is None
        assert str(w.email_at("INBOX", uid)["email_id"]) in ids
    for email_id in ids:
        item = w.deps.emails.get_email(w.tenant, email_id)
        assert item is not None
        assert not any("#7#" in key for key in item["loc_keys"])
    state = w.state("INBOX")
    assert (state.uidvalidity, state.last_uid, state.messages_stored) == (8, 2, 2)
    assert len(w.announced()) == 2


# ------------------------------------------------------------------------------ announcing


def test_announce_publishes_each_unannounced_email_once(w: World) -> None:
    # Given a stored, announced email
    w.server.add("INBOX", message("One", msgid="one@customer.example"))
    w.sync()
    email_id = str(w.email_at("INBOX", 1)["email_id"])
    # When it is announced again, twice in one call, with an unknown id
    announce(w.tenant, ACCOUNT, [email_id, email_id, "em_unknown"], w.deps)
    announce(w.tenant, ACCOUNT, [], w.deps)
    # Then nothing more is published
    assert len(w.announced()) == 1


def test_announce_publishes_what_a_crash_left_unannounced(w: World) -> None:
    # Given two stored emails, neither announced (the run died before publishing)
    w.server.add("INBOX", message("One", msgid="one@customer.example"))
    w.server.add(
        "INBOX", message("Two", msgid="two@example.com", sender=ADDRESS, to="carol@customer.example")
    )
    w.sync()
    ids = [str(w.email_at("INBOX", u)["email_id"]) for u in (1, 2)]
    for email_id in ids:
        w.deps.emails.update_email(w.tenant, email_id, announced=False)
    w.publisher.events.clear()
    # When they are announced, once each
    announce(w.tenant, ACCOUNT, [*ids, *ids], w.deps)
    # Then each is published once, outbound mail as sent
    assert w.announced() == [("email.received", "one@customer.example"), ("email.sent", "two@example.com")]
    assert [e.idempotency_key for e in w.publisher.events] == [
        f"email.received:{ids[0]}",
        f"email.sent:{ids[1]}",
    ]
    assert [e.data["account_id"] for e in w.publisher.events] == [ACCOUNT, ACCOUNT]
    # And marked announced
    announce(w.tenant, ACCOUNT, ids, w.deps)
    assert len(w.publisher.events) == 2


def test_mail_an_automation_sent_announces_its_chain(w: World) -> None:
    # Given a stored email the outbox marked as sent by an automation run
    w.server.add("INBOX", message("One", msgid="one@customer.example"))
    w.server.add("INBOX", message("Two", msgid="two@customer.example"))
    w.sync()
    chained, other = (str(w.email_at("INBOX", u)["email_id"]) for u in (1, 2))
    w.deps.emails.update_email(
        w.tenant, chained, announced=False, automation={"depth": 2, "rule_id": "ar_1", "run_id": "run_1"}
    )
    w.deps.emails.update_email(w.tenant, other, announced=False, automation={"rule_id": "ar_2"})
    w.publisher.events.clear()
    # When they are announced
    announce(w.tenant, ACCOUNT, [chained, other], w.deps)
    # Then the chain goes with the first, and nothing with the one without a depth
    first, second = w.publisher.events
    assert first.data["automation"] == {"depth": 2, "rule_id": "ar_1", "run_id": "run_1"}
    assert "automation" not in second.data


def test_a_chain_without_ids_announces_empty_ones(w: World) -> None:
    w.server.add("INBOX", message("One", msgid="one@customer.example"))
    w.sync()
    email_id = str(w.email_at("INBOX", 1)["email_id"])
    w.deps.emails.update_email(w.tenant, email_id, announced=False, automation={"depth": 1})
    w.publisher.events.clear()
    announce(w.tenant, ACCOUNT, [email_id], w.deps)
    assert w.publisher.events[0].data["automation"] == {"depth": 1, "rule_id": "", "run_id": ""}
