"""Batched ingest (issue 10 point 1) on moto: what one fetch batch costs in AWS requests, and that a
crash before or after any of those requests, followed by a replay, ends in the state an
uninterrupted sync reaches, with every email announced.

The mailbox is an in-memory `MailFolderSource` (the protocol the IMAP adapter implements; the
adapter itself is tested against Dovecot): the tests here are about what the sync does with
what it fetched. Requests are counted, and crashes injected, with botocore `before-call` and
`after-call` hooks on the clients the sync uses.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Self

import boto3
import pytest

from mailbridge import aws
from mailbridge.accounts import AccountDeps, connect_account
from mailbridge.config import get_settings
from mailbridge.emails import EmailQuery, list_threads
from mailbridge.errors import ProviderUnreachable
from mailbridge.models.account import AccountCreate, SyncStage
from mailbridge.providers.imap.models import (
    FetchBatch,
    FetchedMessage,
    Flag,
    FlagChanges,
    Folder,
    FolderStatus,
)
from mailbridge.providers.imap.settings import ImapSettings
from mailbridge.store import emails as email_store
from mailbridge.sync import ingest as ingest_module
from mailbridge.sync.engine import Budget, SyncDeps, sync_folder
from mailbridge.sync.ingest import Mailbox
from mailbridge.sync.messages import SyncRequest
from mailbridge.sync.service import run_sync
from mailbridge.sync.wiring import budget_for, service_deps
from mailbridge.tenancy import Role, TenantContext
from tests.fixtures import moto_transactions
from tests.fixtures.aws import BusReader, Stack
from tests.integration.sync_harness import message

ACCOUNT = "acc_0123456789abcdef0123"
UIDVALIDITY = 41
WHEN = dt.datetime(2026, 11, 17, 10, tzinfo=dt.UTC)


# ------------------------------------------------------------------------------ the mailbox


@dataclass
class MemorySource:
    """One INBOX held in memory; implements `MailFolderSource` for what the sync engine calls."""

    messages: list[bytes]
    flags: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def _fetched(self, uid: int) -> FetchedMessage:
        raw = self.messages[uid - 1]
        return FetchedMessage(
            uid=uid,
            flags=self.flags.get(uid, ()),
            internal_date=WHEN,
            modseq=None,
            size=len(raw),
            raw=raw,
        )

    def capabilities(self) -> frozenset[str]:
        return frozenset({"IMAP4REV1"})

    def list_folders(self) -> list[Folder]:
        return [Folder("INBOX", "/", frozenset())]

    def sent_folder(self) -> Folder | None:
        return None

    def folder_status(self, name: str) -> FolderStatus:
        count = len(self.messages)
        return FolderStatus(name, UIDVALIDITY, count + 1, count, None)

    def select(self, name: str) -> FolderStatus:
        return self.folder_status(name)

    def fetch_new(self, name: str, after_uid: int, limit: int, max_bytes: int | None = None) -> FetchBatch:
        uids = list(range(after_uid + 1, len(self.messages) + 1))
        batch = uids[:limit]
        return FetchBatch(name, UIDVALIDITY, tuple(self._fetched(u) for u in batch), len(uids) > len(batch))

    def fetch_flag_changes(self, name: str, since_modseq: int) -> FlagChanges | None:
        return None

    def list_uids(self, name: str) -> list[int]:
        return list(range(1, len(self.messages) + 1))

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


def conversation_mailbox() -> MemorySource:
    """Nine messages: a three-message conversation (References), a reply found by its subject
    only, the same message twice, a large body (stored in S3), a message with an attachment,
    one that cannot be parsed (quarantined) and two plain ones."""
    big = "All the details. " * 7000  # > 100,000 characters: the bodies go to S3
    attachment = "\r\n".join(
        [
            "From: Carol Customer <carol@customer.example>",
            "To: user@example.com",
            "Subject: The contract",
            "Message-ID: <contract@customer.example>",
            "Date: Tue, 17 Nov 2026 13:00:00 +0000",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="b"',
            "",
            "--b",
            "Content-Type: text/plain",
            "",
            "Signed copy attached.",
            "--b",
            'Content-Type: application/pdf; name="contract.pdf"',
            'Content-Disposition: attachment; filename="contract.pdf"',
            "Content-Transfer-Encoding: base64",
            "",
            "JVBERi0xLjQKJSB0aW55IHRlc3QgZmlsZQolJUVPRgo=",
            "--b--",
            "",
        ]
    ).encode()
    return MemorySource(
        [
            message("Pricing for 2027", msgid="p1@customer.example"),
            message("Re: Pricing for 2027", msgid="p2@customer.example", refs=["p1@customer.example"]),
            message("Order 1", msgid="o1@customer.example"),
            message("Re: Order 1", msgid="o1-reply@customer.example"),  # joins by its subject
            message("Order 2", msgid="o2@customer.example"),
            message("Order 2", msgid="o2@customer.example"),  # the same message again
            message("Long read", msgid="long@customer.example", body=big),
            attachment,
            b"\x00\x01 this is not a message at all \xff\xfe",
            message(
                "Re: Pricing for 2027",
                msgid="p3@customer.example",
                refs=["p1@customer.example", "p2@customer.example"],
            ),
        ],
        flags={1: ("\\Seen",), 6: ("\\Flagged",)},
    )


# ------------------------------------------------------------------------------ AWS requests


class Requests:
    """AWS requests of the sync's clients: counted, and optionally one of them made to fail."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.crash_before: int | None = None
        self.crash_after: int | None = None
        self._after = 0

    def before(self, model: Any, **_: Any) -> None:
        self.calls.append(f"{model.service_model.service_name}.{model.name}")
        if self.crash_before is not None and len(self.calls) == self.crash_before:
            raise LambdaDied(f"died before request {len(self.calls)} ({self.calls[-1]})")

    def after(self, model: Any, **_: Any) -> None:
        self._after += 1
        if self.crash_after is not None and self._after == self.crash_after:
            raise LambdaDied(f"died after request {self._after}")

    def reset(self, *, before: int | None = None, after: int | None = None) -> None:
        self.calls.clear()
        self._after = 0
        self.crash_before, self.crash_after = before, after

    def by_operation(self) -> Counter[str]:
        return Counter(self.calls)


