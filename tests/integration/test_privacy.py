"""GDPR erase and export (issue 19 point 5) in-process: sample events -> api handler -> moto; the
tasks function fed the TasksQueue's records as the event source mapping delivers them.

Tenant acme holds mail from and to ann@example.com across every kind of record (ingested mail
with an attachment, a draft, CRM contact/company/deal/activity, links and the participant index,
tracking, flags, snoozes, nudges, notifications, automation runs, calendar attendees, AI caches);
joann@example.com (whose address contains ann's) and globex's own copy of ann are the data
that must stay. The acceptance check reads every table and every object version of the bucket.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import boto3
import pytest

from mailbridge.crm import service as crm
from mailbridge.crm.models import CompanyCreate, ContactCreate, DealCreate
from mailbridge.privacy.models import PrivacyStep
from mailbridge.privacy.service import run_step
from mailbridge.privacy.wiring import privacy_deps
from mailbridge.store.crm import CrmStore
from mailbridge.store.flags import FlagStore
from mailbridge.store.links import IndexEntry, LinkRecord, LinkStore
from mailbridge.store.privacy import TenantTables
from mailbridge.store.snoozes import SnoozeStore
from mailbridge.tenancy import Role, TenantContext
from tests.events import load_event
from tests.fixtures.aws import BusReader, FakeLambdaContext, Stack, load_function
from tests.integration.queue_harness import QueueConsumer
from tests.integration.redelivery import bus_seen, snapshot, three_deliveries
from tests.integration.sync_harness import _record
from tests.integration.test_api_emails import ACC_A, OTHER, PDF, TENANT, Invoke, Seeder, api, body, rfc

ANN = "ann@example.com"
ANN_HOME = "ann.private@example.org"  # the contact's second address
JO = "joann@example.com"
ME = f"me@{ACC_A}.test"
# ann's address on its own: not the tail of joann@example.com.
ANN_PATTERN = re.compile(r"(?<![\w.%+-])(ann@example\.com|ann\.private@example\.org)", re.IGNORECASE)


@dataclass
class World:
    ann_emails: list[str]  # acme's emails naming ann (targets)
    draft_id: str
    other_emails: list[str]  # acme's emails that do not
    ann_contact: str
    jo_contact: str
    deal_id: str
    globex_email: str

    @property
    def gone(self) -> list[str]:
        return [*self.ann_emails, self.draft_id, self.ann_contact]


def _ctx(tenant: str) -> TenantContext:
    return TenantContext(tenant_id=tenant, role=Role.ADMIN, subject="u-admin")


def _put(stack: Stack, logical_id: str, item: dict[str, Any]) -> None:
    stack.table(logical_id).put_item(Item=item)


@pytest.fixture
def world(stack: Stack) -> World:
    """Given tenant acme with ann's mail in every kind of record, and tenant globex with its own."""
    boto3.client("s3").put_bucket_versioning(
        Bucket=stack.deployed.buckets["MailBucket"], VersioningConfiguration={"Status": "Enabled"}
    )
    seed = Seeder(stack)
    date = "Mon, 02 Feb 2026 10:00:00 +0000"
    m1 = seed.add(
        rfc(msgid="a1@customer.test", sender=f"Ann <{ANN}>", to=ME, subject="Quote", date=date,
            attachment=("quote.pdf", PDF))
    )  # fmt: skip
    m2 = seed.add(
        rfc(msgid="a2@acme.test", sender=ME, to=f"Ann <{ANN_HOME}>", cc=JO, subject="Re: Quote", date=date,
            in_reply_to="a1@customer.test")
    )  # fmt: skip
    m3 = seed.add(rfc(msgid="j1@customer.test", sender=f"Jo <{JO}>", to=ME, subject="Hello", date=date))
    g1 = seed.add(
        rfc(msgid="g1@customer.test", sender=f"Ann <{ANN}>", to="me@globex.test", subject="Hi", date=date),
        tenant=OTHER,
    )
    # A draft to ann: its item and its body object (drafts/service.py's key).
    draft_id = "dr_0193a5b2c4d1e2f3a4b5c6d7e8"
    _put(stack, "EmailsTable", {"pk": f"TENANT#{TENANT}", "sk": f"DRAFT#{draft_id}", "draft_id": draft_id,
                                "to": [ANN], "subject": "Follow-up", "version": 1})  # fmt: skip
    boto3.client("s3").put_object(
        Bucket=stack.deployed.buckets["MailBucket"], Key=f"drafts/{TENANT}/{draft_id}/v1.json", Body=b"{}"
    )
    # CRM: ann (two addresses) and jo, their company, a deal with both.
    store = CrmStore(stack.deployed.tables["CrmTable"])
    ctx = _ctx(TENANT)
    company = crm.create_company(ctx, CompanyCreate(name="Customer", domains=["example.com"]), store)
    ann = crm.create_contact(
        ctx,
        ContactCreate.model_validate(
            {
                "name": "Ann",
                "emails": [{"address": ANN}, {"address": ANN_HOME}],
                "company_id": company.company_id,
            }
        ),
        store,
    )
    jo = crm.create_contact(
        ctx, ContactCreate.model_validate({"name": "Jo", "emails": [{"address": JO}]}), store
    )
    deal = crm.create_deal(
        ctx, DealCreate(name="Big deal", contact_ids=[ann.contact_id, jo.contact_id]), store
    )
    crm.create_contact(
        _ctx(OTHER), ContactCreate.model_validate({"name": "Ann", "emails": [{"address": ANN}]}), store
    )
    # Links, timeline and the participant index.
    links = LinkStore(stack.deployed.tables["LinksTable"])
    at = "2026-02-02T10:00:00+00:00"

    def link(email_id: str, contact_id: str) -> LinkRecord:
        return LinkRecord(email_id, "contact", contact_id, "address", None, at, "inbound", at, "system")

    links.put_auto_links(
        TENANT, [link(m1, ann.contact_id), link(m2, ann.contact_id), link(m3, jo.contact_id)]
    )
    links.index_participants(
        TENANT,
        [
            IndexEntry(ANN, m1, at, "inbound", "from"),
            IndexEntry(ME, m1, at, "inbound", "to"),
            IndexEntry(JO, m2, at, "outbound", "cc"),
            IndexEntry(JO, m3, at, "inbound", "from"),
        ],
    )
    # Tracking of the mail to ann; a follow-up flag, a snooze, a nudge.
    _put(
        stack,
        "TrackingTable",
        {"pk": f"TENANT#{TENANT}#EMAIL#{m2}", "sk": "MESSAGE", "links": ["https://x.test/"]},
    )
    hit = {"pk": f"TENANT#{TENANT}#EMAIL#{m2}", "sk": "HIT#2026-02-02T11:00:00Z#h1", "kind": "open"}
    _put(stack, "TrackingTable", {**hit, "ttl": 1900000000})
    FlagStore(stack.deployed.tables["FlagsTable"]).put_flag(
        TENANT, m1, {"email_id": m1, "due_at": "2026-03-01T09:00:00Z"}
    )
    FlagStore(stack.deployed.tables["FlagsTable"]).put_flag(
        TENANT, m3, {"email_id": m3, "due_at": "2026-03-01T09:00:00Z"}
    )
    SnoozeStore(stack.deployed.tables["SnoozesTable"]).put_snooze(
        TENANT, m2, {"state": "snoozed", "email_ids": [m2]}
    )
    _put(
        stack, "FlagsTable", {"pk": f"TENANT#{TENANT}", "sk": f"NUDGE#{m2}", "email_id": m2, "to": [ANN_HOME]}
    )
    # A notification about ann's mail, another about jo's; an automation run on ann's mail.
    inbox = {"pk": f"TENANT#{TENANT}#USER#u1", "type": "email.received"}
    _put(
        stack, "NotificationsTable", {**inbox, "sk": "NOTIFICATION#n1", "data": {"email_id": m1, "from": ANN}}
    )
    _put(
        stack, "NotificationsTable", {**inbox, "sk": "NOTIFICATION#n2", "data": {"email_id": m3, "from": JO}}
    )
    _put(
        stack,
        "AutomationsTable",
        {"pk": f"TENANT#{TENANT}", "sk": "RUN#r1#run1", "email_id": m1, "outcome": "ok"},
    )
    # A calendar event with both as attendees; an AI answer naming ann; enrichment of the domain.
    attendees = [{"email": ANN, "partstat": "ACCEPTED"}, {"email": JO}]
    doc = {"summary": "Kick-off", "attendees": attendees}
    _put(stack, "CalendarTable", {"pk": f"TENANT#{TENANT}", "sk": "EVENT#ev1", "doc": doc})
    _put(
        stack,
        "AccountsTable",
        {"pk": f"TENANT#{TENANT}", "sk": "AICACHE#abc", "answer": f"Reply to {ANN} soon"},
    )
    _put(
        stack,
        "AccountsTable",
        {"pk": f"TENANT#{TENANT}", "sk": "ENRICH#example.com", "answer": "Customer Ltd"},
    )
    return World([m1, m2], draft_id, [m3], ann.contact_id, jo.contact_id, deal.deal_id, g1)


