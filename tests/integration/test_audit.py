"""The audit log (issue 19 point 4) through the api function and moto: what is written for a
request, what is not, what `GET /audit` answers, and what the stream consumer archives."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mailbridge.audit import wiring as audit_wiring
from mailbridge.audit.service import AuditDeps
from mailbridge.store.base import tenant_pk
from tests.events import load_event
from tests.fixtures.aws import Stack, load_function

TENANT = "acme"
ADMIN_SUB = "54c84948-7061-70a8-a0b5-0d7e1c5a6f21"


def _event(name: str, **kwargs: Any) -> dict[str, Any]:
    """A sample event with its own request id (API Gateway's are unique; the samples share one)."""
    event = load_event(name, tenant=kwargs.pop("tenant", TENANT), **kwargs)
    event["requestContext"]["requestId"] = f"req-{uuid.uuid4().hex[:16]}"
    return event


def _entries(stack: Stack, tenant: str = TENANT) -> list[dict[str, Any]]:
    table = stack.table("AuditTable")
    response = table.query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": tenant_pk(tenant)}
    )
    return list(response["Items"])


@pytest.fixture
def crm_on(invoke_api: Any, stack: Stack) -> None:
    event = _event("api/put-features.json", role="admin", body={"crm": True})
    assert invoke_api(event)["statusCode"] == 200
    table = stack.table("AuditTable")
    for item in _entries(stack):  # start each test from an empty log (the test's own writes only)
        table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})


def _contact_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(load_event("api/crm-create-contact.json")["body"])
    body.pop("company_id")  # names no company here
    return body


def _create_contact(invoke_api: Any) -> tuple[dict[str, Any], str]:
    event = _event("api/crm-create-contact.json", role="member", sub="member-sub-1", body=_contact_body())
    response = invoke_api(event)
    assert response["statusCode"] == 201, response["body"]
    return event, str(json.loads(response["body"])["contact_id"])


# --------------------------------------------------------------------------------- writes


def test_a_write_is_audited_with_who_what_when_where_and_nothing_personal(
    invoke_api: Any, stack: Stack, crm_on: None
) -> None:
    # Given a contact created by a member
    created, contact_id = _create_contact(invoke_api)
    # When the member changes it
    patch = _event("api/crm-patch-contact.json", role="member", sub="member-sub-1")
    patch["pathParameters"] = {"contact_id": contact_id}
    patch["rawPath"] = patch["requestContext"]["http"]["path"] = f"/crm/contacts/{contact_id}"
    response = invoke_api(patch)
    # Then each write has one entry: who, what, which ids, when, from where, the outcome
    assert response["statusCode"] == 200, response["body"]
    entries = sorted(_entries(stack), key=lambda item: item["sk"])
    assert [e["action"] for e in entries] == [
        "create_contact_crm_contacts_post",
        "update_contact_crm_contacts__contact_id__patch",
    ]
    entry = entries[1]
    assert entry["actor"] == "member-sub-1"
    assert entry["role"] == "member"
    assert entry["kind"] == "write"
    assert entry["resource_ids"] == {"contact_id": contact_id}
    assert entry["status"] == 200
    assert entry["outcome"] == "success"
    assert "error_code" not in entry
    assert entry["request_id"] == patch["requestContext"]["requestId"]
    assert entry["network"] == "203.0.113.0/24"
    assert entry["user_agent_family"] == "safari"
    assert entry["sk"] == f"{entry['at']}#{entry['request_id']}"
    assert entry["at"].endswith("Z")
    assert len(entry["at"]) == len("2026-11-30T09:12:03.123Z")
    # And nothing of the bodies, the caller's address, user agent or token is stored
    stored = json.dumps(entries, default=str)
    personal = [
        "Ada",
        "Lovelace",
        "example.com",
        "+44 20",
        "CTO",
        "conference",
        "203.0.113.24",
        "Macintosh",
        "Bearer",
        "eyJ",
    ]
    body_values = [v for v in json.loads(patch["body"]).values() if isinstance(v, str)]
    assert created["body"]
    assert body_values
    for value in personal + body_values:
        assert value not in stored, value


