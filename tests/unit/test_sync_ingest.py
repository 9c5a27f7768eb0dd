"""Batched ingest (`mailbridge.sync.ingest.ingest_batch`) against moto: what one fetch batch leaves
in the emails table and the mail bucket, and what it says must be announced. The fast tier for
`make mutate MODULES=sync/ingest.py` (issue 10's guarantees: a replayed prefix ends in the same
state, nothing announced twice, exactly-once emails and locations, quarantine with a reason,
threads, attachments); the engine around it is tests/unit/test_sync_engine.py's business, the
request counts and crash hooks of a whole sync tests/integration/test_sync_batches.py's.

Two emails tables and two buckets are made once per module from the template: `ref` holds what an
uninterrupted run stores, `run` what a crashed or replayed one does, for the same tenant, so the
two states can be compared item for item (ids derive from the tenant).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from moto import mock_aws

from local.resources import create_table
from local.template import load_template
from mailbridge import aws
from mailbridge.errors import Conflict
from mailbridge.mime import normalize
from mailbridge.providers.imap.models import FetchedMessage
from mailbridge.search import search_text
from mailbridge.store import emails as email_store
from mailbridge.store.batch import TransactionLost
from mailbridge.store.blobs import BlobStore, Upload
from mailbridge.store.emails import EmailStore, EmailWrites
from mailbridge.store.keys import (
    digest,
    location_sk,
    message_id_sk,
    quarantine_sk,
    subject_sk,
    thread_sk,
)
from mailbridge.sync import ingest as ingest_module
from mailbridge.sync.ingest import Ingested, Mailbox, email_id_for, flag_state, ingest, ingest_batch
from mailbridge.sync.threads import thread_id_for_root
from tests.fixtures import moto_transactions
from tests.integration.sync_harness import message

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template([ROOT / "template.yaml"])
ACCOUNT, OTHER_ACCOUNT = "acc_0123456789abcdef0123", "acc_fedcba9876543210fedc"
ADDRESS = "user@example.com"
WHEN = dt.datetime(2026, 11, 17, 10, tzinfo=dt.UTC)
UIDVALIDITY = 7
GARBAGE = b"\x00\x01 not a message \xff"


@dataclass
class Side:
    emails: EmailStore
    blobs: BlobStore


@pytest.fixture(scope="module")
def sides() -> Iterator[tuple[Side, Side]]:
    with mock_aws(), pytest.MonkeyPatch.context() as patch:
        moto_transactions.install(partial(patch.setattr, raising=False))
        aws.reset_clients()
        TEMPLATE.physical_ids["DataKey"] = boto3.client("kms", region_name="us-east-1").create_key()[
            "KeyMetadata"
        ]["KeyId"]
        client = boto3.client("dynamodb", region_name="us-east-1")
        s3 = boto3.client("s3", region_name="us-east-1")
        made = []
        for name in ("ref", "run"):
            TEMPLATE.physical_ids["EmailsTable"] = f"emails-{name}"
            table = create_table(client, TEMPLATE, "EmailsTable")
            s3.create_bucket(Bucket=f"mail-{name}")
            made.append(Side(EmailStore(table), BlobStore(f"mail-{name}")))
        yield made[0], made[1]
        aws.reset_clients()


@pytest.fixture
def ref(sides: tuple[Side, Side]) -> Side:
    return sides[0]


@pytest.fixture
def run(sides: tuple[Side, Side]) -> Side:
    return sides[1]


@pytest.fixture
def tenant() -> str:
    return "t" + uuid.uuid4().hex[:12]


def inbox(tenant: str, folder: str = "INBOX", account: str = ACCOUNT, *, sent: bool = False) -> Mailbox:
    return Mailbox(tenant, account, ADDRESS, folder, UIDVALIDITY, sent)


def fetched(uid: int, raw: bytes, flags: tuple[str, ...] = (), **ids: Any) -> FetchedMessage:
    return FetchedMessage(uid, flags, WHEN, 100 + uid, len(raw), raw, **ids)


def with_attachment(subject: str, msgid: str, payload: bytes, *, filename: str = "quote.pdf") -> bytes:
    data = base64.b64encode(payload).decode()
    return (
        "From: Carol Customer <carol@customer.example>\r\n"
        f"To: {ADDRESS}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{msgid}>\r\n"
        "Date: Tue, 17 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe quote is attached.\r\n"
        f'--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="{filename}"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{data}\r\n--b1--\r\n"
    ).encode()


def alternative(subject: str, msgid: str, text: str, html: str) -> bytes:
    return (
        "From: Carol Customer <carol@customer.example>\r\n"
        f"To: {ADDRESS}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{msgid}>\r\n"
        "Date: Tue, 17 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="a1"\r\n\r\n'
        f"--a1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
        f"--a1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--a1--\r\n"
    ).encode()


def conversation() -> list[FetchedMessage]:
    """A batch with every kind of message: a thread by references and one by subject, an
    attachment, the same message filed twice with other flags, mail that cannot be parsed, mail
    without a Message-ID."""
    return [
        fetched(1, with_attachment("Plan", "plan@customer.example", b"%PDF quote"), ("\\Seen",)),
        fetched(2, message("Re: Plan", msgid="re-plan@example.com", refs=["plan@customer.example"])),
        fetched(3, GARBAGE),
        fetched(
            4,
            message("RE: plan", msgid="late@customer.example", date="Wed, 18 Nov 2026 10:00:00 +0000"),
            ("\\Answered",),
        ),
        fetched(5, with_attachment("Plan", "plan@customer.example", b"%PDF quote"), ("\\Flagged",)),
        fetched(6, message("Other", msgid="other@customer.example")),
        fetched(7, b"From: carol@customer.example\r\nSubject: No id\r\n\r\nNo Message-ID here.\r\n"),
    ]


# ------------------------------------------------------------------------------ reading the state


def state(side: Side, tenant: str) -> dict[str, Any]:
    """Every item of the tenant (less the wall-clock `created_at`) and every object it owns."""
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(side.emails.table_name)
    items: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(f"TENANT#{tenant}")}
    while True:
        page = table.query(**kwargs)
        for item in page["Items"]:
            items[str(item["sk"])] = {k: v for k, v in item.items() if k != "created_at"}
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    s3 = boto3.client("s3", region_name="us-east-1")
    objects: dict[str, tuple[bytes, str]] = {}
    for prefix in ("raw", "att", "body", "quarantine"):
        listed = s3.list_objects_v2(Bucket=side.blobs.bucket, Prefix=f"{prefix}/{tenant}/")
        for entry in listed.get("Contents", []):
            got = s3.get_object(Bucket=side.blobs.bucket, Key=entry["Key"])
            objects[entry["Key"]] = (got["Body"].read(), got["ContentType"])
    return {"items": items, "objects": objects}


def email(side: Side, tenant: str, email_id: str | None) -> dict[str, Any]:
    assert email_id is not None
    item = side.emails.get_email(tenant, email_id)
    assert item is not None
    return item


def location(side: Side, tenant: str, uid: int | str, folder: str = "INBOX") -> dict[str, Any] | None:
    return side.emails.get_location(tenant, location_sk(ACCOUNT, folder, UIDVALIDITY, uid))


def raw_item(side: Side, tenant: str, sk: str) -> dict[str, Any] | None:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(side.emails.table_name)
    return table.get_item(Key={"pk": f"TENANT#{tenant}", "sk": sk}, ConsistentRead=True).get("Item")


def announced_ids(results: Sequence[Ingested]) -> list[str | None]:
    return [r.email_id for r in results if r.needs_announcement]


class Crash(Exception):
    """The invocation died right after a stage was written."""


class CrashingEmails(EmailStore):
    def __init__(self, table_name: str, after: str) -> None:
        super().__init__(table_name)
        self.after = after

    def write(self, writes: EmailWrites) -> None:
        super().write(writes)
        if self.after == "write":
            raise Crash

    def put_items(self, tenant_id: str, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        super().put_items(tenant_id, items)
        if self.after == "put_items":
            raise Crash


class CrashingBlobs(BlobStore):
    def put_many(self, uploads: Sequence[Upload]) -> None:
        super().put_many(uploads)
        raise Crash


# ------------------------------------------------------------------------------ one batch


def test_a_batch_stores_each_message_its_location_and_what_to_announce(run: Side, tenant: str) -> None:
    # Given a batch of a new message and a reply to it
    batch = [
        fetched(1, message("Plan", msgid="plan@customer.example", body="Budget for Q1."), ("\\Seen",)),
        fetched(2, message("Re: Plan", msgid="re@customer.example", refs=["plan@customer.example"])),
    ]
    # When it is ingested
    results = ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
    # Then each message is a new email at a new location, to be announced with what was stored
    first, second = (email(run, tenant, r.email_id) for r in results)
    thread = thread_id_for_root(tenant, "plan@customer.example")
    assert [(r.new_location, r.needs_announcement, r.quarantined, r.reason) for r in results] == [
        (True, True, False, None),
        (True, True, False, None),
    ]
    assert results[0].announcement == {
        "thread_id": thread,
        "message_id": "plan@customer.example",
        "direction": "inbound",
        "date": "2026-11-17T10:00:00+00:00",
    }
    assert (first["thread_id"], second["thread_id"]) == (thread, thread)
    # And the email holds the parsed message, its flags, where it is and its raw bytes
    parsed = normalize(batch[0].raw, internal_date=WHEN).message
    email_id = str(first["email_id"])
    assert email_id == email_id_for(tenant, parsed, batch[0].raw)
    raw_key = f"raw/{tenant}/{ACCOUNT}/{email_id}.eml"
    expected = {
        "email_id": email_id,
        "thread_id": thread,
        "message_id": "plan@customer.example",
        "in_reply_to": None,
        "references": [],
        "date": "2026-11-17T10:00:00+00:00",
        "date_source": parsed.date_source,
        "subject": "Plan",
        "from": [{"name": "Carol Customer", "address": "carol@customer.example"}],
        "sender": None,
        "reply_to": [],
        "to": [a.model_dump() for a in parsed.to],
        "cc": [],
        "bcc": [],
        "snippet": parsed.snippet,
        "size": parsed.size,
        "attachments": [],
        "has_attachments": False,
        "attachments_stored": True,
        "bounce": None,
        "feedback": None,
        "auto_submitted": parsed.auto_submitted,
        "precedence": parsed.precedence,
        "list": None,
        "headers_of_interest": parsed.headers_of_interest,
        "defects": parsed.defects,
        "direction": "inbound",
        "deleted": False,
        "announced": False,
        "raw_key": raw_key,
        "search": search_text(
            ["Plan", "Carol Customer carol@customer.example", parsed.snippet, parsed.text_body]
        ),
        "text_body": parsed.text_body,
        "html_body": parsed.html_body,
        "calendar": None,
        "read": True,
        "flagged": False,
        "answered": False,
        "loc_keys": {location_sk(ACCOUNT, "INBOX", UIDVALIDITY, 1)},
        "accounts": {ACCOUNT},
        "folders": {f"{ACCOUNT}:INBOX"},
        "gsi1pk": f"TENANT#{tenant}",
        "gsi1sk": f"2026-11-17T10:00:00+00:00#{email_id}",
        "gsi2pk": f"TENANT#{tenant}#THREAD#{thread}",
        "gsi2sk": f"2026-11-17T10:00:00+00:00#{email_id}",
        "gsi3pk": f"TENANT#{tenant}#MSGID#{digest('plan@customer.example')}",
    }
    assert {k: first.get(k) for k in expected} == expected
    assert set(expected) <= set(first)
    assert "body_key" not in first
    assert "budget" in str(first["search"]).split()
    assert second["in_reply_to"] == "plan@customer.example"
    assert second["references"] == ["plan@customer.example"]
    s3 = boto3.client("s3", region_name="us-east-1")
    got = s3.get_object(Bucket=run.blobs.bucket, Key=raw_key)
    assert (got["Body"].read(), got["ContentType"]) == (batch[0].raw, "message/rfc822")
    # And the location names the email, the mailbox, the UID, its sorted flags and modseq
    assert {k: v for k, v in (location(run, tenant, 1) or {}).items() if k not in {"pk", "sk"}} == {
        "email_id": email_id,
        "account_id": ACCOUNT,
        "folder": "INBOX",
        "uidvalidity": UIDVALIDITY,
        "uid": 1,
        "flags": ["\\Seen"],
        "modseq": 101,
        "gsi1pk": f"TENANT#{tenant}#ACC#{ACCOUNT}",
        "gsi1sk": f"2026-11-17T10:00:00+00:00#{email_id}",
    }
    # And both Message-IDs and the base subject point at the thread, which lists both emails
    for msgid in ("plan@customer.example", "re@customer.example"):
        assert (raw_item(run, tenant, message_id_sk(msgid)) or {}).get("thread_id") == thread
    subject = raw_item(run, tenant, subject_sk(ACCOUNT, "Plan")) or {}
    assert (subject.get("thread_id"), subject.get("date")) == (thread, "2026-11-17T10:00:00+00:00")
    members = raw_item(run, tenant, thread_sk(thread)) or {}
    assert members.get("members") == {first["email_id"], second["email_id"]}


def test_ingest_of_one_is_a_batch_of_one(run: Side, tenant: str) -> None:
    result = ingest(
        inbox(tenant), fetched(1, message("One", msgid="one@customer.example")), run.emails, run.blobs
    )
    assert (result.new_location, result.needs_announcement) == (True, True)
    assert email(run, tenant, result.email_id)["subject"] == "One"


def test_the_same_message_twice_in_a_batch_is_one_email_with_both_locations_and_the_later_flags(
    run: Side, tenant: str
) -> None:
    raw = message("Twice", msgid="twice@customer.example")
    results = ingest_batch(
        inbox(tenant), [fetched(1, raw, ("\\Seen",)), fetched(2, raw, ("\\Flagged",))], run.emails, run.blobs
    )
    assert results[0].email_id == results[1].email_id
    assert [(r.new_location, r.needs_announcement) for r in results] == [(True, True), (True, True)]
    assert results[0].announcement == results[1].announcement
    stored = email(run, tenant, results[0].email_id)
    assert stored["loc_keys"] == {location_sk(ACCOUNT, "INBOX", UIDVALIDITY, u) for u in (1, 2)}
    assert (stored["read"], stored["flagged"]) == (False, True)
    assert (location(run, tenant, 2) or {}).get("email_id") == results[0].email_id


def test_the_same_location_twice_in_a_batch_is_stored_quarantined_or_replayed_once(
    run: Side, tenant: str
) -> None:
    raw = message("Dup", msgid="dup@customer.example")
    once = Ingested(None, new_location=False, needs_announcement=False)
    results = ingest_batch(inbox(tenant), [fetched(1, raw), fetched(1, raw)], run.emails, run.blobs)
    assert results[1] == once
    assert email(run, tenant, results[0].email_id)["loc_keys"] == {
        location_sk(ACCOUNT, "INBOX", UIDVALIDITY, 1)
    }
    replayed = ingest_batch(inbox(tenant), [fetched(1, raw), fetched(1, raw)], run.emails, run.blobs)
    assert replayed == [
        Ingested(results[0].email_id, False, True, announcement=results[0].announcement),
        once,
    ]
    garbage = ingest_batch(inbox(tenant), [fetched(2, GARBAGE), fetched(2, GARBAGE)], run.emails, run.blobs)
    assert [r.quarantined for r in garbage] == [True, False]
    assert garbage[1] == once


# ------------------------------------------------------------------------------ replays


def test_replaying_any_prefix_of_a_batch_ends_in_the_state_of_one_run(ref: Side, run: Side) -> None:
    batch = conversation()
    for cut in range(1, len(batch) + 1):
        tenant = f"prefix{cut}-{uuid.uuid4().hex[:8]}"
        ingest_batch(inbox(tenant), batch, ref.emails, ref.blobs)
        ingest_batch(inbox(tenant), batch[:cut], run.emails, run.blobs)
        again = ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
        assert state(run, tenant) == state(ref, tenant), f"prefix of {cut}"
        # Nothing is stored yet announced, so every email is still to be announced, once a message
        assert {r.email_id for r in again if r.needs_announcement} == {
            r.email_id for r in again if r.email_id is not None and not r.quarantined
        }


@pytest.mark.parametrize("after", ["blobs", "write", "put_items"])
def test_a_crash_after_any_stage_then_a_replay_ends_in_the_state_of_one_run(
    ref: Side, run: Side, after: str
) -> None:
    batch = conversation()
    tenant = f"crash-{after}-{uuid.uuid4().hex[:8]}"
    expected = ingest_batch(inbox(tenant), batch, ref.emails, ref.blobs)
    emails = CrashingEmails(run.emails.table_name, after)
    blobs = CrashingBlobs(run.blobs.bucket) if after == "blobs" else run.blobs
    with pytest.raises(Crash):
        ingest_batch(inbox(tenant), batch, emails, blobs)
    replayed = ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
    assert state(run, tenant) == state(ref, tenant)
    # And the replay still announces every email, with what the uninterrupted run would have
    assert [(r.email_id, r.announcement) for r in replayed if r.needs_announcement] == [
        (r.email_id, r.announcement) for r in expected if r.needs_announcement
    ]


def test_an_announced_email_is_not_announced_again_by_a_replay_or_another_folder(
    run: Side, tenant: str
) -> None:
    raw = message("Once", msgid="once@customer.example")
    first = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    # A replay before the announcement still asks for it, with the same announcement
    again = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    assert [(r.new_location, r.needs_announcement, r.announcement) for r in again] == [
        (False, True, first[0].announcement)
    ]
    run.emails.mark_announced(tenant, [str(first[0].email_id)])
    # Once announced: neither a replay nor the same message filed in another folder asks again
    replay = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    archived = ingest_batch(inbox(tenant, "Archive"), [fetched(9, raw, ("\\Seen",))], run.emails, run.blobs)
    assert [
        (r.email_id, r.new_location, r.needs_announcement, r.announcement) for r in replay + archived
    ] == [
        (first[0].email_id, False, False, None),
        (first[0].email_id, True, False, None),
    ]
    # And the email gains the second location and the newest flags, without being created again
    stored = email(run, tenant, first[0].email_id)
    assert stored["loc_keys"] == {
        location_sk(ACCOUNT, "INBOX", UIDVALIDITY, 1),
        location_sk(ACCOUNT, "Archive", UIDVALIDITY, 9),
    }
    assert stored["folders"] == {f"{ACCOUNT}:INBOX", f"{ACCOUNT}:Archive"}
    assert (stored["read"], stored["version"], stored["announced"]) == (True, 1, True)
    assert stored.get("gsi4pk") is None


def test_the_same_message_in_another_mailbox_of_the_tenant_is_attached_and_announced_until_it_is(
    run: Side, tenant: str
) -> None:
    raw = message("Shared", msgid="shared@customer.example")
    first = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    other = ingest_batch(inbox(tenant, account=OTHER_ACCOUNT), [fetched(4, raw)], run.emails, run.blobs)
    assert [(r.email_id, r.new_location, r.needs_announcement, r.announcement) for r in other] == [
        (first[0].email_id, True, True, first[0].announcement)
    ]
    stored = email(run, tenant, first[0].email_id)
    assert stored["accounts"] == {ACCOUNT, OTHER_ACCOUNT}
    assert (stored["read"], stored["version"]) == (False, 1)
    assert stored.get("gsi4pk") is not None


def test_a_location_stored_under_another_email_id_is_finished_from_that_email(run: Side, tenant: str) -> None:
    # Given a location an earlier version stored under an email id normalizing no longer gives
    raw = message("Moved", msgid="moved@customer.example")
    first = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    old_id = str(first[0].email_id)
    older = message("Older", msgid="older@customer.example")
    loc = location_sk(ACCOUNT, "INBOX", UIDVALIDITY, 2)
    run.emails.put_items(tenant, [(loc, {"email_id": old_id, "uid": 2})])
    # When that location is replayed with other content
    replay = ingest_batch(inbox(tenant), [fetched(2, older)], run.emails, run.blobs)
    # Then the stored email is attached to and announced as it is, nothing new is created
    assert [(r.email_id, r.new_location, r.needs_announcement, r.announcement) for r in replay] == [
        (old_id, False, True, first[0].announcement)
    ]
    assert loc in email(run, tenant, old_id)["loc_keys"]
    older_id = email_id_for(tenant, normalize(older, internal_date=WHEN).message, older)
    assert run.emails.get_email(tenant, older_id) is None
    # And a location whose email is gone is left as it is, with nothing to announce
    gone = location_sk(ACCOUNT, "INBOX", UIDVALIDITY, 3)
    run.emails.put_items(tenant, [(gone, {"email_id": "em_gone", "uid": 3})])
    assert ingest_batch(inbox(tenant), [fetched(3, older)], run.emails, run.blobs) == [
        Ingested("em_gone", new_location=False, needs_announcement=False)
    ]


def test_a_replayed_location_of_an_email_created_earlier_in_the_batch_joins_it(
    run: Side, tenant: str
) -> None:
    # Given a location stored under the id of an email the same batch creates first
    raw = message("Join", msgid="join@customer.example")
    email_id = email_id_for(tenant, normalize(raw, internal_date=WHEN).message, raw)
    loc = location_sk(ACCOUNT, "INBOX", UIDVALIDITY, 2)
    run.emails.put_items(tenant, [(loc, {"email_id": email_id, "uid": 2})])
    # When the batch holds the message at a new UID and then at the stored one
    results = ingest_batch(inbox(tenant), [fetched(1, raw), fetched(2, raw)], run.emails, run.blobs)
    # Then the email is created once with both locations, and announced for the first only
    assert [(r.email_id, r.new_location, r.needs_announcement) for r in results] == [
        (email_id, True, True),
        (email_id, False, False),
    ]
    assert email(run, tenant, email_id)["loc_keys"] == {location_sk(ACCOUNT, "INBOX", UIDVALIDITY, 1), loc}


class Requests:
    """The AWS requests made through the cached clients, by operation."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.written: list[str] = []  # the sort keys each TransactWriteItems action writes

    def before(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def transaction(self, params: dict[str, Any], **_: Any) -> None:
        for action in params.get("TransactItems", []):
            (op,) = action.values()
            sk = (op["Item"] if "Item" in op else op["Key"])["sk"]
            self.written.append(str(sk["S"] if isinstance(sk, dict) else sk))


@pytest.fixture
def requests(sides: tuple[Side, Side]) -> Iterator[Requests]:
    counter = Requests()
    clients = [*aws.dynamodb_clients(), aws.s3()]
    transactions = "before-parameter-build.dynamodb.TransactWriteItems"
    for client in clients:
        client.meta.events.register("before-call", counter.before)
        client.meta.events.register(transactions, counter.transaction)
    yield counter
    for client in clients:
        client.meta.events.unregister("before-call", counter.before)
        client.meta.events.unregister(transactions, counter.transaction)


def test_a_replayed_batch_is_read_in_one_request_and_no_email_one_by_one(
    run: Side, tenant: str, requests: Requests
) -> None:
    # Given a stored batch, one message in it twice
    raws = [message(f"Order {n}", msgid=f"order-{n}@customer.example") for n in range(3)]
    batch = [fetched(n + 1, raw) for n, raw in enumerate(raws)] + [fetched(4, raws[0])]
    ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
    # When it is replayed
    requests.calls.clear()
    ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
    # Then what is stored is read in one BatchGetItem, and no email on its own
    assert (requests.calls["BatchGetItem"], requests.calls["GetItem"]) == (1, 0)
    # And two locations stored under an email id normalizing no longer gives read that email once
    old_id = email_id_for(tenant, normalize(raws[0], internal_date=WHEN).message, raws[0])
    other = message("Other", msgid="other@customer.example")
    moved = [location_sk(ACCOUNT, "INBOX", UIDVALIDITY, uid) for uid in (8, 9)]
    run.emails.put_items(tenant, [(sk, {"email_id": old_id, "uid": 8}) for sk in moved])
    requests.calls.clear()
    results = ingest_batch(inbox(tenant), [fetched(8, other), fetched(9, other)], run.emails, run.blobs)
    assert [r.email_id for r in results] == [old_id, old_id]
    assert requests.calls["GetItem"] == 1
    assert set(moved) <= email(run, tenant, old_id)["loc_keys"]


def test_a_subject_already_held_by_the_thread_at_that_date_is_not_written_again(
    run: Side, tenant: str, requests: Requests
) -> None:
    # Given a stored message
    ingest_batch(
        inbox(tenant), [fetched(1, message("Offer", msgid="offer@customer.example"))], run.emails, run.blobs
    )
    # When a reply by reference, dated as it, is ingested
    requests.written.clear()
    reply = message("Re: Offer", msgid="re-offer@example.com", refs=["offer@customer.example"])
    results = ingest_batch(inbox(tenant), [fetched(2, reply)], run.emails, run.blobs)
    # Then its Message-ID, its thread membership and the email are written, not the subject again
    thread = thread_id_for_root(tenant, "offer@customer.example")
    assert sorted(requests.written) == sorted(
        [message_id_sk("re-offer@example.com"), thread_sk(thread), f"EMAIL#{results[0].email_id}"]
    )
    subject = raw_item(run, tenant, subject_sk(ACCOUNT, "Offer")) or {}
    assert (subject.get("thread_id"), subject.get("date")) == (thread, WHEN.isoformat())


# ------------------------------------------------------------------------------ concurrent writers


class StaleReads(EmailStore):
    """A plan read that misses what another writer stores meanwhile, `stale` times."""

    def __init__(self, table_name: str, stale: int) -> None:
        super().__init__(table_name)
        self.stale = stale

    def plan_read(self, tenant_id: str, sks: Any) -> dict[str, Any]:
        found = super().plan_read(tenant_id, sks)
        if self.stale > 0:
            self.stale -= 1
            return {sk: v for sk, v in found.items() if not sk.startswith(("EMAIL#", "MSGID#", "SUBJ#"))}
        return found


def ingest_after_stale_reads(
    run: Side, tenant: str, item: FetchedMessage, stale: int
) -> tuple[list[Ingested], list[float]]:
    """`item` ingested by OTHER_ACCOUNT's mailbox whose first `stale` plan reads miss what another
    writer stored: the results and the pauses taken between attempts."""
    sleeps: list[float] = []
    results = ingest_batch(
        inbox(tenant, account=OTHER_ACCOUNT),
        [item],
        StaleReads(run.emails.table_name, stale=stale),
        run.blobs,
        sleep=sleeps.append,
    )
    return results, sleeps


def test_an_email_created_by_a_concurrent_writer_is_attached_to_not_created_again(
    run: Side, tenant: str
) -> None:
    # Given an email another mailbox stored after this batch's plan read
    raw = message("Race", msgid="race@customer.example")
    first = ingest_batch(inbox(tenant), [fetched(1, raw, ("\\Seen",))], run.emails, run.blobs)
    # When this batch's conditional create loses to it
    results, sleeps = ingest_after_stale_reads(run, tenant, fetched(5, raw), stale=1)
    # Then the batch is planned again after a pause and attaches to the winner
    assert sleeps == [0.05]
    assert [(r.email_id, r.new_location) for r in results] == [(first[0].email_id, True)]
    stored = email(run, tenant, first[0].email_id)
    assert stored["version"] == 1
    assert stored["accounts"] == {ACCOUNT, OTHER_ACCOUNT}
    assert stored["read"] is False


def test_writers_that_keep_winning_leave_the_batch_to_the_queue_after_its_attempts(
    run: Side, tenant: str
) -> None:
    raw = message("Race", msgid="race@customer.example")
    ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    sleeps: list[float] = []
    with pytest.raises(Conflict) as raised:
        ingest_batch(
            inbox(tenant, account=OTHER_ACCOUNT),
            [fetched(5, raw)],
            StaleReads(run.emails.table_name, stale=100),
            run.blobs,
            sleep=sleeps.append,
        )
    assert (raised.value.code, raised.value.message) == (
        "conflict",
        "concurrent writers kept winning; the batch is retried later",
    )
    assert sleeps == [0.05, 0.1, 0.2, 0.4]
    assert run.emails.get_location(tenant, location_sk(OTHER_ACCOUNT, "INBOX", UIDVALIDITY, 5)) is None


def test_a_thread_at_its_member_limit_is_marked_overflowing_and_still_gets_the_email(
    run: Side, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(email_store, "THREAD_MEMBERS_MAX", 2)
    root = "root@customer.example"
    replies = [message(f"Re: Root {n}", msgid=f"r{n}@customer.example", refs=[root]) for n in range(3)]
    ingest_batch(
        inbox(tenant),
        [fetched(1, message("Root", msgid=root)), fetched(2, replies[0])],
        run.emails,
        run.blobs,
    )
    sleeps: list[float] = []
    results = ingest_batch(
        inbox(tenant), [fetched(3, replies[1])], run.emails, run.blobs, sleep=sleeps.append
    )
    thread = thread_id_for_root(tenant, root)
    assert sleeps == []
    assert email(run, tenant, results[0].email_id)["thread_id"] == thread
    members = raw_item(run, tenant, thread_sk(thread)) or {}
    assert (len(members["members"]), members.get("overflow")) == (2, True)


class FillsAfterFirstLoss(EmailStore):
    """A store whose first lost transaction is followed by another writer's `fill`."""

    def __init__(self, table_name: str, fill: Callable[[], None]) -> None:
        super().__init__(table_name)
        self.fill = fill
        self.losses = 0

    def write(self, writes: EmailWrites) -> None:
        try:
            super().write(writes)
        except TransactionLost:
            self.losses += 1
            if self.losses == 1:
                self.fill()
            raise


def test_threads_found_full_one_after_the_other_are_all_marked_overflowing(
    run: Side, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a thread at its member limit and one a member short of it
    monkeypatch.setattr(email_store, "THREAD_MEMBERS_MAX", 2)
    full = [
        message("A", msgid="a@customer.example"),
        message("Re: A", msgid="a1@x.example", refs=["a@customer.example"]),
    ]
    ingest_batch(
        inbox(tenant),
        [fetched(1, full[0]), fetched(2, full[1]), fetched(3, message("B", msgid="b@customer.example"))],
        run.emails,
        run.blobs,
    )

    def another_writer_fills_b() -> None:
        reply = message("Re: B", msgid="b1@x.example", refs=["b@customer.example"])
        ingest_batch(inbox(tenant, account=OTHER_ACCOUNT), [fetched(1, reply)], run.emails, run.blobs)

    # When a batch replies to both, and the second fills up while the first is found full
    batch = [
        fetched(4, message("Re: A", msgid="a2@x.example", refs=["a@customer.example"])),
        fetched(5, message("Re: B", msgid="b2@x.example", refs=["b@customer.example"])),
    ]
    sleeps: list[float] = []
    store = FillsAfterFirstLoss(run.emails.table_name, another_writer_fills_b)
    results = ingest_batch(inbox(tenant), batch, store, run.blobs, sleep=sleeps.append)
    # Then both threads are marked overflowing and both emails are stored in them
    roots = ["a@customer.example", "b@customer.example"]
    assert [email(run, tenant, r.email_id)["thread_id"] for r in results] == [
        thread_id_for_root(tenant, r) for r in roots
    ]
    for root in roots:
        assert (raw_item(run, tenant, thread_sk(thread_id_for_root(tenant, root))) or {}).get(
            "overflow"
        ) is True
    assert (store.losses, sleeps) == (2, [])


def test_a_lost_create_in_a_full_thread_pauses_and_plans_again_like_any_lost_condition(
    run: Side, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a full thread, and a reply to it another mailbox stored after this batch's plan read
    monkeypatch.setattr(email_store, "THREAD_MEMBERS_MAX", 2)
    root = "full-root@customer.example"
    thread = [message("Full", msgid=root), message("Re: Full", msgid="full-1@x.example", refs=[root])]
    ingest_batch(inbox(tenant), [fetched(1, thread[0]), fetched(2, thread[1])], run.emails, run.blobs)
    reply = message("Re: Full", msgid="full-2@x.example", refs=[root])
    first = ingest_batch(inbox(tenant), [fetched(3, reply)], run.emails, run.blobs)
    # When this batch's create of it loses, and so does its thread's member limit, in one transaction
    results, sleeps = ingest_after_stale_reads(run, tenant, fetched(7, reply), stale=1)
    # Then it pauses and plans again from a fresh read (not as if only the thread were full), and attaches
    assert sleeps == [0.05]
    assert [(r.email_id, r.new_location) for r in results] == [(first[0].email_id, True)]
    assert email(run, tenant, first[0].email_id)["accounts"] == {ACCOUNT, OTHER_ACCOUNT}


# ------------------------------------------------------------------------------ quarantine


def test_mail_that_cannot_be_parsed_is_quarantined_with_its_reason_and_bytes(run: Side, tenant: str) -> None:
    results = ingest_batch(
        inbox(tenant, "Old Mail"),
        [fetched(3, GARBAGE), fetched(4, message("Fine", msgid="fine@customer.example"))],
        run.emails,
        run.blobs,
    )
    bad = results[0]
    assert (bad.email_id, bad.new_location, bad.needs_announcement, bad.quarantined) == (
        None,
        False,
        False,
        True,
    )
    assert bad.reason
    assert results[1].quarantined is False
    name = f"{digest('Old Mail', 12)}-{UIDVALIDITY}-3"
    key = f"quarantine/{tenant}/{ACCOUNT}/{name}.eml"
    record = raw_item(run, tenant, quarantine_sk(ACCOUNT, "Old Mail", UIDVALIDITY, 3)) or {}
    assert {k: v for k, v in record.items() if k not in {"pk", "sk", "created_at", "detail"}} == {
        "reason": bad.reason,
        "raw_key": key,
        "size": len(GARBAGE),
        "folder": "Old Mail",
        "uid": 3,
    }
    assert record["detail"]
    got = boto3.client("s3", region_name="us-east-1").get_object(Bucket=run.blobs.bucket, Key=key)
    assert (got["Body"].read(), got["ContentType"]) == (GARBAGE, "message/rfc822")
    assert location(run, tenant, 3, "Old Mail") is None


def test_each_message_that_cannot_be_parsed_in_a_batch_is_quarantined(run: Side, tenant: str) -> None:
    other = b"\x00\x02 nor this one \xfe"
    results = ingest_batch(inbox(tenant), [fetched(3, GARBAGE), fetched(4, other)], run.emails, run.blobs)
    assert [(r.quarantined, r.reason is not None) for r in results] == [(True, True), (True, True)]
    for uid, raw in ((3, GARBAGE), (4, other)):
        assert (raw_item(run, tenant, quarantine_sk(ACCOUNT, "INBOX", UIDVALIDITY, uid)) or {}).get(
            "size"
        ) == len(raw)


def test_a_graph_message_is_located_and_quarantined_by_its_own_id(run: Side, tenant: str) -> None:
    good = fetched(
        0,
        message("Graph", msgid="graph@customer.example"),
        location_id="AAMkAGI=",
        provider_thread_id="conv-1",
    )
    bad = fetched(0, GARBAGE, location_id="AAMkBAD=")
    results = ingest_batch(inbox(tenant), [good, bad], run.emails, run.blobs)
    loc = location(run, tenant, "AAMkAGI=") or {}
    assert (loc.get("email_id"), loc.get("provider_id"), loc.get("uid")) == (
        results[0].email_id,
        "AAMkAGI=",
        0,
    )
    stored = email(run, tenant, results[0].email_id)
    assert stored["thread_id"] == "th_" + digest(f"{tenant}\nconv\n{ACCOUNT}\nconv-1", 24)
    assert (raw_item(run, tenant, message_id_sk("graph@customer.example")) or {}).get("thread_id") == stored[
        "thread_id"
    ]
    record = raw_item(run, tenant, quarantine_sk(ACCOUNT, "INBOX", UIDVALIDITY, "AAMkBAD=")) or {}
    name = f"{digest('INBOX', 12)}-{UIDVALIDITY}-{digest('AAMkBAD=', 24)}"
    assert record.get("raw_key") == f"quarantine/{tenant}/{ACCOUNT}/{name}.eml"


def test_a_gmail_location_keeps_the_providers_ids_and_sorted_labels(run: Side, tenant: str) -> None:
    msg = fetched(
        12,
        message("Gmail", msgid="gmail@customer.example"),
        provider_id="18c2f",
        provider_thread_id="18c2e",
        labels=("UNREAD", "INBOX"),
    )
    results = ingest_batch(inbox(tenant), [msg], run.emails, run.blobs)
    loc = location(run, tenant, 12) or {}
    assert {k: loc.get(k) for k in ("email_id", "provider_id", "provider_thread_id", "labels", "uid")} == {
        "email_id": results[0].email_id,
        "provider_id": "18c2f",
        "provider_thread_id": "18c2e",
        "labels": ["INBOX", "UNREAD"],
        "uid": 12,
    }


# ------------------------------------------------------------------------------ threads


def test_threads_follow_references_then_the_subject_of_replies_and_the_newest_holds_the_subject(
    run: Side, tenant: str
) -> None:
    # Given two conversations under one subject, the older one seen last in the batch
    batch = [
        fetched(1, message("Offer", msgid="new@customer.example", date="Fri, 20 Nov 2026 10:00:00 +0000")),
        fetched(2, message("Offer", msgid="old@customer.example", date="Mon, 16 Nov 2026 10:00:00 +0000")),
    ]
    ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
    newer, older = (thread_id_for_root(tenant, f"{n}@customer.example") for n in ("new", "old"))
    assert newer != older
    subject = raw_item(run, tenant, subject_sk(ACCOUNT, "Offer")) or {}
    assert (subject.get("thread_id"), subject.get("date")) == (newer, "2026-11-20T10:00:00+00:00")
    # When a reply without references arrives in a later batch, with a reply to the older by reference
    later = [
        fetched(3, message("Re: Offer", msgid="reply@example.com", date="Sat, 21 Nov 2026 10:00:00 +0000")),
        fetched(4, message("Re: Offer", msgid="ref@example.com", refs=["old@customer.example"])),
    ]
    results = ingest_batch(inbox(tenant), later, run.emails, run.blobs)
    # Then the first joins the newest conversation of its subject, the second its reference's
    assert [email(run, tenant, r.email_id)["thread_id"] for r in results] == [newer, older]
    subject = raw_item(run, tenant, subject_sk(ACCOUNT, "Offer")) or {}
    assert (subject.get("thread_id"), subject.get("date")) == (newer, "2026-11-21T10:00:00+00:00")


def test_a_reply_seen_before_its_parent_in_one_batch_shares_its_thread(run: Side, tenant: str) -> None:
    batch = [
        fetched(1, message("Re: Hi", msgid="child@example.com", refs=["parent@customer.example"])),
        fetched(2, message("Hi", msgid="parent@customer.example")),
    ]
    results = ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
    threads = {email(run, tenant, r.email_id)["thread_id"] for r in results}
    assert threads == {thread_id_for_root(tenant, "parent@customer.example")}


def test_a_message_an_earlier_one_of_the_batch_referenced_joins_that_ones_thread(
    run: Side, tenant: str
) -> None:
    # Given a reply naming its root and its parent, and then the parent itself, with another subject
    root, parent = "root@customer.example", "parent@customer.example"
    batch = [
        fetched(1, message("Re: Plan", msgid="child@example.com", refs=[root, parent])),
        fetched(2, message("Plan v2", msgid=parent)),
    ]
    results = ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
    # Then the parent joins the thread the reply registered it to (the root's), not one of its own
    assert [email(run, tenant, r.email_id)["thread_id"] for r in results] == [
        thread_id_for_root(tenant, root)
    ] * 2


def test_messages_without_any_message_id_each_start_their_own_thread(run: Side, tenant: str) -> None:
    bare = [
        b"From: a@customer.example\r\nSubject: One\r\n\r\nOne.\r\n",
        b"From: a@customer.example\r\nSubject: Two\r\n\r\nTwo.\r\n",
    ]
    results = ingest_batch(inbox(tenant), [fetched(1, bare[0]), fetched(2, bare[1])], run.emails, run.blobs)
    assert [email(run, tenant, r.email_id)["thread_id"] for r in results] == [
        thread_id_for_root(tenant, str(r.email_id)) for r in results
    ]


def test_a_reply_in_the_same_batch_joins_the_thread_of_its_subject(run: Side, tenant: str) -> None:
    batch = [
        fetched(1, message("Quote", msgid="quote@customer.example")),
        fetched(
            2, message("Re: Quote", msgid="re-quote@example.com", date="Wed, 18 Nov 2026 10:00:00 +0000")
        ),
    ]
    results = ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
    assert {email(run, tenant, r.email_id)["thread_id"] for r in results} == {
        thread_id_for_root(tenant, "quote@customer.example")
    }
    subject = raw_item(run, tenant, subject_sk(ACCOUNT, "Quote")) or {}
    assert subject.get("date") == "2026-11-18T10:00:00+00:00"


# ------------------------------------------------------------------------------ attachments, bodies


def test_a_small_message_keeps_its_attachments_inside_the_raw_message(run: Side, tenant: str) -> None:
    raw = with_attachment("Quote", "quote@customer.example", b"%PDF small")
    results = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    stored = email(run, tenant, results[0].email_id)
    assert (stored["has_attachments"], stored["attachments_stored"]) == (True, False)
    assert [(a["filename"], a["content_type"], a["size"]) for a in stored["attachments"]] == [
        ("quote.pdf", "application/pdf", len(b"%PDF small"))
    ]
    objects = state(run, tenant)["objects"]
    assert [k for k in objects if k.startswith("att/")] == []


@pytest.mark.parametrize("over", [True, False])
def test_a_message_over_the_lazy_limit_has_its_attachments_stored_now(
    run: Side, tenant: str, monkeypatch: pytest.MonkeyPatch, over: bool
) -> None:
    raw = with_attachment("Big", "big@customer.example", b"%PDF big")
    monkeypatch.setattr(ingest_module, "LAZY_ATTACHMENTS_MAX_BYTES", len(raw) - 1 if over else len(raw))
    results = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    stored = email(run, tenant, results[0].email_id)
    assert stored["attachments_stored"] is over
    objects = state(run, tenant)["objects"]
    meta = stored["attachments"][0]
    key = f"att/{tenant}/{stored['email_id']}/{meta['id']}"
    assert (objects.get(key) == (b"%PDF big", "application/pdf")) is over
    assert len([k for k in objects if k.startswith("att/")]) == (1 if over else 0)


@pytest.mark.parametrize("over", [True, False])
def test_bodies_over_the_inline_limit_live_in_the_bucket(
    run: Side, tenant: str, monkeypatch: pytest.MonkeyPatch, over: bool
) -> None:
    raw = alternative("Long", "long@customer.example", "Plain words.", "<p>Rich words.</p>")
    parsed = normalize(raw, internal_date=WHEN).message
    size = len(parsed.text_body or "") + len(parsed.html_body or "")
    monkeypatch.setattr(ingest_module, "INLINE_BODY_LIMIT", size - 1 if over else size)
    results = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    stored = email(run, tenant, results[0].email_id)
    key = f"body/{tenant}/{stored['email_id']}.json"
    if over:
        assert stored["body_key"] == key
        assert {"text_body", "html_body"}.isdisjoint(stored)
        body, content_type = state(run, tenant)["objects"][key]
        assert json.loads(body) == {
            "text_body": parsed.text_body,
            "html_body": parsed.html_body,
            "calendar": None,
        }
        assert content_type == "application/json"
    else:
        assert "body_key" not in stored
        assert (stored["text_body"], stored["html_body"]) == (parsed.text_body, parsed.html_body)


# ------------------------------------------------------------------------------ direction, ids, flags


def test_mail_is_outbound_in_the_sent_folder_or_from_the_accounts_address_in_any_case(
    run: Side, tenant: str
) -> None:
    from_us = message(
        "Ours", msgid="ours@example.com", sender="User@Example.COM", to="carol@customer.example"
    )
    sent = message(
        "Alias", msgid="alias@example.com", sender="sales@example.com", to="carol@customer.example"
    )
    theirs = message("Theirs", msgid="theirs@customer.example")
    results = ingest_batch(inbox(tenant), [fetched(1, from_us), fetched(2, theirs)], run.emails, run.blobs)
    results += ingest_batch(inbox(tenant, "Sent", sent=True), [fetched(1, sent)], run.emails, run.blobs)
    assert [email(run, tenant, r.email_id)["direction"] for r in results] == [
        "outbound",
        "inbound",
        "outbound",
    ]
    assert [(r.announcement or {}).get("direction") for r in results] == ["outbound", "inbound", "outbound"]


def test_a_message_without_a_date_is_dated_by_its_internal_date_in_utc(run: Side, tenant: str) -> None:
    raw = (
        b"From: carol@customer.example\r\nMessage-ID: <nodate@customer.example>\r\n"
        b"Subject: Undated\r\n\r\nHi.\r\n"
    )
    tokyo = WHEN.astimezone(dt.timezone(dt.timedelta(hours=9)))
    message_at = FetchedMessage(1, (), tokyo, 5, len(raw), raw)
    results = ingest_batch(inbox(tenant), [message_at], run.emails, run.blobs)
    stored = email(run, tenant, results[0].email_id)
    assert (stored["date"], stored["date_source"]) == (WHEN.isoformat(), "internal")
    # The subject's date is compared as a string with later ones: it is kept in UTC too
    subject = raw_item(run, tenant, subject_sk(ACCOUNT, "Undated")) or {}
    assert subject.get("date") == WHEN.isoformat()


@pytest.fixture
def tokyo_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is not UTC."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("tokyo_machine")
def test_dates_are_stored_in_utc_whatever_the_machines_zone(run: Side, tenant: str) -> None:
    raw = message("Zone", msgid="zone@customer.example", date="Tue, 17 Nov 2026 19:00:00 +0900")
    results = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    stored = email(run, tenant, results[0].email_id)
    at = "2026-11-17T10:00:00+00:00"
    assert (stored["date"], stored["gsi1sk"], stored["gsi2sk"]) == (
        at,
        f"{at}#{stored['email_id']}",
        f"{at}#{stored['email_id']}",
    )
    assert (location(run, tenant, 1) or {}).get("gsi1sk") == f"{at}#{stored['email_id']}"
    assert (results[0].announcement or {}).get("date") == at


def test_of_two_conversations_dated_alike_the_later_in_the_batch_holds_the_subject(
    run: Side, tenant: str
) -> None:
    batch = [
        fetched(1, message("Same", msgid="first@customer.example")),
        fetched(2, message("Same", msgid="second@customer.example")),
    ]
    ingest_batch(inbox(tenant), batch, run.emails, run.blobs)
    subject = raw_item(run, tenant, subject_sk(ACCOUNT, "Same")) or {}
    assert subject.get("thread_id") == thread_id_for_root(tenant, "second@customer.example")


def test_email_ids_are_one_per_message_and_tenant() -> None:
    raw = message("Id", msgid="id@customer.example", sender="Carol@Customer.example")
    parsed = normalize(raw, internal_date=WHEN).message
    same_sender = message("Id", msgid="id@customer.example", sender="carol@customer.example")
    other = message("Id", msgid="id@customer.example", sender="dave@customer.example")
    resubjected = message("Id 2", msgid="id@customer.example", sender="carol@customer.example")
    ids = [
        email_id_for("t1", normalize(r, internal_date=WHEN).message, r)
        for r in (same_sender, other, resubjected)
    ]
    assert email_id_for("t1", parsed, raw) == ids[0]
    assert len(set(ids)) == 3
    assert email_id_for("t2", parsed, raw) != ids[0]
    assert ids[0].startswith("em_")
    assert len(ids[0]) == 3 + 26
    no_id = [
        b"From: a@b.example\r\nSubject: x\r\n\r\none\r\n",
        b"From: a@b.example\r\nSubject: x\r\n\r\ntwo\r\n",
    ]
    anonymous = [email_id_for("t1", normalize(r, internal_date=WHEN).message, r) for r in no_id]
    assert anonymous[0] != anonymous[1]
    assert anonymous[0] == email_id_for("t1", normalize(no_id[0], internal_date=WHEN).message, no_id[0])


def test_flag_state_reads_imap_system_flags_in_any_case() -> None:
    assert flag_state(["\\SEEN", "\\flagged"]) == {"read": True, "flagged": True, "answered": False}
    assert flag_state(("\\Answered", "$Junk")) == {"read": False, "flagged": False, "answered": True}
    assert flag_state([]) == {"read": False, "flagged": False, "answered": False}


ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//customer//cal//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
    "UID:evt-1@customer.example\r\nDTSTAMP:20261117T100000Z\r\nDTSTART:20261120T100000Z\r\n"
    "DTEND:20261120T110000Z\r\nSUMMARY:Review\r\nORGANIZER:mailto:carol@customer.example\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def invitation() -> bytes:
    return (
        "From: Carol Customer <carol@customer.example>\r\n"
        f"To: {ADDRESS}\r\n"
        "Subject: Invite\r\n"
        "Message-ID: <invite@customer.example>\r\n"
        "Date: Tue, 17 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="a1"\r\n\r\n'
        "--a1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nJoin us.\r\n"
        f"--a1\r\nContent-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\r\n{ICS}--a1--\r\n"
    ).encode()


@pytest.mark.parametrize("over", [True, False])
def test_an_invitations_calendar_counts_toward_the_inline_limit_and_is_stored_with_the_bodies(
    run: Side, tenant: str, monkeypatch: pytest.MonkeyPatch, over: bool
) -> None:
    raw = invitation()
    parsed = normalize(raw, internal_date=WHEN).message
    assert parsed.calendar is not None
    size = len(parsed.text_body or "") + len(parsed.calendar.ics)
    monkeypatch.setattr(ingest_module, "INLINE_BODY_LIMIT", size - 1 if over else size)
    results = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    stored = email(run, tenant, results[0].email_id)
    bodies = {"text_body": parsed.text_body, "html_body": None, "calendar": parsed.calendar.model_dump()}
    if over:
        body, _ = state(run, tenant)["objects"][str(stored["body_key"])]
        assert body == json.dumps(bodies, separators=(",", ":")).encode()
        assert "calendar" not in stored
    else:
        assert "body_key" not in stored
        assert stored["calendar"]["ics"] == parsed.calendar.ics


def test_an_email_item_built_for_the_outbox_writes_its_long_body_at_once(
    run: Side, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outbox builds its sent copy without an upload list: a long body is written then and there
    monkeypatch.setattr(ingest_module, "INLINE_BODY_LIMIT", 1)
    raw = alternative("Sent", "sent@example.com", "Plain words.", "<p>Rich words.</p>")
    parsed = normalize(raw, internal_date=WHEN).message
    built = ingest_module.build_email_item(
        inbox(tenant, "Sent", sent=True), "em_x", "th_x", parsed, WHEN, "raw/k", run.blobs, ("\\Seen",)
    )
    key = f"body/{tenant}/em_x.json"
    assert built["body_key"] == key
    assert (built["direction"], built["read"]) == ("outbound", True)
    body, content_type = state(run, tenant)["objects"][key]
    assert json.loads(body) == {
        "text_body": parsed.text_body,
        "html_body": parsed.html_body,
        "calendar": None,
    }
    assert content_type == "application/json"


def test_the_stored_records_say_when_they_were_made_and_mail_without_a_message_id_has_no_id_index(
    run: Side, tenant: str
) -> None:
    nameless = b"From: carol@customer.example\r\nSubject: Bare\r\n\r\nNo name, no id.\r\n"
    results = ingest_batch(inbox(tenant), [fetched(1, nameless), fetched(2, GARBAGE)], run.emails, run.blobs)
    stored = email(run, tenant, results[0].email_id)
    assert "gsi3pk" not in stored
    assert stored["search"] == " bare carol customer example no name id"
    record = raw_item(run, tenant, quarantine_sk(ACCOUNT, "INBOX", UIDVALIDITY, 2)) or {}
    for made in (stored["created_at"], record["created_at"]):
        assert dt.datetime.fromisoformat(str(made)).utcoffset() == dt.timedelta(0)


def test_a_list_message_keeps_its_sender_list_and_automation_headers(run: Side, tenant: str) -> None:
    raw = (
        b"From: Carol <carol@customer.example>\r\nSender: Assistant <assistant@customer.example>\r\n"
        b"List-Id: News <news.customer.example>\r\nAuto-Submitted: auto-generated\r\nPrecedence: bulk\r\n"
        b"Message-ID: <list@customer.example>\r\nSubject: News\r\n\r\nHi.\r\n"
    )
    results = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    stored = email(run, tenant, results[0].email_id)
    assert stored["sender"] == {"name": "Assistant", "address": "assistant@customer.example"}
    assert stored["list"]["list_id"] == "news.customer.example"
    assert (stored["auto_submitted"], stored["precedence"]) == ("auto-generated", "bulk")


def test_a_message_without_a_sender_is_stored_under_its_message_id(run: Side, tenant: str) -> None:
    raw = (
        b"To: user@example.com\r\nMessage-ID: <nofrom@customer.example>\r\nSubject: No sender\r\n\r\nHi.\r\n"
    )
    results = ingest_batch(inbox(tenant), [fetched(1, raw)], run.emails, run.blobs)
    assert email(run, tenant, results[0].email_id)["from"] == []


def test_an_email_item_of_a_message_parsed_without_any_date_says_its_date_is_the_internal_one(
    run: Side, tenant: str
) -> None:
    # The outbox parses its own mail without an internal date; the date it passes is then the source
    parsed = normalize(b"From: a@customer.example\r\nSubject: x\r\n\r\nx\r\n").message
    built = ingest_module.build_email_item(
        inbox(tenant), "em_y", "th_y", parsed, WHEN, "raw/y", run.blobs, ()
    )
    assert (built["date"], built["date_source"]) == (WHEN.isoformat(), "internal")


def test_email_ids_are_the_same_in_every_release() -> None:
    # Emails are keyed by these ids, and a replay after a deploy must find the emails an earlier
    # release stored: the ids of these three messages are pinned (sender in another case and no
    # subject; no sender; no Message-ID).
    carol = b"From: Carol <Carol@Customer.example>\r\nMessage-ID: <pinned@customer.example>\r\n"
    nobody = b"To: user@example.com\r\nMessage-ID: <pinned-nofrom@customer.example>\r\nSubject: Pinned\r\n"
    anonymous = b"From: a@customer.example\r\nSubject: Pinned\r\n\r\nNo Message-ID.\r\n"
    pinned = {
        carol + b"\r\nNo subject.\r\n": "em_fea729eacf340fddafef1d5ee1",
        nobody + b"\r\n": "em_65e6f5d538904f3005c43a36e1",
        anonymous: "em_7415ff9a77b834ea6e75b956d3",
    }
    for raw, email_id in pinned.items():
        assert email_id_for("tpinned", normalize(raw, internal_date=WHEN).message, raw) == email_id


BOUNCE = (
    b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\nTo: user@example.com\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-1@mx.example.com>\r\n"
    b"Date: Tue, 17 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="r1"\r\n\r\n'
    b"--r1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
    b"--r1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
    b"Final-Recipient: rfc822; gone@customer.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
    b"--r1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <orig@example.com>\r\n\r\n--r1--\r\n"
)
ABUSE_REPORT = (
    b"From: abuse@isp.example\r\nTo: user@example.com\r\nSubject: Abuse report\r\n"
    b"Message-ID: <arf-1@isp.example>\r\nDate: Tue, 17 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=feedback-report; boundary="f1"\r\n\r\n'
    b"--f1\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n"
    b"--f1\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n\r\n"
    b"--f1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <orig2@example.com>\r\n\r\n--f1--\r\n"
)


def test_a_bounce_and_an_abuse_report_keep_what_they_report(run: Side, tenant: str) -> None:
    # RFC 3464 delivery status and RFC 5965 feedback report, summarized on the email
    results = ingest_batch(
        inbox(tenant), [fetched(1, BOUNCE), fetched(2, ABUSE_REPORT)], run.emails, run.blobs
    )
    bounce, report = (email(run, tenant, r.email_id) for r in results)
    assert bounce["bounce"]["original_message_id"] == "orig@example.com"
    assert [(r["final_recipient"], r["status"]) for r in bounce["bounce"]["recipients"]] == [
        ("gone@customer.example", "5.1.1")
    ]
    assert (report["feedback"]["feedback_type"], report["feedback"]["original_message_id"]) == (
        "abuse",
        "orig2@example.com",
    )