def held_data(snapshot: dict[str, list[str]]) -> dict[str, list[str]]:
    """`of_tenant`'s texts without what every request writes about itself: its job records
    (settings table), the audit entry of each API call (audit table) and the rate-limit counters
    (accounts table, `RATE#` items)."""
    return {
        name: [text for text in texts if '"sk": "RATE#' not in text]
        for name, texts in snapshot.items()
        if name not in {"SettingsTable", "AuditTable"}
    }


def everything(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    """Every item of every table (a Scan each) and every object version of the bucket with its bytes."""
    out: dict[str, list[dict[str, Any]]] = {}
    for logical_id in stack.deployed.tables:
        table, items = stack.table(logical_id), []
        kwargs: dict[str, Any] = {}
        while True:
            page = table.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        out[logical_id] = items
    s3, bucket = boto3.client("s3"), stack.deployed.buckets["MailBucket"]
    versions = s3.list_object_versions(Bucket=bucket).get("Versions", [])
    out["bucket"] = []
    for v in versions:
        data = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        out["bucket"].append({"key": v["Key"], "body": data.decode("latin-1")})
    return out


def _canon(value: Any) -> Any:
    """A stored or exported value with numbers as strings and sets as sorted lists, so that a
    DynamoDB item (Decimal, set) and its JSON export compare equal."""
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(_canon(v) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(int(value)) if value == int(value) else str(value)
    return str(value)


def _text(record: dict[str, Any]) -> str:
    return json.dumps(_canon(record), sort_keys=True)


def of_tenant(dump: dict[str, list[dict[str, Any]]], tenant: str) -> dict[str, list[str]]:
    def mine(kind: str, record: dict[str, Any]) -> bool:
        if kind == "bucket":
            return f"/{tenant}/" in record["key"]
        pk = str(record.get("pk", ""))
        return pk == f"TENANT#{tenant}" or pk.startswith(f"TENANT#{tenant}#")

    return {kind: sorted(_text(r) for r in records if mine(kind, r)) for kind, records in dump.items()}


def mentions(record_text: str, world: World) -> bool:
    return bool(ANN_PATTERN.search(record_text)) or any(i in record_text for i in world.gone)


def run_jobs(stack: Stack) -> None:
    """The TasksQueue drained through the tasks function; a failed record comes back at once."""
    consumer = QueueConsumer(stack, "tasks", "TasksQueue")
    for _ in range(500):
        messages = consumer.receive()
        if not messages:
            return
        result = consumer.invoke(messages)
        for failure in result["batchItemFailures"]:
            [m] = [m for m in messages if m["MessageId"] == failure["itemIdentifier"]]
            consumer.sqs.change_message_visibility(
                QueueUrl=consumer.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
            )
    raise AssertionError("the tasks queue did not drain")


def start(invoke_api: Invoke, kind: str, payload: dict[str, Any], role: str = "admin") -> dict[str, Any]:
    return invoke_api(api(f"privacy-{kind}", role=role, body=payload))


def job(invoke_api: Invoke, job_id: str, tenant: str = TENANT) -> dict[str, Any]:
    return invoke_api(api("get-privacy-job", tenant=tenant, role="admin", path={"job_id": job_id}))


def erase(invoke_api: Invoke, stack: Stack, payload: dict[str, Any]) -> dict[str, Any]:
    started = start(invoke_api, "erase", payload)
    assert started["statusCode"] == 202, started
    run_jobs(stack)
    done = job(invoke_api, body(started)["job_id"])
    assert done["statusCode"] == 200, done
    return dict(body(done))


def test_erase_leaves_no_trace_of_the_address_in_any_table_or_object(
    stack: Stack, invoke_api: Invoke, world: World
) -> None:
    # Given: what acme and globex hold before
    before = everything(stack)
    acme_before, globex_before = of_tenant(before, TENANT), of_tenant(before, OTHER)
    assert any(mentions(r, world) for records in acme_before.values() for r in records)

    # When: an admin erases ann by address
    report = erase(invoke_api, stack, {"email": ANN})

    # Then: the job is done and reports what it did per kind
    assert report["state"] == "done"
    assert report["phase"] == "done"
    assert report["external_crms"] == {"salesforce": "not_synced", "hubspot": "not_synced"}
    counts = report["counts"]
    assert counts["targets"] == 3  # m1, m2 and the draft
    assert counts["emails.deleted"] >= 3
    assert counts["links.deleted"] >= 2
    assert counts["crm.deleted"] >= 1
    assert counts["objects.deleted"] >= 3  # m1's raw MIME and attachment, m2's raw MIME, the draft body
    # ... and no table item, no object version of acme names ann, her emails, draft or contact
    after = everything(stack)
    acme_after = of_tenant(after, TENANT)
    leftovers = [(kind, r) for kind, records in acme_after.items() for r in records if mentions(r, world)]
    assert leftovers == []
    # ... and every acme record that did not mention her is still there, unchanged
    untouched = {
        kind: [r for r in records if not mentions(r, world)] for kind, records in acme_before.items()
    }
    for kind, records in untouched.items():
        missing = [r for r in records if r not in acme_after[kind]]
        assert missing == [], (kind, missing)
    # ... the records that stay lost only her: the deal keeps jo, the event keeps jo
    deal = next(r for r in after["CrmTable"] if r["sk"] == f"DEAL#{world.deal_id}")
    assert deal["contact_ids"] == [world.jo_contact]
    event = next(r for r in after["CalendarTable"] if r.get("sk") == "EVENT#ev1")
    assert event["doc"]["attendees"] == [{"email": JO}]
    assert any(r["sk"] == "ENRICH#example.com" for r in after["AccountsTable"])  # a domain is not personal
    # ... globex's own copy of ann is untouched
    assert of_tenant(after, OTHER) == globex_before
    # ... and the job forgot whom it was about
    jobs = [r for r in after["SettingsTable"] if str(r["sk"]).startswith("PRIVACYJOB#")]
    assert len(jobs) == 1
    assert "addresses" not in jobs[0]
    assert "contact_ids" not in jobs[0]


def test_erase_by_contact_covers_every_address_of_the_contact(
    stack: Stack, invoke_api: Invoke, world: World
) -> None:
    # Given the world; When: ann is erased by her contact id
    erase(invoke_api, stack, {"contact_id": world.ann_contact})

    # Then: neither of her addresses, nor her mail, is left in acme
    acme = of_tenant(everything(stack), TENANT)
    assert [r for records in acme.values() for r in records if mentions(r, world)] == []


class CrashingTables(TenantTables):
    """The real table access, failing once at the `fail_at`-th delete (a crash mid-page)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.deletes, self.fail_at = 0, fail_at

    def delete(self, name: str, item: dict[str, Any]) -> bool:
        self.deletes += 1
        if self.deletes == self.fail_at:
            raise RuntimeError("the function died here")
        return super().delete(name, item)


@pytest.fixture
def crash_once(stack: Stack) -> Iterator[CrashingTables]:
    deps = privacy_deps()
    real, deps.tables = deps.tables, CrashingTables(fail_at=4)
    yield deps.tables
    deps.tables = real


def test_a_crash_in_the_middle_resumes_and_a_second_run_is_harmless(
    stack: Stack, invoke_api: Invoke, world: World, crash_once: CrashingTables
) -> None:
    # Given: an erase whose fourth delete crashes the function (the record fails and comes back)
    started = start(invoke_api, "erase", {"email": ANN})
    job_id = body(started)["job_id"]
    consumer = QueueConsumer(stack, "tasks", "TasksQueue")
    crashed = None
    while crashed is None:
        messages = consumer.receive()
        assert messages, "the job ended without reaching the crash"
        result = consumer.invoke(messages)
        if result["batchItemFailures"]:
            crashed = json.loads(messages[0]["Body"])
            consumer.sqs.change_message_visibility(
                QueueUrl=consumer.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"], VisibilityTimeout=0
            )
    mid = body(job(invoke_api, job_id))
    assert mid["state"] == "running"
    assert mid["phase"].startswith("table:")

    # When: the queue keeps delivering (the failed step comes back)
    run_jobs(stack)

    # Then: the job finished from where it was, and nothing of ann is left
    done = body(job(invoke_api, job_id))
    assert done["state"] == "done"
    assert crash_once.deletes > crash_once.fail_at
    acme = of_tenant(everything(stack), TENANT)
    assert [r for records in acme.values() for r in records if mentions(r, world)] == []

    # When: the same erase runs again
    before = of_tenant(everything(stack), TENANT)
    again = erase(invoke_api, stack, {"email": ANN})

    # Then: it finds nothing and changes nothing but its own job record (and the audit log's
    # entry of its request)
    assert {k: v for k, v in again["counts"].items() if v} == {}
    after = of_tenant(everything(stack), TENANT)
    assert held_data(after) == held_data(before)
    assert crashed["job_id"] == job_id


def test_export_holds_every_record_that_mentions_the_address(
    stack: Stack, invoke_api: Invoke, world: World
) -> None:
    # Given: every acme record that mentions ann, found by reading every table
    before = everything(stack)
    expected = {
        kind: sorted(r for r in records if mentions(r, world))
        for kind, records in of_tenant(before, TENANT).items()
        if kind != "bucket"
    }

    # When: an admin exports ann and fetches the archive from the job's download URL
    started = start(invoke_api, "export", {"email": ANN})
    assert started["statusCode"] == 202, started
    run_jobs(stack)
    report = body(job(invoke_api, body(started)["job_id"]))
    assert report["state"] == "done"
    assert report["download_url"]
    key = report["download_url"].split("?")[0].split(".amazonaws.com/")[-1]
    key = key.removeprefix(stack.deployed.buckets["MailBucket"] + "/")
    stored = boto3.client("s3").get_object(Bucket=stack.deployed.buckets["MailBucket"], Key=key)
    archive = zipfile.ZipFile(io.BytesIO(stored["Body"].read()))
    # ... stored encrypted with the stack's KMS key
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert stored["SSEKMSKeyId"].endswith(stack.env("ApiFunction")["DATA_KEY_ID"].rsplit("/", 1)[-1])

    # Then: each kind's JSON holds exactly the records a scan finds mentioning her
    kinds = {
        "AccountsTable": "accounts", "EmailsTable": "emails", "LinksTable": "links", "FlagsTable": "flags",
        "SnoozesTable": "snoozes", "CrmTable": "crm", "NotificationsTable": "notifications",
        "AutomationsTable": "automations", "CalendarTable": "calendar", "TrackingTable": "tracking",
        "SettingsTable": "settings",
    }  # fmt: skip
    names = set(archive.namelist())
    for logical_id, records in expected.items():
        if not records:
            continue
        assert f"{kinds[logical_id]}.json" in names, logical_id
        exported = json.loads(archive.read(f"{kinds[logical_id]}.json"))
        found = {_text(r) for r in exported}
        missing = [record for record in records if record not in found]
        assert missing == [], logical_id
    # ... with the raw .eml of each of her emails, byte for byte
    for email_id in world.ann_emails:
        raw = archive.read(f"eml/{email_id}.eml")
        assert raw.startswith(b"Message-ID:")
    assert not any(world.other_emails[0] in n for n in names)
    # ... and nothing was erased by the export
    assert of_tenant(everything(stack), OTHER) == of_tenant(before, OTHER)


def test_erase_deletes_earlier_exports_of_the_subject(stack: Stack, invoke_api: Invoke, world: World) -> None:
    # Given: an export of ann, done
    exported = start(invoke_api, "export", {"email": ANN})
    run_jobs(stack)
    assert body(job(invoke_api, body(exported)["job_id"]))["state"] == "done"

    # When: ann is erased
    erase(invoke_api, stack, {"email": ANN})

    # Then: the archive is gone from the bucket and the export job is gone
    keys = [o["key"] for o in everything(stack)["bucket"]]
    assert not [k for k in keys if k.startswith(f"exports/{TENANT}/")]
    assert job(invoke_api, body(exported)["job_id"])["statusCode"] == 404


def test_roles_tenants_and_bad_input(stack: Stack, invoke_api: Invoke, world: World) -> None:
    # A member may not start either job, whatever the body
    for kind in ("erase", "export"):
        answer = start(invoke_api, kind, {"email": ANN}, role="member")
        assert answer["statusCode"] == 403
        assert body(answer)["error"]["code"] == "role_required"
    # Exactly one selector; a valid address
    for payload in ({}, {"email": ANN, "contact_id": world.ann_contact}, {"email": "not an address"}):
        answer = start(invoke_api, "erase", payload)
        assert answer["statusCode"] == 422, payload
    # An unknown contact: 404 contact_not_found, no job
    answer = start(invoke_api, "erase", {"contact_id": "ct_0000000000000000000000000a"})
    assert answer["statusCode"] == 404
    assert body(answer)["error"]["code"] == "contact_not_found"
    # The tenant's own mailbox: 409
    own = "sales@example.net"
    _put(
        stack, "AccountsTable", {"pk": f"TENANT#{TENANT}", "sk": f"UNIQUE#ADDRESS#{own}", "account_id": ACC_A}
    )
    answer = start(invoke_api, "erase", {"email": own.upper()})
    assert answer["statusCode"] == 409, answer
    assert body(answer)["error"]["code"] == "address_is_connected_mailbox"
    # Another tenant's job, and a malformed id: 404
    started = body(start(invoke_api, "export", {"email": ANN}))
    assert job(invoke_api, started["job_id"], tenant=OTHER)["statusCode"] == 404
    assert job(invoke_api, "pj_nope")["statusCode"] == 404
    assert body(job(invoke_api, started["job_id"]))["state"] == "queued"


class LostSend:
    """The tasks queue failing to take a message (the function dies between the save and the send)."""

    def send(self, message: PrivacyStep) -> None:
        raise ConnectionError("the queue did not answer")


def test_a_step_saved_but_not_followed_is_picked_up_by_its_redelivery(
    stack: Stack, invoke_api: Invoke, world: World
) -> None:
    # Given: a job whose first step ran and saved, and whose next message then failed to go out
    started = body(start(invoke_api, "erase", {"email": ANN}))
    consumer = QueueConsumer(stack, "tasks", "TasksQueue")
    [first] = consumer.receive()
    deps = privacy_deps()
    real, deps.queue = deps.queue, LostSend()
    try:
        failed = consumer.invoke([first])
    finally:
        deps.queue = real
    assert failed["batchItemFailures"] == [{"itemIdentifier": first["MessageId"]}]
    assert consumer.receive() == []
    assert body(job(invoke_api, started["job_id"]))["phase"] != "collect"

    # When: the first step's record comes back (SQS redelivers what was not acknowledged)
    ran = run_step(PrivacyStep.model_validate_json(first["Body"]), privacy_deps())
    run_jobs(stack)

    # Then: it did not run the step twice, but the job went on to the end, each step counted once
    assert ran is False
    report = body(job(invoke_api, started["job_id"]))
    assert report["state"] == "done"
    assert report["counts"]["targets"] == 3


@pytest.mark.parametrize("kind", ["erase", "export"])
def test_every_step_of_a_job_delivered_three_times_runs_once(
    stack: Stack, invoke_api: Invoke, world: World, bus_probe: BusReader, kind: str
) -> None:
    # Given: an erase or export of ann in progress, its step records coming off the TasksQueue
    started = body(start(invoke_api, kind, {"email": ANN}))
    consumer = QueueConsumer(stack, "tasks", "TasksQueue")
    bus = bus_seen(bus_probe)
    # (an export reads the tables and writes only its job's records in the settings table: the
    # others are left out of its snapshots, which keeps the test at half the time)
    tables = None if kind == "erase" else ["SettingsTable"]
    steps, seen = 0, snapshot(stack, bus, tables)
    while messages := consumer.receive():
        [message] = messages
        consumer.sqs.delete_message(QueueUrl=consumer.queue_url, ReceiptHandle=message["ReceiptHandle"])
        # When: SQS hands each step's record to the tasks function three times
        deliveries = three_deliveries(
            lambda e: consumer.function.lambda_handler(e, FakeLambdaContext()),
            {"Records": [_record(message, consumer.queue_url)]},
            lambda: snapshot(stack, bus, tables),
            before=seen,
        )
        seen = deliveries.thrice
        # Then: the first delivery ran the step (its job record moved, the next step is queued)
        # and the other two changed nothing and queued nothing
        assert deliveries.results == [{"batchItemFailures": []}] * 3
        assert deliveries.once != deliveries.before
        assert deliveries.thrice["queues"] == deliveries.once["queues"], f"step {steps}"
        assert deliveries.thrice == deliveries.once, f"step {steps}"
        steps += 1
        assert steps < 100, "the job did not end"

    # And: the job ran each step once, to the end, and found ann's three records once
    report = body(job(invoke_api, started["job_id"]))
    assert (report["state"], report["counts"]["targets"]) == ("done", 3)
    assert steps > 3
    if kind == "erase":
        acme = of_tenant(everything(stack), TENANT)
        assert [r for records in acme.values() for r in records if mentions(r, world)] == []
    else:
        assert report["download_url"]


def test_retention_deletes_old_mail_with_its_derived_records_and_keeps_newer_mail(
    stack: Stack, invoke_api: Invoke
) -> None:
    # Given: acme keeps mail 365 days; an email from 2020 (with an attachment) and one from today,
    # each with a link, a follow-up flag and a tracking hit; globex (no setting) has 2020 mail too
    seed = Seeder(stack)
    dated_2020 = "Mon, 06 Jan 2020 10:00:00 +0000"
    old = seed.add(
        rfc(
            msgid="old@example.com",
            sender=JO,
            to=ME,
            subject="Old",
            date=dated_2020,
            attachment=("a.pdf", PDF),
        )
    )
    new = seed.add(
        rfc(msgid="new@example.com", sender=JO, to=ME, subject="New", date=format_datetime(datetime.now(UTC)))
    )
    kept = seed.add(
        rfc(msgid="g@example.com", sender=JO, to="me@globex.test", subject="G", date=dated_2020), tenant=OTHER
    )
    links, flags = (
        LinkStore(stack.deployed.tables["LinksTable"]),
        FlagStore(stack.deployed.tables["FlagsTable"]),
    )
    for email_id in (old, new):
        at = "2026-01-01T00:00:00+00:00"
        record = LinkRecord(
            email_id, "contact", "ct_0193a5b2c4d1e2f3a4b5c6d7e8", "address", None, at, "inbound", at, "s"
        )
        links.put_auto_links(TENANT, [record])
        flags.put_flag(TENANT, email_id, {"email_id": email_id, "due_at": "2026-03-01T09:00:00Z"})
        _put(stack, "TrackingTable", {"pk": f"TENANT#{TENANT}#EMAIL#{email_id}", "sk": "HIT#2026-01-01#h"})
    answer = invoke_api(api("put-retention", role="admin", body={"retention_days": 365}))
    assert answer["statusCode"] == 200, answer
    assert body(answer)["retention_days"] == 365

    # When: the daily RetentionSweep fires and the tasks queue drains
    tasks = load_function("tasks")
    tasks.lambda_handler(load_event("scheduler/retention-run.json"), FakeLambdaContext())
    run_jobs(stack)

    # Then: nothing of the 2020 email is left in any table or the bucket
    acme = of_tenant(everything(stack), TENANT)
    assert [(kind, r) for kind, records in acme.items() for r in records if old in r] == []
    # ... today's email and its records are all there
    for kind in ("EmailsTable", "LinksTable", "FlagsTable", "TrackingTable", "bucket"):
        assert any(new in r for r in acme[kind]), kind
    # ... globex's old mail too
    assert any(kept in r for r in of_tenant(everything(stack), OTHER)["EmailsTable"])
    # ... and the sweep is reported
    setting = body(invoke_api(api("get-retention", role="admin")))
    report = body(job(invoke_api, setting["last_job_id"]))
    assert report["kind"] == "retention"
    assert report["state"] == "done"
    assert report["counts"]["targets"] == 1
    assert report["counts"]["objects.deleted"] >= 1  # its raw MIME at least


def test_retention_setting_is_for_owners_and_admins_and_validated(stack: Stack, invoke_api: Invoke) -> None:
    refused = invoke_api(api("put-retention", role="member", body={"retention_days": 1}))
    assert refused["statusCode"] == 403
    for days in (0, -1, "x", 100000):
        assert (
            invoke_api(api("put-retention", role="admin", body={"retention_days": days}))["statusCode"] == 422
        )
    cleared = invoke_api(api("put-retention", role="admin", body={"retention_days": None}))
    assert body(cleared)["retention_days"] is None


class DynamoReads:
    """Every DynamoDB request while it is registered (botocore `before-call`/`after-call`): the
    operation, its table, the key values it names, and whether its answer held another tenant's item."""

    def __init__(self, other: str) -> None:
        self.other = f"TENANT#{other}"
        self.requests: list[tuple[str, str, list[str]]] = []
        self.foreign_answers: list[str] = []

    def before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        sent = json.loads(params.get("body") or b"{}")
        values = [str(v.get("S")) for v in (sent.get("ExpressionAttributeValues") or {}).values()]
        self.requests.append((model.name, str(sent.get("TableName", "")), values))

    def after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if self.other in json.dumps(parsed, default=str):
            self.foreign_answers.append(model.name)


@pytest.fixture
def reads(stack: Stack) -> Iterator[DynamoReads]:
    from mailbridge import aws

    counter = DynamoReads(OTHER)
    for client in aws.dynamodb_clients():
        client.meta.events.register("before-call.dynamodb", counter.before)
        client.meta.events.register("after-call.dynamodb", counter.after)
    yield counter
    for client in aws.dynamodb_clients():
        client.meta.events.unregister("before-call.dynamodb", counter.before)
        client.meta.events.unregister("after-call.dynamodb", counter.after)


def _crowd(stack: Stack, tenant: str, n: int) -> None:
    """`n` items of `tenant` in each tenant-keyed table (its partition and per-email partitions)."""
    for logical_id, pk in (
        ("EmailsTable", f"TENANT#{tenant}"),
        ("FlagsTable", f"TENANT#{tenant}"),
        ("CrmTable", f"TENANT#{tenant}"),
        ("CalendarTable", f"TENANT#{tenant}"),
        ("LinksTable", None),
        ("TrackingTable", None),
    ):
        with stack.table(logical_id).batch_writer() as batch:
            for i in range(n):
                email = f"em_crowd{i:05d}"
                item = {"pk": pk or f"TENANT#{tenant}#EMAIL#{email}", "sk": f"EMAIL#{email}", "to": [ANN]}
                batch.put_item(Item={**item, "date": "2020-01-06T10:00:00+00:00", "email_id": email})


def _no_foreign_reads(stack: Stack, reads: DynamoReads) -> None:
    notifications = stack.deployed.tables["NotificationsTable"]
    scanned = {table for op, table, _ in reads.requests if op == "Scan"}
    assert scanned <= {notifications}, scanned
    mine = f"TENANT#{TENANT}"
    queries = [values for op, _, values in reads.requests if op == "Query"]
    assert queries
    for values in queries:
        assert any(v == mine or v.startswith(f"{mine}#") for v in values), values
    assert reads.foreign_answers == []


OLD_DATE = "Mon, 06 Jan 2020 10:00:00 +0000"


def test_erase_and_retention_query_the_tenant_partitions_only(
    stack: Stack, invoke_api: Invoke, world: World, reads: DynamoReads
) -> None:
    # Given: globex holds many items (some naming ann, all dated 2020) in every tenant-keyed table
    _crowd(stack, OTHER, 300)
    started = start(invoke_api, "erase", {"email": ANN})
    assert started["statusCode"] == 202, started
    reads.requests.clear()

    # When: the erase runs
    run_jobs(stack)

    # Then: no tenant-keyed table was scanned, every Query named acme's partitions and no answer
    # held a globex item
    _no_foreign_reads(stack, reads)
    assert body(job(invoke_api, body(started)["job_id"]))["state"] == "done"

    # Given: acme keeps mail a year and has mail from 2020
    old = Seeder(stack).add(rfc(msgid="o@example.com", sender=JO, to=ME, subject="Old", date=OLD_DATE))
    answer = invoke_api(api("put-retention", role="admin", body={"retention_days": 365}))
    assert answer["statusCode"] == 200, answer
    load_function("tasks").lambda_handler(load_event("scheduler/retention-run.json"), FakeLambdaContext())
    reads.requests.clear()

    # When: its retention job runs
    run_jobs(stack)

    # Then: the same
    _no_foreign_reads(stack, reads)
    report = body(job(invoke_api, body(invoke_api(api("get-retention", role="admin")))["last_job_id"]))
    assert report["state"] == "done"
    assert report["counts"]["targets"] == 1
    assert [r for r in of_tenant(everything(stack), TENANT)["EmailsTable"] if old in r] == []


def _archive(stack: Stack, report: dict[str, Any]) -> zipfile.ZipFile:
    key = report["download_url"].split("?")[0].split(".amazonaws.com/")[-1]
    key = key.removeprefix(stack.deployed.buckets["MailBucket"] + "/")
    stored = boto3.client("s3").get_object(Bucket=stack.deployed.buckets["MailBucket"], Key=key)
    return zipfile.ZipFile(io.BytesIO(stored["Body"].read()))


def test_an_erased_address_stays_suppressed_with_no_address_stored(
    stack: Stack, invoke_api: Invoke, world: World
) -> None:
    from mailbridge.campaigns import suppression
    from mailbridge.campaigns.wiring import suppression_deps

    # Given: ann unsubscribed from an acme campaign, jo was listed by hand; globex lists ann too
    deps = suppression_deps("https://api.example.test")
    suppression.add(deps, TENANT, ANN, "unsubscribed", "cmp_spring")
    suppression.add(deps, TENANT, JO, "manual", None)
    suppression.add(deps, OTHER, JO, "manual", None)

    # When: ann is exported
    started = start(invoke_api, "export", {"email": ANN})
    run_jobs(stack)
    report = body(job(invoke_api, body(started)["job_id"]))

    # Then: the archive holds her suppression entry
    crm_records = json.loads(_archive(stack, report).read("crm.json"))
    [entry] = [r for r in crm_records if str(r["sk"]).startswith("SUPPRESS#")]
    assert (entry["address"], entry["reason"], entry["source"]) == (ANN, "unsubscribed", "cmp_spring")

    # When: ann is erased
    erase(invoke_api, stack, {"email": ANN})

    # Then: her address is in no table of acme ...
    acme = of_tenant(everything(stack), TENANT)
    assert [r for records in acme.values() for r in records if mentions(r, world)] == []
    # ... yet campaign sending still skips her (in any case), and jo as before
    asked = [ANN.upper(), JO, "nobody@example.com"]
    assert suppression.suppressed(deps, TENANT, asked) == {ANN, JO}
    # ... and globex, which never listed ann, still does not
    assert suppression.suppressed(deps, OTHER, asked) == {JO}