def test_a_refused_write_records_its_outcome(invoke_api: Any, stack: Stack, crm_on: None) -> None:
    # Given a viewer, who may not create contacts
    event = _event("api/crm-create-contact.json", role="viewer", sub="viewer-sub")
    # When they try
    response = invoke_api(event)
    # Then the answer is the role's 403, and the attempt is in the log with that outcome
    assert response["statusCode"] == 403
    (entry,) = _entries(stack)
    assert entry["actor"] == "viewer-sub"
    assert entry["status"] == 403
    assert entry["outcome"] == "failure"
    assert entry["error_code"] == "role_required"


def test_a_failed_audit_write_does_not_fail_the_request(
    invoke_api: Any, stack: Stack, crm_on: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an audit table that refuses every write
    class Refusing:
        def append(self, item: dict[str, Any]) -> None:
            raise RuntimeError("throttled")

    monkeypatch.setattr(audit_wiring, "audit_deps", lambda: AuditDeps(store=Refusing()))  # type: ignore[arg-type]
    # When a member creates a contact
    response = invoke_api(_event("api/crm-create-contact.json", role="member", body=_contact_body()))
    # Then the contact is created all the same
    assert response["statusCode"] == 201
    assert _entries(stack) == []


# ---------------------------------------------------------------------------------- reads


def test_a_message_body_read_is_audited_and_a_list_read_is_not(
    invoke_api: Any, stack: Stack, crm_on: None
) -> None:
    # Given nothing in the log
    # When a viewer lists contacts and emails, then asks for an email's bodies and its raw message
    assert invoke_api(_event("api/crm-list-contacts.json", role="viewer"))["statusCode"] == 200
    assert invoke_api(_event("api/list-emails.json", role="viewer"))["statusCode"] == 200
    body_read = _event("api/get-email.json", role="viewer", sub="viewer-sub")
    assert invoke_api(body_read)["statusCode"] == 404
    raw_read = _event("api/get-email-raw.json", role="viewer", sub="viewer-sub")
    assert invoke_api(raw_read)["statusCode"] == 404
    # Then only the two body reads are in the log, as reads, with the email's id and the 404
    entries = sorted(_entries(stack), key=lambda item: item["sk"])
    assert [(e["action"], e["kind"]) for e in entries] == [
        ("get_email_emails__email_id__get", "read"),
        ("get_email_raw_emails__email_id__raw_get", "read"),
    ]
    assert entries[0]["resource_ids"] == {"email_id": body_read["pathParameters"]["email_id"]}
    assert entries[0]["error_code"] == "not_found"
    assert entries[0]["outcome"] == "failure"


# ------------------------------------------------------------------------------ GET /audit


def _audit(invoke_api: Any, role: str = "admin", tenant: str = TENANT, **query: str) -> dict[str, Any]:
    response = invoke_api(_event("api/audit-list.json", role=role, tenant=tenant, query=query))
    assert response["statusCode"] == 200, response["body"]
    return dict(json.loads(response["body"]))


@pytest.fixture
def history(invoke_api: Any, stack: Stack, crm_on: None) -> dict[str, Any]:
    """A member creates a contact and changes it, a viewer is refused a create: three entries."""
    _, contact_id = _create_contact(invoke_api)
    patch = _event("api/crm-patch-contact.json", role="member", sub="member-sub-1")
    patch["pathParameters"] = {"contact_id": contact_id}
    patch["rawPath"] = patch["requestContext"]["http"]["path"] = f"/crm/contacts/{contact_id}"
    assert invoke_api(patch)["statusCode"] == 200
    refused = _event("api/crm-create-contact.json", role="viewer", sub="viewer-sub")
    assert invoke_api(refused)["statusCode"] == 403
    return {"contact_id": contact_id}


def test_get_audit_lists_newest_first_and_filters(invoke_api: Any, history: dict[str, Any]) -> None:
    # Given three entries (history)
    # When an admin reads the log, unfiltered and with each filter
    everything = _audit(invoke_api)["items"]
    by_actor = _audit(invoke_api, actor="viewer-sub")["items"]
    failures = _audit(invoke_api, outcome="failure")["items"]
    by_action = _audit(invoke_api, action="create_contact_crm_contacts_post")["items"]
    by_resource = _audit(invoke_api, resource_id=history["contact_id"])["items"]
    later = _audit(invoke_api, since="2999-01-01T00:00:00Z")["items"]
    earlier = _audit(invoke_api, until="2000-01-01T00:00:00Z")["items"]
    # Then the log is newest first and each filter keeps what it names
    assert [(e["actor"], e["status"]) for e in everything] == [
        ("viewer-sub", 403),
        ("member-sub-1", 200),
        ("member-sub-1", 201),
    ]
    assert [e["at"] for e in everything] == sorted((e["at"] for e in everything), reverse=True)
    assert [e["actor"] for e in by_actor] == ["viewer-sub"]
    assert [(e["status"], e["error_code"]) for e in failures] == [(403, "role_required")]
    assert [e["status"] for e in by_action] == [403, 201]
    assert [e["resource_ids"] for e in by_resource] == [{"contact_id": history["contact_id"]}]
    assert later == []
    assert earlier == []


def test_get_audit_pages_with_the_signed_cursor(invoke_api: Any, history: dict[str, Any]) -> None:
    # Given three entries (history)
    # When an admin reads them one per page
    seen: list[str] = []
    page = _audit(invoke_api, limit="1")
    for _ in range(10):  # bounded: a cursor that does not move on must fail, not loop
        seen += [e["request_id"] for e in page["items"]]
        if not page["next_cursor"]:
            break
        page = _audit(invoke_api, limit="1", cursor=page["next_cursor"])
    # Then every entry comes once, in the unpaged order
    assert seen == [e["request_id"] for e in _audit(invoke_api)["items"]]
    assert len(seen) == 3
    # And a cursor altered by one character is refused
    cursor = _audit(invoke_api, limit="1")["next_cursor"]
    altered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    event = _event("api/audit-list.json", role="admin", query={"limit": "1", "cursor": altered})
    response = invoke_api(event)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "invalid_cursor"


def test_get_audit_is_for_owners_and_admins_of_the_tenant_only(
    invoke_api: Any, history: dict[str, Any]
) -> None:
    # Given three entries of tenant acme (history)
    # When a member of acme, an owner of acme and an admin of another tenant ask for the log
    member = invoke_api(_event("api/audit-list.json", role="member"))
    owner = _audit(invoke_api, role="owner")
    other = _audit(invoke_api, tenant="globex")
    # Then the member is refused, the owner reads it, the other tenant sees nothing of it
    assert member["statusCode"] == 403
    assert json.loads(member["body"])["error"]["code"] == "role_required"
    assert len(owner["items"]) == 3
    assert other == {"items": [], "next_cursor": None}


def test_get_audit_refuses_a_range_that_ends_before_it_starts(invoke_api: Any, crm_on: None) -> None:
    # Given an admin
    # When the range ends before it starts
    query = {"since": "2026-11-30T10:00:00Z", "until": "2026-11-30T09:00:00Z"}
    response = invoke_api(_event("api/audit-list.json", role="admin", query=query))
    # Then the answer is 400 invalid_time_range
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "invalid_time_range"


# ------------------------------------------------------------------------------ the archive


def _stream_event(stack: Stack) -> dict[str, Any]:
    """The AuditTable stream's records so far, as Lambda hands them to the function."""
    table_name = stack.deployed.tables["AuditTable"]
    stream_arn = boto3.client("dynamodb").describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    # botocore sends stream calls naming an account to {account}.streams-ddb...; moto answers
    # only the regional endpoint.
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for record in streams.get_records(ShardIterator=iterator)["Records"]:
            records.append({**record, "eventSourceARN": stream_arn})
    return {"Records": records}


def test_the_stream_consumer_archives_json_lines_under_object_lock(
    invoke_api: Any, stack: Stack, crm_on: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    # Given two audited requests of tenant acme
    _create_contact(invoke_api)
    assert invoke_api(_event("api/crm-create-contact.json", role="viewer"))["statusCode"] == 403
    entries = sorted(_entries(stack), key=lambda item: item["sk"])
    # When the archive function gets the table's stream records
    for name, value in stack.env("AuditArchiveFunction").items():
        monkeypatch.setenv(name, value)
    event = _stream_event(stack)
    inserts = [
        r
        for r in event["Records"]
        if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["pk"]["S"] == "TENANT#acme"
    ]
    event["Records"] = inserts[-2:]  # the two of this test (the fixture cleared earlier ones)
    result = load_function("audit").lambda_handler(event, lambda_context)
    # Then nothing failed, and one JSON Lines object of tenant/day holds both entries, in order,
    # locked in COMPLIANCE mode for the retention the template sets
    assert result == {"batchItemFailures": []}
    s3 = boto3.client("s3")
    bucket = stack.deployed.buckets["AuditBucket"]
    day = entries[0]["at"][:10].replace("-", "/")
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"audit/acme/{day}/").get("Contents", [])
    ]
    assert len(keys) == 1
    assert keys[0].endswith(".jsonl")
    stored = s3.get_object(Bucket=bucket, Key=keys[0])
    lines = [json.loads(line) for line in stored["Body"].read().decode().splitlines()]
    assert [(line["request_id"], line["status"]) for line in lines] == [
        (entries[0]["request_id"], 201),
        (entries[1]["request_id"], 403),
    ]
    assert "pk" not in lines[0]
    assert stored["ObjectLockMode"] == "COMPLIANCE"
    retention_days = int(stack.env("AuditArchiveFunction")["AUDIT_RETENTION_DAYS"])
    retained = stored["ObjectLockRetainUntilDate"] - datetime.now(UTC)
    assert timedelta(days=retention_days - 1) < retained <= timedelta(days=retention_days)
    # And the locked object cannot be deleted
    version = stored["VersionId"]
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key=keys[0], VersionId=version)