class LambdaDied(Exception):
    pass


@pytest.fixture
def requests(stack: Stack) -> Iterator[Requests]:
    counter = Requests()
    clients = [*aws.dynamodb_clients(), aws.s3(), aws.events()]
    for client in clients:
        client.meta.events.register("before-call", counter.before)
        client.meta.events.register("after-call", counter.after)
    yield counter
    for client in clients:
        client.meta.events.unregister("before-call", counter.before)
        client.meta.events.unregister("after-call", counter.after)


@pytest.fixture
def deps(stack: Stack) -> SyncDeps:
    return service_deps().sync


def sync(source: MemorySource, tenant: str, deps: SyncDeps, batch_size: int = 4) -> None:
    mailbox = Mailbox(tenant, ACCOUNT, "user@example.com", "INBOX", 0)
    sync_folder(source, mailbox, deps, Budget(max_messages=1000, batch_size=batch_size))


# ------------------------------------------------------------------------------ stored state


def items(stack: Stack, tenant: str, attributes: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The tenant's items in the emails table; with `attributes`, only those of each item."""
    table = stack.table("EmailsTable")
    kwargs: dict[str, Any] = {
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": f"TENANT#{tenant}"},
    }
    if names := {f"#a{n}": name for n, name in enumerate(attributes)}:
        kwargs |= {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
    out: list[dict[str, Any]] = []
    while True:
        page = table.query(**kwargs)
        out += page["Items"]
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


STATE_ATTRIBUTES = (
    *("sk", "email_id", "message_id", "thread_id", "members"),
    *("read", "flagged", "loc_keys", "folders", "body_key", "announced"),
)


def state(stack: Stack, tenant: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a sync leaves behind, without the tenant's own ids: emails by Message-ID with their
    flags and locations, the threads as groups of Message-IDs, the item counts by kind, the folder
    cursor and counts, the S3 objects, and how often each email was announced."""
    # (Only what is compared: moto's serializing of whole emails was most of this test's time.)
    stored = items(stack, tenant, STATE_ATTRIBUTES)
    emails = {str(i["email_id"]): i for i in stored if str(i["sk"]).startswith("EMAIL#")}
    by_mid = {str(i.get("message_id")): i for i in emails.values()}
    threads: dict[str, set[str]] = {}
    for mid, item in by_mid.items():
        threads.setdefault(str(item["thread_id"]), set()).add(mid)
    members = {
        str(i["thread_id"]): {str(by_id["message_id"]) for e in i["members"] if (by_id := emails.get(str(e)))}
        for i in stored
        if str(i["sk"]).startswith("THREAD#")
    }
    announced = Counter(
        str(emails[e["detail"]["data"]["email_id"]]["message_id"])
        for e in events
        if e["detail"]["tenant_id"] == tenant
    )
    folder: list[dict[str, Any]] = stack.table("AccountsTable").query(
        KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": f"TENANT#{tenant}"}
    )["Items"]
    bucket = stack.deployed.buckets["MailBucket"]
    s3 = boto3.client("s3")
    objects = [
        o
        for area in ("raw", "att", "body", "quarantine")
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{area}/{tenant}/").get("Contents", [])
    ]
    return {
        "emails": {
            mid: (
                bool(i["read"]),
                bool(i["flagged"]),
                len(i["loc_keys"]),
                sorted(i["folders"]),
                "body_key" in i,
                bool(i["announced"]),
            )
            for mid, i in by_mid.items()
        },
        "threads": sorted(sorted(group) for group in threads.values()),
        "members": sorted(sorted(group) for group in members.values()),
        "kinds": Counter(str(i["sk"]).split("#", 1)[0] for i in stored),
        "folder": [(f["state"]["last_uid"], f["state"]["messages_stored"]) for f in folder],
        "objects": Counter(str(o["Key"]).split("/", 1)[0] for o in objects),
        "announced": announced,
    }


# ------------------------------------------------------------------------------ the tests


def test_a_batch_is_read_and_written_in_batches(
    stack: Stack, deps: SyncDeps, requests: Requests, bus_probe: BusReader
) -> None:
    # Given 35 new messages and one with an attachment that the folder holds 5 times
    source = MemorySource(
        [
            message(f"Order {n}", msgid=f"order-{n}@customer.example", body=f"Order number {n}.")
            for n in range(35)
        ]
        + conversation_mailbox().messages[7:8] * 5
    )
    # When they are synced in fetch batches of 20
    sync(source, "acme", deps, batch_size=20)
    # Then each batch read what exists in one round, wrote its keys and emails in one
    # transaction, its locations in plain batch writes, and announced in PutEvents calls of 10
    calls = requests.by_operation()
    assert calls["s3.PutObject"] == 36  # the raw messages; attachments stay inside them
    assert calls["events.PutEvents"] == 4
    assert calls["dynamodb.BatchGetItem"] <= 2 * 2
    assert calls["dynamodb.TransactWriteItems"] <= 2 * 3  # keys + emails, then `announced`
    assert calls["dynamodb.BatchWriteItem"] <= 2 * 2
    assert sum(calls.values()) <= 2.0 * 36
    # And no per-message reads or writes were made
    assert calls["dynamodb.GetItem"] + calls["dynamodb.PutItem"] <= 2
    assert len(bus_probe()) == 36


def test_a_batch_is_announced_in_putevents_calls_that_run_at_the_same_time(
    stack: Stack, deps: SyncDeps, bus_probe: BusReader
) -> None:
    # Given 25 new messages (three PutEvents calls) and a bus client whose PutEvents calls wait,
    # each up to 10 s, for the other two to be out at the same time
    source = MemorySource([message(f"Order {n}", msgid=f"meet-{n}@customer.example") for n in range(25)])
    met = threading.Barrier(3, timeout=10)
    meetings: list[bool] = []

    def meet(**_: Any) -> None:
        try:
            met.wait()
            meetings.append(True)
        except threading.BrokenBarrierError:
            meetings.append(False)
            met.reset()

    client = aws.events()
    client.meta.events.register("before-call.events.PutEvents", meet)
    try:
        # When they are synced in one batch
        sync(source, "meet", deps, batch_size=25)
    finally:
        client.meta.events.unregister("before-call.events.PutEvents", meet)
    # Then the three calls were out together, and every email was announced once
    assert meetings == [True, True, True]
    assert len([e for e in bus_probe() if e["detail"]["tenant_id"] == "meet"]) == 25


def crash_mailbox() -> MemorySource:
    """Seven messages in two fetch batches of four: a reply by References, the same message twice,
    a large body, an attachment stored at sync time, input that cannot be parsed."""
    full = conversation_mailbox()
    return MemorySource(full.messages[:2] + full.messages[4:9], flags={1: ("\\Seen",), 4: ("\\Flagged",)})


class Checkpoints:
    """The stored state before each AWS request of one sync: every DynamoDB table's items, the mail
    bucket's objects and the events delivered so far, read from moto's backends. A crash before
    request k, or after request k-1, leaves exactly the state saved before request k; the last
    checkpoint (`save` after the sync) is what a crash after the last request leaves.

    Requests are let through one at a time (the S3 puts run in a pool) so each saved state is
    whole: the lock taken in `before` is released in `after`."""

    def __init__(self, bucket: str, drain: BusReader) -> None:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends
        from moto.s3.models import s3_backends

        region = boto3.session.Session().region_name or "us-east-1"
        self._tables = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].tables
        self._bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket]
        self._drain = drain
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.saved: list[tuple[dict[str, Any], Any, list[dict[str, Any]]]] = []

    def before(self, model: Any, **_: Any) -> None:
        assert self._lock.acquire(timeout=60), "a request never finished"
        self.calls.append(f"{model.service_model.service_name}.{model.name}")
        self.save()

    def after(self, **_: Any) -> None:
        self._lock.release()

    def save(self) -> None:
        self._events += self._drain()
        tables = {name: copy.deepcopy(table.items) for name, table in self._tables.items()}
        self.saved.append((tables, copy.deepcopy(self._bucket.keys), list(self._events)))

    def restore(self, point: int) -> list[dict[str, Any]]:
        """Put checkpoint `point` (1-based) back; returns the events delivered before it."""
        tables, objects, events = self.saved[point - 1]
        for name, items in tables.items():
            self._tables[name].items = copy.deepcopy(items)
        for key in self._bucket.keys.values():
            key.dispose()
        self._bucket.keys = copy.deepcopy(objects)
        self._drain()
        return list(events)


def test_a_crash_at_any_request_then_a_replay_ends_in_the_same_state(
    stack: Stack, bus_probe: BusReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (moto's transactions would otherwise deep-copy the whole table per action.)
    moto_transactions.install(partial(monkeypatch.setattr, raising=False))
    # Messages over 500 bytes have their attachments stored at sync time (one has one here)
    monkeypatch.setattr(ingest_module, "LAZY_ATTACHMENTS_MAX_BYTES", 500)
    # Given what an uninterrupted sync of the mailbox stores, its requests in order, and the
    # stored state before each of them
    checkpoints = Checkpoints(stack.deployed.buckets["MailBucket"], bus_probe)
    clients = [*aws.dynamodb_clients(), aws.s3(), aws.events()]
    for client in clients:
        client.meta.events.register("before-call", checkpoints.before)
        client.meta.events.register("after-call", checkpoints.after)
    try:
        sync(crash_mailbox(), "acme", service_deps().sync)
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", checkpoints.before)
            client.meta.events.unregister("after-call", checkpoints.after)
    checkpoints.save()
    calls = checkpoints.calls
    expected = state(stack, "acme", checkpoints.saved[-1][2])
    want = expected.pop("announced")
    assert expected["emails"]["o2@customer.example"][2] == 2  # one email, two locations
    assert expected["kinds"]["QUAR"] == 1
    assert set(want.values()) == {1}
    assert len(checkpoints.saved) == len(calls) + 1
    # When the sync dies before request k (the same stored state as dying after request k-1, or
    # after the last one), and then runs again in a new process (nothing cached in memory)
    for point in range(1, len(calls) + 2):
        announced_before = checkpoints.restore(point)
        service_deps.cache_clear()
        sync(crash_mailbox(), "acme", service_deps().sync)
        # Then the same emails, locations, threads, keys, objects and cursor exist
        got = state(stack, "acme", announced_before + bus_probe())
        announced = got.pop("announced")
        where = calls[point - 1] if point <= len(calls) else "the end"
        assert got == expected, (point, where)
        # And every email was announced: twice only when the crash came after a PutEvents call
        # and before the `announced` write that follows it (consumers dedupe on the
        # idempotency key, which is the same both times)
        assert set(announced) == set(want), (point, where)
        between = calls[point - 2 : point] == ["events.PutEvents", "dynamodb.TransactWriteItems"]
        assert set(announced.values()) <= ({1, 2} if between else {1}), (point, where)


def test_a_concurrent_writer_of_the_same_email_wins_and_the_batch_attaches_to_it(
    stack: Stack, deps: SyncDeps, requests: Requests, bus_probe: BusReader
) -> None:
    # Given another mailbox of the tenant that stores the same message while this batch is being
    # planned (between the batch's read and its transaction)
    other = Mailbox("acme", "acc_ffffffffffffffffffff", "colleague@example.com", "INBOX", 3)
    raw = message("Order 7", msgid="o7@customer.example")
    done: list[bool] = []

    def meanwhile(model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems" and not done:
            done.append(True)
            fetched = FetchedMessage(uid=9, flags=(), internal_date=WHEN, modseq=None, size=len(raw), raw=raw)
            ingest_module.ingest(other, fetched, deps.emails, deps.blobs)

    client = aws.dynamodb_client()  # the ingest's transactions go through the low-level client
    client.meta.events.register("before-call.dynamodb.TransactWriteItems", meanwhile)
    try:
        # When this mailbox syncs it
        sync(MemorySource([raw]), "acme", deps)
    finally:
        client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", meanwhile)
    # Then there is one email, held by both mailboxes, announced once
    emails = [i for i in items(stack, "acme") if str(i["sk"]).startswith("EMAIL#")]
    assert len(emails) == 1
    assert emails[0]["accounts"] == {ACCOUNT, "acc_ffffffffffffffffffff"}
    assert len(emails[0]["loc_keys"]) == 2
    assert len(bus_probe()) == 1


def test_small_messages_keep_their_attachments_inside_the_raw_message(
    stack: Stack, deps: SyncDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = stack.deployed.buckets["MailBucket"]
    with_attachment = conversation_mailbox().messages[7]
    # When a message with an attachment is synced
    sync(MemorySource([with_attachment]), "small", deps)
    # Then only its raw message is in S3
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert [k.split("/")[0] for k in keys if "/small/" in k] == ["raw"]
    # When messages above the limit are synced
    monkeypatch.setattr(ingest_module, "LAZY_ATTACHMENTS_MAX_BYTES", len(with_attachment) - 1)
    sync(MemorySource([with_attachment]), "big", deps)
    # Then their attachments are stored at once
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert sorted(k.split("/")[0] for k in keys if "/big/" in k) == ["att", "raw"]


def test_a_thread_past_its_member_limit_is_still_listed_whole(
    stack: Stack, deps: SyncDeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given member lists of at most two emails, and a conversation of four
    monkeypatch.setattr(email_store, "THREAD_MEMBERS_MAX", 2)
    refs: list[str] = []
    raws = []
    for n in range(4):
        raws.append(message(f"Re: Plans {n}", msgid=f"plan-{n}@customer.example", refs=list(refs)))
        refs.append(f"plan-{n}@customer.example")
    # When it is synced one message per batch
    sync(MemorySource(raws), "acme", deps, batch_size=1)
    # Then the thread's member list stopped growing and says so
    [thread] = [i for i in items(stack, "acme") if str(i["sk"]).startswith("THREAD#")]
    assert thread["overflow"] is True
    assert len(thread["members"]) < 4
    # And the thread listing still counts every message of it
    ctx = TenantContext(tenant_id="acme", role=Role.MEMBER, subject="u")
    [summary] = list_threads(ctx, EmailQuery(), deps.emails).items
    assert summary.message_count == 4


class StallingSource(MemorySource):
    """A mailbox whose server stops answering during fetch number `stall_on` (a trickle that never
    completes): with a session deadline, the IMAP client's `Deadline` cuts the session when it
    passes and the command fails with `timeout`; without one, the Lambda's timeout ends it all."""

    def __init__(self, messages: list[bytes], stall_on: int | None) -> None:
        super().__init__(messages)
        self.stall_on = stall_on
        self.fetches = 0
        self.deadline: float | None = None

    def fetch_new(self, name: str, after_uid: int, limit: int, max_bytes: int | None = None) -> FetchBatch:
        self.fetches += 1
        if self.fetches == self.stall_on:
            if self.deadline is None:
                # Nothing cuts the session off: the trickle outlasts the function's timeout.
                raise LambdaDied("the Lambda timed out while the server trickled")
            time.sleep(max(0.0, self.deadline - time.monotonic()))
            raise ProviderUnreachable("IMAP server: no complete answer in time", code="timeout")
        return super().fetch_new(name, after_uid, limit, max_bytes)


def test_a_run_hands_over_to_its_continuation_when_a_stalled_server_reaches_its_deadline(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given six messages fetched two at a time, from a server that stalls in the second fetch
    source = StallingSource([message(f"Order {n}", msgid=f"s{n}@customer.example") for n in range(6)], 2)

    def connect(settings: ImapSettings) -> StallingSource:
        source.deadline = settings.deadline
        return source

    monkeypatch.setattr("mailbridge.sync.wiring.BATCH_SIZE", 2)
    svc = service_deps()
    svc.connect = connect
    ctx = TenantContext(tenant_id="acme", role=Role.MEMBER, subject="u")
    body = AccountCreate.model_validate(
        {
            "provider": "imap",
            "address": "user@example.com",
            "imap": {"host": "127.0.0.1", "port": 143, "security": "none", "username": "u", "password": "p"},
        }
    )
    account = connect_account(
        ctx,
        body,
        AccountDeps(
            store=svc.sync.accounts,
            queue=svc.queue,
            key_id=get_settings().data_key_id,
            allow_private_hosts=True,
            connect=connect,
        ),
    )
    queued = receive_sync_messages(stack)
    assert [m["reason"] for m in queued] == ["connected"]
    request = SyncRequest(tenant_id="acme", account_id=account.account_id)
    # When a run with twenty seconds left syncs it (the stall lasts until the session's deadline,
    # 16 s in; fetches may start until 10 s in, time a loaded machine needs for the first batch)
    report = run_sync(request, svc, budget_for(20_000))
    # Then it stopped at its deadline with the first batch stored and its cursor saved, and
    # queued its continuation instead of failing
    assert report is not None
    assert not report.complete
    assert [m["reason"] for m in receive_sync_messages(stack)] == ["continuation"]
    [state] = svc.sync.accounts.folder_states("acme", account.account_id)
    assert (state.last_uid, state.messages_stored) == (2, 2)
    # When the continuation runs with a Lambda's time ahead of it and the server answers again
    # (a short budget here would only measure how fast a loaded machine stores four messages)
    source.stall_on = None
    report = run_sync(
        SyncRequest(tenant_id="acme", account_id=account.account_id, reason="continuation"),
        svc,
        budget_for(120_000),
    )
    # Then everything is stored and the account is idle
    assert report is not None
    assert report.complete
    [state] = svc.sync.accounts.folder_states("acme", account.account_id)
    assert (state.last_uid, state.messages_stored) == (6, 6)
    assert svc.sync.accounts.get_account("acme", account.account_id).sync.stage == SyncStage.IDLE


def receive_sync_messages(stack: Stack) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    url = stack.deployed.queue_urls["SyncQueue"]
    out = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in batch:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out