def test_a_failed_archive_write_reports_the_batch_from_its_first_unwritten_record(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sink that refuses the second tenant's object
    from mailbridge.audit.archive import ArchiveDeps, StreamItem, archive

    written: list[str] = []

    class Sink:
        def put_locked(self, key: str, data: bytes, retain_until: datetime) -> None:
            if "/globex/" in key:
                raise RuntimeError("slow down")
            written.append(key)

    items = [
        StreamItem("100", {"tenant_id": "acme", "at": "2026-11-30T09:00:00.000Z", "request_id": "a"}),
        StreamItem("200", {"tenant_id": "globex", "at": "2026-11-30T09:00:01.000Z", "request_id": "b"}),
        StreamItem("300", {"tenant_id": "acme", "at": "2026-11-30T09:00:02.000Z", "request_id": "c"}),
    ]
    deps = ArchiveDeps(sink=Sink(), retention_days=1, now=lambda: datetime.now(UTC))
    # When the batch is archived
    failed = archive(items, deps)
    # Then acme's object was written and Lambda is told to retry from globex's first record
    assert written == ["audit/acme/2026/11/30/100-300.jsonl"]
    assert failed == ["200"]


# ---------------------------------------------------------------------------- public writes


def _rsvp(invoke_api: Any, token: str) -> dict[str, Any]:
    event = _event("api/calendar-rsvp.json")
    event["pathParameters"] = {"token": token}
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/calendar/rsvp/{token}"
    return dict(invoke_api(event))


def test_a_public_rsvp_is_filed_under_the_tokens_tenant_without_the_token(
    invoke_api: Any, stack: Stack, crm_on: None
) -> None:
    # Given a valid RSVP token of tenant acme for an event that no longer exists, and a forged one
    from mailbridge.calendar.wiring import signer

    event_id = "ev_0193b1c2d3e4f5a6b7c8d9e0f1"
    token = signer().rsvp_token(TENANT, event_id, "carol@example.org", datetime.now(UTC) + timedelta(days=1))
    # When both are used
    answered = _rsvp(invoke_api, token)
    forged = _rsvp(invoke_api, "not-a-token")
    # Then the valid one is in acme's log as a public write with the event's id and its 404;
    # the token, the address and the forged attempt (which names no tenant) are not
    assert answered["statusCode"] == 404
    assert forged["statusCode"] == 403
    (entry,) = _entries(stack)
    assert (entry["actor"], entry["kind"], entry["status"]) == ("public", "write", 404)
    assert "role" not in entry
    assert entry["resource_ids"] == {"event_id": event_id}
    stored = json.dumps(entry, default=str)
    assert token not in stored
    assert "carol" not in stored
